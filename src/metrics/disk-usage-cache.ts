/**
 * Writable-layer usage without walking the layer at every stats call, as containerd (its
 * snapshot syncer) and CRI-O do: per directory the last measured usage and when it was taken.
 *
 * - A directory asked for the first time is walked, and the caller waits: a new container
 *   reports what it holds.
 * - A small layer (at most `smallLayerInodes` inodes at its last walk) is measured again at
 *   every call, and the caller waits: its numbers stay exact (a file just written shows at
 *   once). While none of its directories changed, lstat of the entries the last walk saw is
 *   enough (filesystem.ts, recheckTree); else it is walked. Either costs some tens of µs.
 * - A larger layer answers its last measurement at once; once that is older than the refresh
 *   interval, the same call starts one walk in the background for the next callers.
 * - Either way, a caller may pass the container's `activity`: its cgroup's CPU usage. Only the
 *   container's processes write to its layer, and no process writes without running, which
 *   the kernel charges to the cgroup (the writer's system time). While that figure has not
 *   moved since the last measurement began, the layer is as measured: nothing is walked or
 *   looked at, so idle containers cost nothing, however many files they hold.
 *
 * One walk per directory at a time: callers that arrive while it runs share it. Background
 * walks wait in a queue for one of `maxBackgroundWalks` slots, so a List call over 400 large
 * layers starts two walks, not 400; walks a caller waits for have their own slots, so they do
 * not queue behind a long refresh. A directory that is gone when walked, or that nobody asked
 * for during `idleMs`, is dropped; `retain` drops those of containers that no longer exist.
 */
import { recheckTree, walkTree, type DiskUsage, type Measurement, type TreeSnapshot } from './filesystem.js';

/**
 * kubelet polls stats every 10 to 15 s and containerd refreshes snapshot usage every 10 s
 * (`stats_collect_period`): fresher numbers than that are not read, and a walk of 100,000
 * files takes about half a second of CPU, so at most 5% of a core per such layer.
 */
export const REFRESH_INTERVAL_MS = 10_000;
/** A layer this small takes some tens of µs to measure: cheaper to measure than to serve stale. */
export const SMALL_LAYER_INODES = 64;
/** Walks in the background at once, across all directories. */
export const MAX_BACKGROUND_WALKS = 2;
/** Walks callers wait for (a first measurement, a small layer) at once. */
export const MAX_WAITED_WALKS = 4;
/** Long past any kubelet's polling: the container is gone or nobody watches it. */
export const IDLE_MS = 10 * 60_000;
/** The activity of a container that has exited: nothing runs in it any more. */
export const EXITED = -1;

export interface DiskUsageCacheOptions {
  refreshIntervalMs?: number;
  smallLayerInodes?: number;
  maxBackgroundWalks?: number;
  maxWaitedWalks?: number;
  idleMs?: number;
  /** Milliseconds on a monotonic clock. */
  now?: () => number;
  /**
   * Usage of a directory, undefined when it is gone (tests count or hold walks); by default a
   * walk that keeps a snapshot of a small layer.
   */
  measure?: (dir: string) => Promise<Measurement | undefined>;
}

const NOTHING: DiskUsage = Object.freeze({ bytes: 0, inodes: 0 });

interface Entry {
  dir: string;
  /** undefined until the first walk ends. */
  usage: DiskUsage | undefined;
  /** What the last walk saw, if the layer is small. */
  snapshot: TreeSnapshot | undefined;
  /** The container's activity read before the last measurement began. */
  activity: number | undefined;
  measuredAt: number;
  askedAt: number;
  /** The walk running or queued for this directory. */
  walk: Promise<void> | undefined;
}

export class DiskUsageCache {
  private readonly entries = new Map<string, Entry>();
  private readonly refreshIntervalMs: number;
  private readonly smallLayerInodes: number;
  private readonly idleMs: number;
  private readonly now: () => number;
  private readonly measure: (dir: string) => Promise<Measurement | undefined>;
  private readonly background: Slots;
  private readonly waited: Slots;
  private lastSweep: number;

