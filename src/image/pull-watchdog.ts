import { UnavailableError } from '../errors.js';
import { IdleTimer } from './idle-timer.js';
import { excerpt } from './registry/body.js';

/** The config key that sets a pull's progress timeout, named in the messages it causes. */
export const PROGRESS_TIMEOUT_SETTING = 'registry.pull_progress_timeout_seconds';

/**
 * Gives up a pull that makes no progress for `ms`: no response and no byte of any body, as
 * containerd's `image_pull_progress_timeout` and CRI-O's `pull_progress_timeout` do. Its
 * signal then aborts with an Unavailable error naming what the pull was waiting for; every
 * request and body of the pull stops, and every PullImage that joined it fails with that
 * error. Time spent after the download (writing the record) is not watched.
 */
export class PullWatchdog {
  private readonly controller = new AbortController();
  private readonly idle: IdleTimer;
  private waitingOn: () => string[] = () => [];

  constructor(
    private readonly reference: string,
    readonly ms: number,
  ) {
    this.idle = new IdleTimer(ms, () => this.expire());
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Where to learn, when the pull expires, which requests it was waiting for. */
  describeWith(waitingOn: () => string[]): void {
    this.waitingOn = waitingOn;
  }

  /** Something arrived: a response, a chunk of a body, a finished layer. */
  progress(): void {
    this.idle.touch();
  }

  stop(): void {
    this.idle.stop();
  }

  /** End the pull now, for `reason` (every client gave up). */
  cancel(reason: Error): void {
    this.idle.stop();
    this.controller.abort(reason);
  }

  private expire(): void {
    const urls = this.waitingOn();
    const shown = urls.slice(0, 3).map((url) => excerpt(url)).join(', ');
    const more = urls.length > 3 ? ` and ${urls.length - 3} more` : '';
    const waiting = urls.length > 0 ? `; waiting on ${shown}${more}` : '';
    const message = `pull of ${this.reference} made no progress for ${this.ms / 1000} s (${PROGRESS_TIMEOUT_SETTING})${waiting}`;
    this.controller.abort(new UnavailableError(message, { hint: `check the registry, or raise ${PROGRESS_TIMEOUT_SETTING} for a slow link` }));
  }
}
