import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IDLE_GC_DELAY_MS, disableIdleGc, enableIdleGc, noteActivity } from '../../src/util/idle-gc.js';

describe('the idle collection', () => {
  const collect = vi.fn();
  const original = globalThis.gc;

  beforeEach(() => {
    vi.useFakeTimers();
    collect.mockReset();
    globalThis.gc = collect as unknown as typeof globalThis.gc;
  });
  afterEach(() => {
    disableIdleGc();
    globalThis.gc = original;
    vi.useRealTimers();
  });

  it('collects once, when the daemon has been quiet for the delay after its last call', () => {
    enableIdleGc();
    noteActivity();
    vi.advanceTimersByTime(IDLE_GC_DELAY_MS / 2);
    noteActivity(); // a later call pushes the collection back
    vi.advanceTimersByTime(IDLE_GC_DELAY_MS - 1);
    expect(collect).not.toHaveBeenCalled();
    vi.advanceTimersByTime(IDLE_GC_DELAY_MS);
    expect(collect).toHaveBeenCalledTimes(1);
    // Quiet with no new call: nothing more to collect.
    vi.advanceTimersByTime(10 * IDLE_GC_DELAY_MS);
    expect(collect).toHaveBeenCalledTimes(1);
    noteActivity();
    vi.advanceTimersByTime(IDLE_GC_DELAY_MS);
    expect(collect).toHaveBeenCalledTimes(2);
  });

  it('does nothing unless turned on', () => {
    noteActivity();
    vi.advanceTimersByTime(10 * IDLE_GC_DELAY_MS);
    expect(collect).not.toHaveBeenCalled();
  });
});
