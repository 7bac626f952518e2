import { describe, expect, it } from 'vitest';
import { after, clampDelay, MAX_TIMER_MS, secondsToDelay } from '../../src/util/timer.js';

describe('clamped timers', () => {
  it('keeps delays Node honours and clamps the rest', () => {
    expect(clampDelay(1500)).toBe(1500);
    expect(clampDelay(0.2)).toBe(1);
    expect(clampDelay(-5)).toBe(0);
    expect(clampDelay(Number.NaN)).toBe(0);
    expect(clampDelay(30 * 24 * 3600 * 1000)).toBe(MAX_TIMER_MS);
    expect(clampDelay(Number.POSITIVE_INFINITY)).toBe(MAX_TIMER_MS);
  });

  it('turns request seconds (int64 strings) into delays without losing or overflowing', () => {
    expect(secondsToDelay('10')).toBe(10_000);
    expect(secondsToDelay(2)).toBe(2000);
    expect(secondsToDelay('0')).toBe(0);
    expect(secondsToDelay('-3')).toBe(0);
    expect(secondsToDelay('')).toBe(0);
    expect(secondsToDelay('2592000')).toBe(MAX_TIMER_MS);
    expect(secondsToDelay('9223372036854775807')).toBe(MAX_TIMER_MS);
  });

  it('does not fire a 30-day timer at once', async () => {
    let fired = false;
    const timer = after(30 * 24 * 3600 * 1000, () => (fired = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    clearTimeout(timer);
    expect(fired).toBe(false);
  });
});
