import { observer } from '../observability/hooks.js';
import { sleep } from './timer.js';
/**
 * CRI timestamps are nanoseconds since the epoch in an int64. Date.now() only has millisecond
 * resolution, and kubelet orders sandboxes of one pod by created_at, so two made in the same
 * millisecond must still differ: anchor the epoch once and advance it with the monotonic clock.
 */
const epochAnchorNs = BigInt(Date.now()) * 1_000_000n;
const monotonicAnchorNs = process.hrtime.bigint();

/** Nanoseconds since the epoch as a decimal string (the form int64 fields travel in). */
export function nowNanos(): string {
  return (epochAnchorNs + (process.hrtime.bigint() - monotonicAnchorNs)).toString();
}

export function nanosFromDate(date: Date): string {
  return (BigInt(date.getTime()) * 1_000_000n).toString();
}

/** Milliseconds elapsed since a process.hrtime.bigint() reading, rounded to 0.1 ms. */
export function elapsedMs(startNs: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - startNs) / 100_000) / 10;
}

/** Check `condition` every `intervalMs` until it holds (true) or `timeoutMs` passed (false). */
export async function pollUntil(condition: () => Promise<boolean>, timeoutMs: number, intervalMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/** Seconds elapsed since a process.hrtime.bigint() reading, unrounded (for histograms). */
export function secondsSince(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}

/**
 * A runner that times each named step of `operation` into `timings` (milliseconds, for
 * per-operation logs and verbose status) and reports it to the process's observer (the
 * metrics endpoint's step histogram). A step that throws is neither recorded nor reported:
 * the histograms describe how long work takes, and failures are the RPC's `code` to count.
 */
export function stepTimer(timings: Record<string, number>, operation: string) {
  return async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const started = process.hrtime.bigint();
    const result = await fn();
    timings[name] = elapsedMs(started);
    observer()?.step(operation, name, secondsSince(started));
    return result;
  };
}

/** One step of `operation` timed for the observer only, where no `timings` are kept (teardown halves). */
export async function timeStep<T>(operation: string, step: string, fn: () => Promise<T>): Promise<T> {
  const started = process.hrtime.bigint();
  const result = await fn();
  observer()?.step(operation, step, secondsSince(started));
  return result;
}
