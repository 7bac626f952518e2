import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { ParkedCreations } from '../../src/util/parking.js';

const log = pino({ level: 'silent' });

function deferred() {
  let resolve!: (id: string) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<string>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('creations kept for the retry of a client that gave up', () => {
  it('hands a creation whose client cancelled to the next call with the same key', async () => {
    const parked = new ParkedCreations('thing', 60_000, async () => undefined);
    const work = deferred();
    const create = vi.fn(() => work.promise);
    const controller = new AbortController();
    const first = parked.create('k', create, log, controller.signal);
    controller.abort();
    await expect(first).rejects.toMatchObject({ code: 'Canceled' });
    work.resolve('id-1');
    await new Promise((r) => setImmediate(r));
    await expect(parked.create('k', create, log)).resolves.toBe('id-1');
    expect(create).toHaveBeenCalledTimes(1);
    // Claimed once: the next call makes a new one.
    const again = vi.fn(async () => 'id-2');
    await expect(parked.create('k', again, log)).resolves.toBe('id-2');
  });

  it('lets a concurrent call with the same key join the one under way', async () => {
    const parked = new ParkedCreations('thing', 60_000, async () => undefined);
    const work = deferred();
    const a = parked.create('k', () => work.promise, log);
    const b = parked.create('k', async () => 'other', log);
    work.resolve('shared');
    expect(await Promise.all([a, b])).toEqual(['shared', 'shared']);
  });

  it('forgets a failed creation, so the retry starts afresh', async () => {
    const parked = new ParkedCreations('thing', 60_000, async () => undefined);
    await expect(parked.create('k', async () => Promise.reject(new Error('boom')), log)).rejects.toThrow('boom');
    await expect(parked.create('k', async () => 'fresh', log)).resolves.toBe('fresh');
  });

  it('rolls back a creation nobody claims in time', async () => {
    vi.useFakeTimers();
    try {
      const rolledBack: string[] = [];
      const parked = new ParkedCreations('thing', 1000, async (id) => void rolledBack.push(id));
      const work = deferred();
      const controller = new AbortController();
      const first = parked.create('k', () => work.promise, log, controller.signal);
      controller.abort();
      await expect(first).rejects.toMatchObject({ code: 'Canceled' });
      work.resolve('orphan');
      await vi.advanceTimersByTimeAsync(1001);
      expect(rolledBack).toEqual(['orphan']);
    } finally {
      vi.useRealTimers();
    }
  });
});
