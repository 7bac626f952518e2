/**
 * The import directory (`[images] import_dir`): image archives put there are loaded at start
 * and whenever one appears or changes, for nodes without a registry (as k3s does with its
 * agent/images directory). Files stay where they are; what was done with each (loaded, or
 * failed) is remembered by its mtime and size, across restarts, so an unchanged file is
 * neither loaded again nor retried in a loop. Images loaded from here are pinned: kubelet's
 * image GC must not remove what the node cannot pull back.
 */
import { promises as fs, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode } from '../errors.js';
import { readJsonIfExists, writeJsonAtomic } from '../persistence/atomic.js';
import type { LoadedSummary } from './service.js';

/** Archive names the directory loads: tar, and tar compressed with gzip or zstd. */
const ARCHIVE_NAME = /\.(tar|tar\.gz|tgz|tar\.zst|tar\.zstd)$/;
/** Quiet time after the last change before a file is looked at. */
const DEBOUNCE_MS = 500;
/** A file is complete once its size and mtime hold still this long (a copy may be under way). */
const SETTLE_MS = 1000;

/** What was done with a file, as it was then. */
interface Seen {
  mtimeMs: number;
  size: number;
  result: 'loaded' | 'failed';
}

export interface ImportDirectoryOptions {
  dir: string;
  /** Where the results are remembered across restarts. */
  stateFile: string;
  load: (file: string, log: Logger) => Promise<LoadedSummary[]>;
  log: Logger;
}

export class ImportDirectory {
  private seen = new Map<string, Seen>();
  private watcher: FSWatcher | undefined;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Loads run one at a time, in the order files settled. */
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: ImportDirectoryOptions) {}

  /** Load what the directory holds now, then watch it. */
  async start(): Promise<void> {
    const { dir, stateFile } = this.options;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    this.seen = new Map(Object.entries((await readJsonIfExists<Record<string, Seen>>(stateFile)) ?? {}));
    this.watcher = watch(dir, (_event, name) => {
      if (typeof name === 'string' && ARCHIVE_NAME.test(name)) this.schedule(name);
    });
    this.watcher.on('error', (err) => this.options.log.error({ dir, err }, 'import directory watch failed'));
    for (const name of (await fs.readdir(dir)).filter((n) => ARCHIVE_NAME.test(n)).sort()) this.enqueue(name);
    await this.queue;
  }

  /** Stop watching; a load under way finishes first. */
  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await this.queue;
  }

  private schedule(name: string): void {
    if (this.closed) return;
    clearTimeout(this.timers.get(name));
    this.timers.set(
      name,
      setTimeout(() => {
        this.timers.delete(name);
        this.enqueue(name);
      }, DEBOUNCE_MS),
    );
  }

  private enqueue(name: string): void {
    this.queue = this.queue.then(() => this.consider(name)).catch((err: unknown) => this.options.log.error({ file: name, err }, 'import failed'));
  }

  /** Load `name` once it holds still, unless it is gone or was dealt with as it is. */
  private async consider(name: string): Promise<void> {
    if (this.closed) return;
    const file = path.join(this.options.dir, name);
    const stat = await settled(file);
    if (!stat) return;
    const before = this.seen.get(name);
    if (before && before.mtimeMs === stat.mtimeMs && before.size === stat.size) return;
    const log = this.options.log.child({ importFile: file });
    let result: Seen['result'] = 'loaded';
    try {
      const images = await this.options.load(file, log);
      log.info({ images: images.map((i) => ({ id: i.id, tags: i.repoTags })) }, 'archive imported');
    } catch (err) {
      result = 'failed';
      log.error({ err, size: stat.size }, 'archive could not be imported; it is tried again once it changes');
    }
    this.seen.set(name, { mtimeMs: stat.mtimeMs, size: stat.size, result });
    await writeJsonAtomic(this.options.stateFile, Object.fromEntries(this.seen));
  }
}

/** The file's stat once its size and mtime stop changing; undefined if it is gone or no file. */
async function settled(file: string): Promise<{ mtimeMs: number; size: number } | undefined> {
  let previous: { mtimeMs: number; size: number } | undefined;
  for (;;) {
    let stat;
    try {
      stat = await fs.stat(file);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    if (!stat.isFile()) return undefined;
    const now = { mtimeMs: stat.mtimeMs, size: stat.size };
    // Untouched for a settle period already (a file found at start): no need to watch it.
    if (!previous && Date.now() - now.mtimeMs >= SETTLE_MS) return now;
    if (previous && previous.mtimeMs === now.mtimeMs && previous.size === now.size) return now;
    previous = now;
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  }
}
