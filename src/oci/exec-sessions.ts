import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { NotFoundError, errnoCode } from '../errors.js';
import { writeJsonAtomic } from '../persistence/atomic.js';
import { newId } from '../util/ids.js';
import { processTable, readProcess, type ProcessEntry } from '../util/proc.js';
import { killProcessGroup } from '../util/run.js';
import { pollUntil } from '../util/time.js';
import type { OciProcess } from './spec-types.js';

/**
 * Exec sessions on disk, and how one is ended.
 *
 * Every exec (ExecSync, a streaming exec with pipes, one with a terminal) gets a directory of
 * its own below its container's bundle, `<bundle>/execs/<token>/`, made before any process
 * of it starts and removed only once they have all ended. Its process spec is written there,
 * and every process that serves the session names the directory on its command line: `runc
 * exec --process <dir>/process.json` (pipes, ExecSync), or for a terminal conmon (`--bundle
 * <dir>`) and the `runc exec -d` it runs. That makes the directory the session's record: a
 * daemon that starts again finds each session an earlier one left by its directory, and its
 * monitor (conmon or runc) by a command line naming that directory, which no reused pid can
 * fake. The exec'd process itself is the monitor's child (runc forks it as its own child;
 * conmon, a subreaper, adopts it when `runc exec -d` exits) and leads a session of its own
 * inside the container, so it is found through its monitor, never by a remembered pid.
 */

/** The directory of a container's exec sessions, below its bundle. */
export const EXECS_DIR = 'execs';
/** Where a session's process spec goes; every monitor names it on its command line. */
export const SESSION_PROCESS_FILE = 'process.json';
/** How long a monitor gets to end on its own once its process is gone, before SIGKILL. */
const MONITOR_EXIT_WAIT_MS = 2000;
/**
 * Session directories of tscri before sessions lived below their container's bundle:
 * `<bundleRoot>/<12 hex of the container id>-exec-<8 hex>`. Their monitors name them the same way.
 */
const LEGACY_SESSION_DIR = /^[0-9a-f]{12}-exec-[0-9a-f]{8}$/;


/** True while `entry` is still that same process, alive: same pid, same start time, no zombie. */
async function stillRuns(entry: ProcessEntry): Promise<boolean> {
  const now = await readProcess(entry.pid);
  return now !== undefined && now.startTime === entry.startTime && now.state !== 'Z';
}

