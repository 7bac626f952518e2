/**
 * Timers that keep the delay they were given. Node fires a setTimeout whose delay is above
 * 2^31 - 1 ms (about 24.8 days), negative or NaN after 1 ms, so a 30-day grace period taken
 * from a request would SIGKILL at once. Every timer in the daemon goes through here.
 */

/** The longest delay Node's timers honour. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `ms` as a delay Node honours: NaN and negatives → 0, beyond the limit → the limit. */
export function clampDelay(ms: number): number {
  if (!(ms > 0)) return 0;
  return Math.min(Math.ceil(ms), MAX_TIMER_MS);
}

/** Seconds from a request (int64 as a string or number) as a clamped delay in ms. */
export function secondsToDelay(seconds: number | string | bigint): number {
  const value = typeof seconds === 'bigint' ? seconds : BigInt(typeof seconds === 'number' ? Math.trunc(seconds) : seconds || '0');
  if (value <= 0n) return 0;
  return value * 1000n >= BigInt(MAX_TIMER_MS) ? MAX_TIMER_MS : Number(value) * 1000;
}

/** setTimeout with the delay clamped. */
export function after(ms: number, fn: () => void): NodeJS.Timeout {
  return setTimeout(fn, clampDelay(ms));
}

/** A promise that resolves after `ms` (clamped). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, clampDelay(ms)));
}

/** setInterval with the period clamped (at least 1 ms). */
export function every(ms: number, fn: () => void): NodeJS.Timeout {
  return setInterval(fn, Math.max(1, clampDelay(ms)));
}
