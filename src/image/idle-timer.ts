import { after } from '../util/timer.js';

/**
 * Calls `onIdle` once `touch()` has not been called for `ms`. A body touches it for every
 * chunk, so instead of replacing a timer per chunk it keeps the time of the last touch and,
 * when the timer fires early, sleeps again for what is left.
 */
export class IdleTimer {
  private lastTouch = performance.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly ms: number,
    private readonly onIdle: () => void,
  ) {
    this.timer = after(ms, () => this.check());
  }

  touch(): void {
    this.lastTouch = performance.now();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    if (!this.timer) return;
    const quiet = performance.now() - this.lastTouch;
    if (quiet < this.ms) {
      this.timer = after(this.ms - quiet, () => this.check());
      return;
    }
    this.timer = undefined;
    this.onIdle();
  }
}
