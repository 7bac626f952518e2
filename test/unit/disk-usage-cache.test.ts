/**
 * Writable-layer usage: the walk (metrics/filesystem.ts) over temporary directories, and the
 * cache in front of it (metrics/disk-usage-cache.ts) with a fake clock. Walks are counted or
 * held open by the test, so nothing depends on how long anything takes.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DiskUsageCache, type DiskUsageCacheOptions } from '../../src/metrics/disk-usage-cache.js';
import { diskUsage, measureDiskUsage, recheckTree, walkTree, type DiskUsage } from '../../src/metrics/filesystem.js';

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-du-'));
  dirs.push(dir);
  return dir;
}

/** What `du` would add up: each inode below `dir` once, by its allocated blocks. */
async function expectedUsage(dir: string): Promise<DiskUsage> {
  const seen = new Set<number>();
  const total = { bytes: 0, inodes: 0 };
  const walk = async (at: string): Promise<void> => {
    for (const name of await fs.readdir(at)) {
      const stat = await fs.lstat(path.join(at, name));
      if (seen.has(stat.ino)) continue;
      seen.add(stat.ino);
      total.inodes += 1;
      total.bytes += stat.blocks * 512;
      if (stat.isDirectory()) await walk(path.join(at, name));
    }
  };
  await walk(dir);
  return total;
}

describe('the writable-layer walk', () => {
  it('counts every file, directory and symlink below the directory, by allocated blocks', async () => {
    const dir = await tempDir();
    await fs.mkdir(path.join(dir, 'a/b/c'), { recursive: true });
    await fs.writeFile(path.join(dir, 'a/b/c/data'), Buffer.alloc(64 * 1024, 1));
    await fs.writeFile(path.join(dir, 'top'), 'x');
    await fs.symlink('top', path.join(dir, 'link'));
    const usage = await measureDiskUsage(dir);
    expect(usage).toEqual(await expectedUsage(dir));
    expect(usage!.inodes).toBe(6);
    expect(usage!.bytes).toBeGreaterThanOrEqual(64 * 1024);
  });

  it('counts a hard-linked file once', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'one'), Buffer.alloc(32 * 1024, 1));
    await fs.link(path.join(dir, 'one'), path.join(dir, 'two'));
    await fs.mkdir(path.join(dir, 'sub'));
    await fs.link(path.join(dir, 'one'), path.join(dir, 'sub/three'));
    const usage = (await measureDiskUsage(dir))!;
    const single = await fs.lstat(path.join(dir, 'one'));
    expect(usage.inodes).toBe(2);
    expect(usage.bytes).toBe(single.blocks * 512 + (await fs.lstat(path.join(dir, 'sub'))).blocks * 512);
  });

  it('does not follow symlinks, to directories or files outside', async () => {
    const outside = await tempDir();
    await fs.writeFile(path.join(outside, 'big'), Buffer.alloc(1024 * 1024, 1));
    const dir = await tempDir();
    await fs.symlink(outside, path.join(dir, 'to-dir'));
    await fs.symlink(path.join(outside, 'big'), path.join(dir, 'to-file'));
    const usage = (await measureDiskUsage(dir))!;
    expect(usage.inodes).toBe(2);
    expect(usage.bytes).toBeLessThan(64 * 1024);
  });

  it('answers undefined for a directory that is not there, which diskUsage reports as zero', async () => {
    const dir = path.join(await tempDir(), 'gone');
    expect(await measureDiskUsage(dir)).toBeUndefined();
    expect(await diskUsage(dir)).toEqual({ bytes: 0, inodes: 0 });
  });

  it('lets the event loop turn while it walks', async () => {
    const dir = await tempDir();
    for (let i = 0; i < 50; i++) await fs.writeFile(path.join(dir, `f${i}`), '');
    let turns = 0;
    let ticking = true;
    const tick = (): void => {
      turns += 1;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    // Slices of 0 ms: a yield after every entry.
    const usage = await measureDiskUsage(dir, { sliceMs: 0 });
    ticking = false;
    expect(usage!.inodes).toBe(50);
    expect(turns).toBeGreaterThanOrEqual(40);
  });
});

