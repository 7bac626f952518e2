import { constants as osConstants } from 'node:os';
import { readProcess } from '../util/proc.js';
import { every, sleep } from '../util/timer.js';

/**
 * Containers that run without a monitor of their own: pause containers. A pause process only
 * sleeps; it has no output to log, no stdin, no terminal and no exit status anyone reads, so
 * the 2 MB a conmon costs per pod buys it nothing. runc starts it and exits, the process is
 * reparented to init (which reaps it), and this watcher learns of its end by looking at
 * /proc: a process is the same one while its start time (field 22 of /proc/PID/stat, which
 * a reused pid cannot repeat) is unchanged, and it has ended once it is gone or a zombie.
 */

/** A process as the kernel names it for its whole life: pid and start time (clock ticks since boot). */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

/** A signal as runc's kill takes it (KILL, SIGKILL or 9) as its number; undefined if unknown. */
export function signalNumberOf(signal: string): number | undefined {
  if (/^\d+$/.test(signal)) return Number(signal);
  const name = signal.toUpperCase();
  return osConstants.signals[(name.startsWith('SIG') ? name : `SIG${name}`) as NodeJS.Signals];
}

/** How often watched processes are looked at: an ended pause makes its pod NOTREADY within this. */
export const WATCH_INTERVAL_MS = 1000;

/** How often a process that was just signalled is looked at, and for how long. */
const CLOSE_WATCH_INTERVAL_MS = 5;
const CLOSE_WATCH_MS = 10_000;

/** The identity of a live process; undefined when it is gone or a zombie (it has ended). */
export async function identityOf(pid: number): Promise<ProcessIdentity | undefined> {
  const entry = await readProcess(pid);
  if (!entry || entry.state === 'Z' || entry.state === 'X' || entry.state === 'x') return undefined;
  return { pid, startTime: entry.startTime };
}

/** Whether the process is still the one `identity` names. */
export async function isRunning(identity: ProcessIdentity): Promise<boolean> {
  return (await identityOf(identity.pid))?.startTime === identity.startTime;
}

/**
 * Send `signal` to the process if it is still the one named; false when it has ended (a
 * reused pid is never signalled).
 */
export async function signalProcess(identity: ProcessIdentity, signal: number): Promise<boolean> {
  if (!(await isRunning(identity))) return false;
  try {
    process.kill(identity.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Watches processes by id and reports each end once, within WATCH_INTERVAL_MS. */
export class ProcessWatcher {
  private readonly watched = new Map<string, ProcessIdentity>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(
    private readonly onEnded: (id: string) => void,
    private readonly intervalMs = WATCH_INTERVAL_MS,
  ) {}

  watch(id: string, identity: ProcessIdentity): void {
    this.watched.set(id, identity);
    this.timer ??= every(this.intervalMs, () => void this.poll());
    this.timer.unref();
  }

  identityOf(id: string): ProcessIdentity | undefined {
    return this.watched.get(id);
  }

  /**
   * Look at the process every few milliseconds for a while (it was just sent a signal that
   * ends it), so its end is reported at once rather than at the next regular look.
   */
  async expectEnd(id: string): Promise<void> {
    const deadline = Date.now() + CLOSE_WATCH_MS;
    for (let identity = this.watched.get(id); identity && Date.now() < deadline; identity = this.watched.get(id)) {
      if (!(await isRunning(identity))) return this.ended(id, identity);
      await sleep(CLOSE_WATCH_INTERVAL_MS);
    }
  }

  /** Stop watching (deleted, or its end already reported by whoever waited for it). */
  forget(id: string): void {
    this.watched.delete(id);
    if (this.watched.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Report an end once, and only for the process still watched under that id. */
  private ended(id: string, identity: ProcessIdentity): void {
    if (this.watched.get(id) !== identity) return;
    this.forget(id);
    this.onEnded(id);
  }

  private async poll(): Promise<void> {
    if (this.polling) return; // a slow /proc must not stack polls
    this.polling = true;
    try {
      const entries = [...this.watched];
      const alive = await Promise.all(entries.map(([, identity]) => isRunning(identity)));
      entries.forEach(([id, identity], i) => {
        if (!alive[i]) this.ended(id, identity);
      });
    } finally {
      this.polling = false;
    }
  }
}
