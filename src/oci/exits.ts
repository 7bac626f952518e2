import { EventEmitter } from 'node:events';
import { promises as fs, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode } from '../errors.js';
import { fileExists } from '../util/files.js';
import { after } from '../util/timer.js';
import type { ContainerExit, ExitListener } from './runtime.js';

/**
 * The exit directory: conmon writes `<dir>/<id>` (the exit code) when a container ends, and
 * the runtime writes the same for a container without a monitor. The directory is watched
 * (inotify) instead of polled; each new file is read and reported to the listeners.
 */
export class ExitDirectory {
  private readonly exits = new EventEmitter();
  private watcher: FSWatcher | undefined;

  /** `oomMarker` names the file conmon writes when the kernel OOM-kills a container. */
  constructor(
    readonly dir: string,
    private readonly oomMarker: (id: string) => string,
    private readonly logger: Logger,
  ) {
    this.exits.setMaxListeners(0);
  }

  /** Make the directory and start watching it. */
  async open(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.watcher = watch(this.dir, (_event, file) => {
      if (file && !file.startsWith('.')) void this.report(file.toString());
    });
    this.watcher.on('error', (err) => this.logger.error({ err }, 'exit dir watch failed'));
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  onExit(listener: ExitListener): void {
    this.exits.on('exit', listener);
  }

  has(id: string): Promise<boolean> {
    return fileExists(path.join(this.dir, id));
  }

  /** Write an exit file as conmon would, atomically, so the watcher reads it whole. */
  async record(id: string, exitCode: number): Promise<void> {
    const temporary = path.join(this.dir, `.${id}.tmp`);
    await fs.writeFile(temporary, String(exitCode));
    await fs.rename(temporary, path.join(this.dir, id));
  }

  async remove(id: string): Promise<void> {
    await fs.rm(path.join(this.dir, id), { force: true });
  }

  async exitOf(id: string): Promise<ContainerExit | undefined> {
    const file = path.join(this.dir, id);
    let text: string;
    let stat: { mtime: Date };
    try {
      [text, stat] = await Promise.all([fs.readFile(file, 'utf8'), fs.stat(file)]);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    const exitCode = Number.parseInt(text.trim(), 10);
    if (!Number.isFinite(exitCode)) return undefined;
    const oomKilled = await fileExists(this.oomMarker(id));
    return { exitCode, exitedAt: stat.mtime, oomKilled };
  }

  waitExit(id: string, timeoutMs: number): Promise<ContainerExit | undefined> {
    return new Promise((resolve, reject) => {
      const onExit = (exitedId: string, exit: ContainerExit): void => {
        if (exitedId === id) finish(exit);
      };
      const timer = after(timeoutMs, () => finish(undefined));
      const finish = (exit: ContainerExit | undefined): void => {
        clearTimeout(timer);
        this.exits.off('exit', onExit);
        resolve(exit);
      };
      // Subscribe before looking, so an exit recorded in between is not missed.
      this.exits.on('exit', onExit);
      this.exitOf(id).then((exit) => exit && finish(exit), reject);
    });
  }

  private async report(id: string): Promise<void> {
    try {
      const exit = await this.exitOf(id);
      if (exit) this.exits.emit('exit', id, exit);
    } catch (err) {
      this.logger.warn({ containerId: id, err }, 'unreadable exit file');
    }
  }
}