/** Set the mtime of `dir` and every directory below it an hour back: changed long before any walk. */
async function ageDirectories(dir: string): Promise<void> {
  const hourAgo = new Date(Date.now() - 3_600_000);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) if (entry.isDirectory()) await ageDirectories(path.join(dir, entry.name));
  await fs.utimes(dir, hourAgo, hourAgo);
}

describe('snapshots of small trees', () => {
  async function smallTree(): Promise<string> {
    const dir = await tempDir();
    await fs.mkdir(path.join(dir, 'etc'));
    for (const name of ['hosts', 'resolv.conf', 'hostname']) await fs.writeFile(path.join(dir, 'etc', name), '');
    await fs.writeFile(path.join(dir, 'log'), 'x');
    await ageDirectories(dir);
    return dir;
  }

  it('keeps a snapshot of a tree up to the given size only', async () => {
    const dir = await smallTree();
    const small = (await walkTree(dir, { snapshotUpTo: 5 }))!;
    expect(small.inodes).toBe(5);
    expect(small.snapshot!.dirs.map((d) => path.relative(dir, d.path))).toEqual(['', 'etc']);
    expect(small.snapshot!.others).toHaveLength(4);
    expect((await walkTree(dir, { snapshotUpTo: 4 }))!.snapshot).toBeUndefined();
    expect((await walkTree(dir))!.snapshot).toBeUndefined();
  });

  it('answers from lstat alone while no directory changed, file growth included', async () => {
    const dir = await smallTree();
    const first = (await walkTree(dir, { snapshotUpTo: 64 }))!;
    expect(recheckTree(first.snapshot!)).toMatchObject({ bytes: first.bytes, inodes: 5 });
    await fs.appendFile(path.join(dir, 'log'), Buffer.alloc(256 * 1024, 1));
    const grown = recheckTree(first.snapshot!)!;
    expect(grown.inodes).toBe(5);
    expect(grown).toMatchObject(await expectedUsage(dir));
    expect(grown.bytes).toBeGreaterThanOrEqual(first.bytes + 256 * 1024);
  });

  it('gives up when an entry is added, removed or replaced, or a directory changed just before the walk', async () => {
    const cases: Array<(dir: string) => Promise<unknown>> = [
      (dir) => fs.writeFile(path.join(dir, 'etc', 'new'), ''),
      (dir) => fs.rm(path.join(dir, 'etc', 'hosts')),
      (dir) => fs.rename(path.join(dir, 'log'), path.join(dir, 'etc', 'log')),
      (dir) => fs.rm(dir, { recursive: true }),
    ];
    for (const change of cases) {
      const dir = await smallTree();
      const { snapshot } = (await walkTree(dir, { snapshotUpTo: 64 }))!;
      await change(dir);
      expect(recheckTree(snapshot!)).toBeUndefined();
    }
    const fresh = await tempDir();
    await fs.writeFile(path.join(fresh, 'file'), '');
    expect(recheckTree((await walkTree(fresh, { snapshotUpTo: 64 }))!.snapshot!)).toBeUndefined();
  });
});

/** A measure the test controls: each walk waits until released, and every walk is recorded. */
class HeldWalks {
  readonly started: string[] = [];
  private readonly pending: Array<{ dir: string; release: (usage: DiskUsage | undefined) => void }> = [];
  running = 0;
  maxRunning = 0;
  readonly answers = new Map<string, DiskUsage | undefined>();

  readonly measure = (dir: string): Promise<DiskUsage | undefined> => {
    this.started.push(dir);
    this.running += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    return new Promise((resolve) =>
      this.pending.push({
        dir,
        release: (usage) => {
          this.running -= 1;
          resolve(usage);
        },
      }),
    );
  };

  /** Finish every walk started so far with the answer set for its directory. */
  releaseAll(): number {
    const now = this.pending.splice(0);
    for (const walk of now) walk.release(this.answers.has(walk.dir) ? this.answers.get(walk.dir) : { bytes: 1000, inodes: 1000 });
    return now.length;
  }
}

