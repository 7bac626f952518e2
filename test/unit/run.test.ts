import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_MAX_OUTPUT_BYTES, exec, killProcessGroup, run } from '../../src/util/run.js';
import { InternalError } from '../../src/errors.js';
import { expectAllDead } from './processes.js';

let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-run-'));
});

afterAll(async () => {
  // Whatever a failed test left running: every pid the scripts wrote down.
  for (const pid of await pidsIn(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  await fs.rm(dir, { recursive: true, force: true });
});

async function script(name: string, body: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, `#!/bin/sh\n${body}`, { mode: 0o755 });
  return file;
}

/** Every pid the scripts wrote into `*.pids` files under `where`. */
async function pidsIn(where: string): Promise<number[]> {
  const files = (await fs.readdir(where)).filter((f) => f.endsWith('.pids'));
  const texts = await Promise.all(files.map((f) => fs.readFile(path.join(where, f), 'utf8')));
  return texts.flatMap((t) => t.split(/\s+/).filter(Boolean).map(Number));
}

async function pidsFrom(file: string): Promise<number[]> {
  return (await fs.readFile(file, 'utf8')).split(/\s+/).filter(Boolean).map(Number);
}

function ownProcessGroup(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

describe('exec', () => {
  it('answers at once for a child that exits immediately', async () => {
    const started = Date.now();
    const result = await exec('true', []);
    expect(result).toMatchObject({ stdout: '', stderr: '', exitCode: 0, signal: null, timedOut: false });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('ignores input a child exits without reading, and reports its status', async () => {
    const result = await exec('sh', ['-c', 'exit 7'], { input: 'x'.repeat(1 << 20) });
    expect(result.exitCode).toBe(7);
  });

  it('rejects when the program cannot be started', async () => {
    await expect(exec(path.join(dir, 'no-such-program'), [])).rejects.toBeInstanceOf(InternalError);
  });

  it('delivers the result when the child exits, though a grandchild keeps its stdout open, and kills that grandchild', async () => {
    const pids = path.join(dir, 'fork.pids');
    const child = await script('fork-and-exit', 'sleep 30 &\necho $! > "$1"\necho done\n');
    const started = Date.now();
    const result = await exec(child, [pids], { timeoutMs: 20_000 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result).toMatchObject({ stdout: 'done\n', exitCode: 0, timedOut: false });
    await expectAllDead(await pidsFrom(pids));
  }, 10_000);

  it('kills a child that hangs and every process it started when the timeout fires', async () => {
    const pids = path.join(dir, 'hang.pids');
    // A child, a grandchild and a great-grandchild, all holding stdout, all sleeping.
    const child = await script(
      'hang',
      [
        'echo $$ >> "$1"',
        'sleep 30 &',
        'echo $! >> "$1"',
        `sh -c 'sleep 30 & echo $! >> "$0"; wait' "$1" &`,
        'echo $! >> "$1"',
        'wait',
      ].join('\n'),
    );
    const started = Date.now();
    const result = await exec(child, [pids], { timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(2500);
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBeNull();
    const all = await pidsFrom(pids);
    expect(all).toHaveLength(4);
    await expectAllDead(all);
  }, 10_000);

  it('keeps the cap of a child printing 50 MB and kills it there, with memory bounded by the cap', async () => {
    const before = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers - before)), 5);
    const started = Date.now();
    let result;
    try {
      result = await exec('sh', ['-c', 'head -c 52428800 /dev/zero | tr "\\0" x; echo finished >&2'], { timeoutMs: 20_000 });
    } finally {
      clearInterval(sampler);
    }
    expect(result.stdout.length).toBe(DEFAULT_MAX_OUTPUT_BYTES);
    expect(result.stdout).toMatch(/^x+$/);
    expect(result.truncated).toEqual({ stdout: true, stderr: false });
    // Killed at the cap: it never got to the end, and never made the daemon read 50 MB.
    expect(result.signal).toBe('SIGKILL');
    expect(result.stderr).toBe('');
    expect(peak).toBeLessThan(16 * 1024 * 1024);
    expect(Date.now() - started).toBeLessThan(2000);
  }, 20_000);

  it('takes a smaller cap per call', async () => {
    const result = await exec('sh', ['-c', 'printf 0123456789; printf abcdefghij >&2'], { maxOutputBytes: 4, onOverflow: 'drop' });
    expect(result).toMatchObject({ stdout: '0123', stderr: 'abcd', exitCode: 0, truncated: { stdout: true, stderr: true } });
  });

  it('lets a child run on past the cap when told to drop the rest', async () => {
    const result = await exec('sh', ['-c', 'head -c 3000000 /dev/zero; echo finished >&2'], { onOverflow: 'drop' });
    expect(result).toMatchObject({ exitCode: 0, stderr: 'finished\n', truncated: { stdout: true, stderr: false } });
    expect(result.stdout.length).toBe(DEFAULT_MAX_OUTPUT_BYTES);
  });
});

describe('run', () => {
  it('quotes at most a few hundred characters of a failed command\'s output', async () => {
    const err = (await run('sh', ['-c', 'head -c 100000 /dev/zero | tr "\\0" e >&2; exit 1']).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(InternalError);
    expect(err.message).toMatch(/^sh -c .*: eeee/);
    expect(err.message.length).toBeLessThan(1000);
  });

  it('says a command printed too much', async () => {
    await expect(run('sh', ['-c', 'yes'], { maxOutputBytes: 1000 })).rejects.toThrow(/^sh -c yes: printed more than 1000 bytes on stdout; killed: y\ny\n/);
  });

  it('says a command timed out', async () => {
    await expect(run('sleep', ['30'], { timeoutMs: 100 })).rejects.toThrow(/sleep 30: timed out after 100 ms/);
  });
});

describe('killProcessGroup', () => {
  it('never signals the daemon\'s own process or group', () => {
    expect(killProcessGroup(process.pid)).toBe(false);
    expect(killProcessGroup(ownProcessGroup())).toBe(false);
    expect(killProcessGroup(0)).toBe(false);
    expect(killProcessGroup(1)).toBe(false);
    expect(killProcessGroup(undefined)).toBe(false);
  });
});