  constructor(options: DiskUsageCacheOptions = {}) {
    this.refreshIntervalMs = options.refreshIntervalMs ?? REFRESH_INTERVAL_MS;
    this.smallLayerInodes = options.smallLayerInodes ?? SMALL_LAYER_INODES;
    this.idleMs = options.idleMs ?? IDLE_MS;
    this.now = options.now ?? (() => performance.now());
    this.measure = options.measure ?? ((dir) => walkTree(dir, { snapshotUpTo: this.smallLayerInodes }));
    this.background = new Slots(options.maxBackgroundWalks ?? MAX_BACKGROUND_WALKS);
    this.waited = new Slots(options.maxWaitedWalks ?? MAX_WAITED_WALKS);
    this.lastSweep = this.now();
  }

  /**
   * The usage of `dir` as described above; zero for a directory that does not exist.
   * `activity`: the container's CPU usage read just now (EXITED once it exited), if known.
   */
  async usage(dir: string, activity?: number): Promise<DiskUsage> {
    const now = this.now();
    this.sweep(now);
    let entry = this.entries.get(dir);
    if (!entry) {
      entry = { dir, usage: undefined, snapshot: undefined, activity: undefined, measuredAt: now, askedAt: now, walk: undefined };
      this.entries.set(dir, entry);
    }
    entry.askedAt = now;
    const usage = entry.usage;
    if (usage !== undefined && activity !== undefined && activity === entry.activity) {
      entry.measuredAt = now;
      return usage;
    }
    if (usage === undefined || usage.inodes <= this.smallLayerInodes) {
      const rechecked = entry.snapshot && !entry.walk ? recheckTree(entry.snapshot) : undefined;
      if (rechecked) this.record(entry, rechecked, activity);
      else await this.walk(entry, this.waited, activity);
      return entry.usage ?? NOTHING;
    }
    if (now - entry.measuredAt >= this.refreshIntervalMs) void this.walk(entry, this.background, activity);
    return usage;
  }

  /** Drop every directory not in `dirs` (those of containers that still exist). */
  retain(dirs: ReadonlySet<string>): void {
    for (const dir of this.entries.keys()) if (!dirs.has(dir)) this.entries.delete(dir);
  }

  /** Directories held. */
  get size(): number {
    return this.entries.size;
  }

  /** Resolves once no walk runs or waits (for tests and orderly shutdown). */
  async idle(): Promise<void> {
    while (true) {
      const walks = [...this.entries.values()].flatMap((e) => (e.walk ? [e.walk] : []));
      if (walks.length === 0 && this.background.busy === 0 && this.waited.busy === 0) return;
      await Promise.all([...walks, this.background.drained(), this.waited.drained()]);
    }
  }

  /** The walk of `entry` in flight (whoever started it), or a new one in `slots`; never fails. */
  private walk(entry: Entry, slots: Slots, activity: number | undefined): Promise<void> {
    entry.walk ??= slots
      .run(() => this.measure(entry.dir))
      .then(
        (measured) => this.record(entry, measured, activity),
        () => this.record(entry, undefined, undefined),
      )
      .finally(() => (entry.walk = undefined));
    return entry.walk;
  }

  private record(entry: Entry, measured: Measurement | undefined, activity: number | undefined): void {
    if (measured === undefined) {
      // Gone (or unreadable): forget it; a later call starts afresh.
      if (this.entries.get(entry.dir) === entry) this.entries.delete(entry.dir);
      entry.usage = undefined;
      entry.snapshot = undefined;
      return;
    }
    entry.usage = { bytes: measured.bytes, inodes: measured.inodes };
    entry.snapshot = measured.snapshot;
    entry.activity = activity;
    entry.measuredAt = this.now();
  }

  /** Drop directories nobody asked for during `idleMs`; looked at once per refresh interval. */
  private sweep(now: number): void {
    if (now - this.lastSweep < this.refreshIntervalMs) return;
    this.lastSweep = now;
    for (const [dir, entry] of this.entries) if (now - entry.askedAt >= this.idleMs) this.entries.delete(dir);
  }
}

/** At most `max` tasks running; the others wait in order. */
class Slots {
  private running = 0;
  private readonly queue: Array<() => void> = [];
  private waiters: Array<() => void> = [];

  constructor(private readonly max: number) {
    if (!(max >= 1)) throw new RangeError(`at least one walk at a time (got ${max})`);
  }

  /** Tasks running or queued. */
  get busy(): number {
    return this.running + this.queue.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.running += 1;
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  drained(): Promise<void> {
    return this.busy === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The slot passes straight to the next task queued, if any. */
  private release(): void {
    const next = this.queue.shift();
    if (next) return next();
    this.running -= 1;
    if (this.running === 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