/** Let promise callbacks run (the cache's bookkeeping after a walk is released). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Release walks, as they start, until `work` is done. */
async function releaseUntil<T>(held: HeldWalks, work: Promise<T>): Promise<T> {
  let done = false;
  void work.finally(() => (done = true));
  while (!done) {
    await settle();
    held.releaseAll();
  }
  return work;
}

describe('the writable-layer usage cache', () => {
  function cacheWith(options: DiskUsageCacheOptions = {}) {
    const clock = { now: 0 };
    let walks = 0;
    const cache = new DiskUsageCache({
      refreshIntervalMs: 10_000,
      smallLayerInodes: 0,
      now: () => clock.now,
      measure: (dir) => {
        walks += 1;
        return measureDiskUsage(dir);
      },
      ...options,
    });
    return { cache, clock, walks: () => walks };
  }

  it('walks a directory it does not know and waits, then answers from the cache without walking', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'first'), Buffer.alloc(8192, 1));
    const { cache, clock, walks } = cacheWith();
    const first = await cache.usage(dir);
    expect(first).toEqual(await expectedUsage(dir));
    await fs.writeFile(path.join(dir, 'second'), Buffer.alloc(8192, 1));
    clock.now = 9_999;
    expect(await cache.usage(dir)).toEqual(first);
    await cache.idle();
    expect(walks()).toBe(1);
  });

  it('answers the old value once it is due and walks again in the background for the next call', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'first'), 'x');
    const { cache, clock, walks } = cacheWith();
    const first = await cache.usage(dir);
    await fs.writeFile(path.join(dir, 'second'), 'y');
    clock.now = 10_000;
    expect(await cache.usage(dir)).toEqual(first);
    await cache.idle();
    expect(walks()).toBe(2);
    expect(await cache.usage(dir)).toEqual(await expectedUsage(dir));
    expect((await cache.usage(dir)).inodes).toBe(2);
    await cache.idle();
    expect(walks()).toBe(2);
  });

  it('measures a small layer again at every call, so what was just written shows', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'log'), 'x');
    await ageDirectories(dir);
    let walks = 0;
    const cache = new DiskUsageCache({
      now: () => 0,
      measure: (at) => {
        walks += 1;
        return walkTree(at, { snapshotUpTo: 64 });
      },
    });
    expect((await cache.usage(dir)).inodes).toBe(1);
    // Grown in place: the snapshot tells, without a walk.
    await fs.appendFile(path.join(dir, 'log'), Buffer.alloc(512 * 1024, 1));
    expect((await cache.usage(dir)).bytes).toBeGreaterThanOrEqual(512 * 1024);
    expect(walks).toBe(1);
    // A new file: the directory changed, so it is walked.
    await fs.writeFile(path.join(dir, 'fill'), Buffer.alloc(1024 * 1024, 1));
    const after = await cache.usage(dir);
    expect(after).toEqual(await expectedUsage(dir));
    expect(after.inodes).toBe(2);
    expect(walks).toBe(2);
  });

  it('looks at nothing while the container has not run since the last measurement', async () => {
    const dir = await tempDir();
    const { cache, clock, walks } = cacheWith({ smallLayerInodes: 64 });
    const first = await cache.usage(dir, 1000);
    // Nothing of the container ran (its CPU usage stands still): the layer is as measured.
    await fs.writeFile(path.join(dir, 'by-the-host'), 'x');
    clock.now = 60_000;
    expect(await cache.usage(dir, 1000)).toEqual(first);
    expect(walks()).toBe(1);
    // It ran: measured again, whether small (at once) or large (in the background).
    expect((await cache.usage(dir, 1500)).inodes).toBe(1);
    expect(walks()).toBe(2);
    expect((await cache.usage(dir)).inodes).toBe(1);
    expect(walks()).toBe(3);
  });

  it('does not walk a large layer again, however old its figure, while the container is idle', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'file'), 'x');
    const { cache, clock, walks } = cacheWith();
    await cache.usage(dir, 7);
    for (const now of [10_000, 20_000, 600_000]) {
      clock.now = now;
      await cache.usage(dir, 7);
    }
    await cache.idle();
    expect(walks()).toBe(1);
    // Known good as of the last idle call: due again one interval after it.
    clock.now = 605_000;
    await cache.usage(dir, 8);
    await cache.idle();
    expect(walks()).toBe(1);
    clock.now = 610_000;
    await cache.usage(dir, 9);
    await cache.idle();
    expect(walks()).toBe(2);
  });

  it('shares one walk among the callers that arrive while it runs', async () => {
    const held = new HeldWalks();
    const clock = { now: 0 };
    const cache = new DiskUsageCache({ smallLayerInodes: 0, now: () => clock.now, measure: held.measure });
    const callers = [cache.usage('/layer'), cache.usage('/layer'), cache.usage('/layer')];
    await settle();
    expect(held.started).toEqual(['/layer']);
    held.releaseAll();
    expect(await Promise.all(callers)).toEqual([1, 2, 3].map(() => ({ bytes: 1000, inodes: 1000 })));
    // Stale: every caller gets the old value at once, and one refresh runs for all of them.
    clock.now = 60_000;
    held.answers.set('/layer', { bytes: 2000, inodes: 2000 });
    for (let i = 0; i < 5; i++) expect(await cache.usage('/layer')).toEqual({ bytes: 1000, inodes: 1000 });
    await settle();
    expect(held.started).toEqual(['/layer', '/layer']);
    held.releaseAll();
    await cache.idle();
    expect(await cache.usage('/layer')).toEqual({ bytes: 2000, inodes: 2000 });
  });

  it('drops a directory that is gone when walked again', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'file'), 'x');
    const { cache, clock } = cacheWith();
    const first = await cache.usage(dir);
    expect(cache.size).toBe(1);
    await fs.rm(dir, { recursive: true });
    clock.now = 10_000;
    // The last measurement still answers; the refresh finds nothing and forgets the directory.
    expect(await cache.usage(dir)).toEqual(first);
    await cache.idle();
    expect(cache.size).toBe(0);
    expect(await cache.usage(dir)).toEqual({ bytes: 0, inodes: 0 });
    expect(cache.size).toBe(0);
  });

  it('runs at most two background walks at once across directories, and gets to all of them', async () => {
    const held = new HeldWalks();
    const clock = { now: 0 };
    const cache = new DiskUsageCache({ smallLayerInodes: 0, now: () => clock.now, measure: held.measure });
    const layers = ['/l0', '/l1', '/l2', '/l3', '/l4', '/l5'];
    await releaseUntil(held, Promise.all(layers.map((dir) => cache.usage(dir))));
    held.maxRunning = 0;
    clock.now = 10_000;
    for (const dir of layers) await cache.usage(dir);
    await settle();
    expect(held.running).toBe(2);
    await releaseUntil(held, cache.idle());
    expect(held.maxRunning).toBe(2);
    expect(held.started.slice(layers.length).sort()).toEqual(layers);
  });

  it('does not make a caller wait behind background walks', async () => {
    const held = new HeldWalks();
    const clock = { now: 0 };
    const cache = new DiskUsageCache({ smallLayerInodes: 0, now: () => clock.now, measure: held.measure });
    const first = [cache.usage('/big0'), cache.usage('/big1')];
    await settle();
    held.releaseAll();
    await Promise.all(first);
    clock.now = 10_000;
    await cache.usage('/big0');
    await cache.usage('/big1');
    await settle();
    expect(held.running).toBe(2);
    // Both background slots are taken; a new container's first walk still starts at once.
    const fresh = cache.usage('/new');
    await settle();
    expect(held.started.at(-1)).toBe('/new');
    expect(held.running).toBe(3);
    held.releaseAll();
    expect(await fresh).toEqual({ bytes: 1000, inodes: 1000 });
  });

  it('forgets directories nobody asked for in a long time, and those of containers that are gone', async () => {
    const [a, b, c] = [await tempDir(), await tempDir(), await tempDir()];
    const { cache, clock } = cacheWith({ idleMs: 600_000 });
    await cache.usage(a);
    await cache.usage(b);
    await cache.usage(c);
    clock.now = 590_000;
    await cache.usage(b);
    await cache.usage(c);
    clock.now = 600_000;
    await cache.usage(b);
    await cache.idle();
    expect(cache.size).toBe(2);
    cache.retain(new Set([b]));
    expect(cache.size).toBe(1);
  });
});
