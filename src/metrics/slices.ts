/**
 * Long synchronous work cut into slices, with the event loop turning in between: a walk of a
 * large writable layer, or reading the cgroups of hundreds of containers, never holds other
 * requests up for more than a slice.
 */

/** Short enough that no request waits noticeably behind a slice. */
export const DEFAULT_SLICE_MS = 2;

export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class TimeSlices {
  private start = performance.now();

  constructor(private readonly sliceMs: number = DEFAULT_SLICE_MS) {}

  /** Yields once the current slice has lasted `sliceMs`, and starts the next. */
  async pass(): Promise<void> {
    if (performance.now() - this.start < this.sliceMs) return;
    await yieldToEventLoop();
    this.start = performance.now();
  }
}

/** fn over items one at a time, in order, yielding between slices. */
export async function mapInSlices<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const slices = new TimeSlices();
  const results: R[] = [];
  for (const item of items) {
    await slices.pass();
    results.push(await fn(item));
  }
  return results;
}
