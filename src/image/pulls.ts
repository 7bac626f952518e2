import type { Logger } from 'pino';
import { CanceledError } from '../errors.js';
import { untilAborted } from '../util/abort.js';
import { PullProgress, type PullProgressSnapshot } from './progress.js';
import { PullWatchdog } from './pull-watchdog.js';
import type { ImageRecord } from './store/images.js';

/** What watches one pull: its progress (for ImageStatus and logs), what it touched, its watchdog. */
export interface PullWatch {
  progress: PullProgress;
  touched: Set<string>;
  watchdog: PullWatchdog;
}

/** A pull under way, and the PullImage calls waiting for it. */
interface RunningPull extends PullWatch {
  promise: Promise<ImageRecord>;
  waiters: number;
  settled: boolean;
  /** Every waiter gave up and the pull was told to stop; a retry waits for it to unwind. */
  cancelled: boolean;
}

/**
 * The pulls under way, one per reference. Concurrent pulls of one reference share the work,
 * and its failure: a pull its watchdog gives up fails for every caller that joined it, and is
 * forgotten, so the next caller starts afresh. A pull every caller has given up on
 * (cancelled, or past its deadline) is cancelled too; a retry waits for it to unwind and
 * starts a new one.
 */
export class RunningPulls {
  private readonly pulls = new Map<string, RunningPull>();

  /** `progressTimeoutMs`: how long a pull may go without progress before its watchdog ends it. */
  constructor(private readonly progressTimeoutMs: () => number) {}

  /** Join the pull of `key`, or start one with `start`; answers what it recorded. */
  async join(key: string, log: Logger, start: (watch: PullWatch) => Promise<ImageRecord>, signal?: AbortSignal): Promise<ImageRecord> {
    let running = this.pulls.get(key);
    if (running?.cancelled) {
      await running.promise.catch(() => undefined);
      running = this.pulls.get(key);
    }
    const pull = running ?? this.start(key, log, start);
    pull.waiters++;
    try {
      return await untilAborted(pull.promise, signal);
    } finally {
      if (--pull.waiters === 0 && !pull.settled) {
        pull.cancelled = true;
        pull.watchdog.cancel(new CanceledError(`every client of the pull of ${key} gave up`));
      }
    }
  }

  private start(key: string, log: Logger, start: (watch: PullWatch) => Promise<ImageRecord>): RunningPull {
    const watchdog = new PullWatchdog(key, this.progressTimeoutMs());
    const progress = new PullProgress(key, log, () => watchdog.progress());
    const touched = new Set<string>();
    const promise = start({ progress, touched, watchdog });
    const pull: RunningPull = { promise, progress, touched, watchdog, waiters: 0, settled: false, cancelled: false };
    this.pulls.set(key, pull);
    const forget = (): void => {
      pull.settled = true;
      if (this.pulls.get(key) === pull) this.pulls.delete(key);
    };
    promise.then(forget, forget);
    return pull;
  }

  /** The progress of the pull of `key`, if one runs. */
  progressOf(key: string): PullProgressSnapshot | undefined {
    return this.pulls.get(key)?.progress.snapshot();
  }

  /** Every digest a running pull has touched: garbage collection spares them. */
  *touched(): Iterable<string> {
    for (const pull of this.pulls.values()) yield* pull.touched;
  }
}
