import type { Logger } from 'pino';
import { observer } from '../observability/hooks.js';

/** A snapshot of a running pull, for logs and for clients polling ImageStatus. */
export interface PullProgressSnapshot {
  reference: string;
  layers: number;
  layersDone: number;
  /** Compressed bytes of all layers still to fetch (known once the manifest is read). */
  bytesTotal: number;
  bytesDone: number;
  /** Average rate since the pull started, bytes per second. */
  bytesPerSecond: number;
  elapsedMs: number;
}

/** How often a long pull reports itself in the log. */
const LOG_INTERVAL_MS = 2000;

/** Counts one pull's progress and logs it every couple of seconds while it runs. */
export class PullProgress {
  private readonly started = Date.now();
  private layers = 0;
  private layersDone = 0;
  private bytesTotal = 0;
  private bytesDone = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly reference: string,
    private readonly log: Logger,
    /** Told of every byte and finished layer: a pull's watchdog counts them as progress. */
    private readonly onActivity: () => void = () => undefined,
  ) {
    this.timer = setInterval(() => this.log.info(this.snapshot(), 'pulling'), LOG_INTERVAL_MS);
    this.timer.unref();
  }

  expect(layers: number, bytes: number): void {
    this.layers += layers;
    this.bytesTotal += bytes;
  }

  received(bytes: number): void {
    this.bytesDone += bytes;
    observer()?.pullBytes(bytes);
    this.onActivity();
  }

  layerDone(): void {
    this.layersDone += 1;
    observer()?.pullLayerDone();
    this.onActivity();
  }

  snapshot(): PullProgressSnapshot {
    const elapsedMs = Date.now() - this.started;
    return {
      reference: this.reference,
      layers: this.layers,
      layersDone: this.layersDone,
      bytesTotal: this.bytesTotal,
      bytesDone: this.bytesDone,
      bytesPerSecond: elapsedMs > 0 ? Math.round((this.bytesDone * 1000) / elapsedMs) : 0,
      elapsedMs,
    };
  }

  /** The pull ended (pulled or failed): called once, which reports its duration. */
  finish(): PullProgressSnapshot {
    clearInterval(this.timer);
    const done = this.snapshot();
    observer()?.pullFinished(done.elapsedMs / 1000);
    return done;
  }
}