async function commandLine(pid: number): Promise<string[]> {
  try {
    return (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  } catch {
    return [];
  }
}

/** The session directory a monitor's command line names, of those in `dirs`. */
function namedDir(args: string[], dirs: ReadonlySet<string>): string | undefined {
  for (const arg of args) {
    const candidate = dirs.has(arg) ? arg : path.dirname(arg);
    if (dirs.has(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The monitors serving any of `dirs`, found by their command lines. Only processes named as
 * monitors are (conmon and runc, by their comm) looked at: nothing else names a session's directory.
 */
async function monitorsOf(dirs: ReadonlySet<string>, names: ReadonlySet<string>, table: ProcessEntry[]): Promise<ProcessEntry[]> {
  const candidates = table.filter((p) => names.has(p.comm));
  const named = await Promise.all(candidates.map(async (p) => (namedDir(await commandLine(p.pid), dirs) ? p : undefined)));
  return named.filter((p): p is ProcessEntry => p !== undefined);
}

/**
 * Kill what a monitor runs. A descendant that leads a session (the exec'd process) is killed
 * with its whole session: an interactive shell puts its jobs in groups of their own within
 * it. One that does not (a `runc exec -d` or `runc init` on its way, which may already have
 * forked the process) is killed after its own descendants. A child of a live process cannot
 * be a reused pid: it stays its parent's child, a zombie at worst, until the parent reaps it.
 */
async function killDescendants(parent: ProcessEntry, table: ProcessEntry[]): Promise<void> {
  for (const child of table.filter((p) => p.ppid === parent.pid)) {
    if (!(await stillRuns(child))) continue;
    if (child.sid === child.pid) {
      killSession(child.sid, table);
      continue;
    }
    await killDescendants(child, table);
    killQuietly(child.pid);
  }
}

/** Every process group of the session, which takes every process in it. */
function killSession(sid: number, table: ProcessEntry[]): void {
  const groups = new Set(table.filter((p) => p.sid === sid).map((p) => p.pgid));
  for (const group of groups) killProcessGroup(group);
}

/**
 * End sessions: kill what their monitors run, give the monitors a moment to notice and end
 * (conmon records the exit, runc returns), then SIGKILL those still there; the caller then
 * removes the directories. A session nothing serves any more needs nothing killed.
 * `monitorNames`: the comm of conmon and of runc (their file names, cut to 15 bytes).
 */
export async function endExecSessions(dirs: string[], monitorNames: ReadonlySet<string>): Promise<void> {
  if (dirs.length === 0) return;
  const table = await processTable();
  const monitors = await monitorsOf(new Set(dirs), monitorNames, table);
  await Promise.all(monitors.map((m) => killDescendants(m, table).catch(() => undefined)));
  await Promise.all(monitors.map((m) => endMonitor(m)));
}

async function endMonitor(monitor: ProcessEntry): Promise<void> {
  if (await pollUntil(async () => !(await stillRuns(monitor)), MONITOR_EXIT_WAIT_MS)) return;
  if (!(await stillRuns(monitor))) return;
  // Detached by whoever started it, a monitor leads its group; its helpers share it.
  if (monitor.pgid === monitor.pid) killProcessGroup(monitor.pid);
  else killQuietly(monitor.pid);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone meanwhile.
  }
}

/** The session directories of one container: `<bundle>/execs/*`. */
export async function sessionDirsOf(bundle: string): Promise<string[]> {
  const execs = path.join(bundle, EXECS_DIR);
  const names = await fs.readdir(execs).catch(() => [] as string[]);
  return names.map((name) => path.join(execs, name));
}

/** Every session directory below `bundleRoot`, those of the older flat layout included. */
export async function allSessionDirs(bundleRoot: string): Promise<string[]> {
  const entries = await fs.readdir(bundleRoot, { withFileTypes: true }).catch(() => []);
  const dirs = entries.filter((e) => e.isDirectory());
  const legacy = dirs.filter((e) => LEGACY_SESSION_DIR.test(e.name)).map((e) => path.join(bundleRoot, e.name));
  const current = await Promise.all(dirs.filter((e) => !LEGACY_SESSION_DIR.test(e.name)).map((e) => sessionDirsOf(path.join(bundleRoot, e.name))));
  return [...legacy, ...current.flat()];
}

/** An exec session's directory and the process spec written in it. */
export interface ExecSession {
  dir: string;
  processFile: string;
}

/** The exec sessions of every container below `bundleRoot`, and which of them this daemon serves. */
export class ExecSessions {
  /** Directories of the exec sessions this daemon serves now. */
  private readonly live = new Set<string>();

  /** `monitorNames`: what the monitors of exec sessions are called in the process table (conmon and runc). */
  constructor(
    private readonly bundleRoot: string,
    private readonly monitorNames: ReadonlySet<string>,
    private readonly logger: Logger,
  ) {}

  /**
   * Make an exec session's directory below its container's bundle and write its process spec
   * there, before any process of it starts. A container without a bundle (removed meanwhile)
   * gets none: its bundle is not made again.
   */
  async open(bundle: string, id: string, process: OciProcess): Promise<ExecSession> {
    const execs = path.join(bundle, EXECS_DIR);
    await fs.mkdir(execs, { mode: 0o700 }).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') throw new NotFoundError(`container ${id} has no bundle`);
      if (errnoCode(err) !== 'EEXIST') throw err;
    });
    // Short: a terminal session's attach socket is bound below it.
    const dir = path.join(execs, newId().slice(0, 8));
    await fs.mkdir(dir, { mode: 0o700 });
    this.live.add(dir);
    const processFile = path.join(dir, SESSION_PROCESS_FILE);
    try {
      await writeJsonAtomic(processFile, process, { durable: false });
    } catch (err) {
      await this.close(dir);
      throw err;
    }
    return { dir, processFile };
  }

  /** Remove a session's directory once nothing of it runs; only then is it no longer live. */
  async close(dir: string): Promise<void> {
    await fs.rm(dir, { recursive: true, force: true });
    this.live.delete(dir);
  }

  end(dirs: string[]): Promise<void> {
    return endExecSessions(dirs, this.monitorNames);
  }

  /**
   * End the exec sessions an earlier daemon left. "Left" means: the daemon that served the
   * session is gone. Its client's connection ended with it (a streaming URL lives only in the
   * memory of the daemon that issued it, and an ExecSync's caller got its error), so no
   * client can ever be given the session's streams again: its process is killed, its
   * monitor ended and its directory removed. A session this daemon serves is never touched.
   */
  async endOrphaned(): Promise<void> {
    try {
      const dirs = (await allSessionDirs(this.bundleRoot)).filter((dir) => !this.live.has(dir));
      if (dirs.length === 0) return;
      await this.end(dirs);
      await Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
      this.logger.info({ sessions: dirs.length }, 'ended the exec sessions an earlier daemon left');
    } catch (err) {
      this.logger.error({ err }, 'cannot end the exec sessions an earlier daemon left');
    }
  }
}
