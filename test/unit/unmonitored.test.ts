import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessWatcher, identityOf, isRunning, signalNumberOf, signalProcess } from '../../src/oci/unmonitored.js';

const children: ChildProcess[] = [];

function sleeper(): ChildProcess {
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

describe('process identities', () => {
  it('names a live process by pid and start time, and nothing once it has ended', async () => {
    const child = sleeper();
    const identity = await identityOf(child.pid!);
    expect(identity).toEqual({ pid: child.pid, startTime: expect.stringMatching(/^\d+$/) });
    expect(await isRunning(identity!)).toBe(true);
    // A pid reused by another process has another start time.
    expect(await isRunning({ pid: child.pid!, startTime: '1' })).toBe(false);
    child.kill('SIGKILL');
    await exited(child);
    expect(await identityOf(child.pid!)).toBeUndefined();
    expect(await isRunning(identity!)).toBe(false);
  });

  it('signals only the process it names', async () => {
    const child = sleeper();
    const identity = (await identityOf(child.pid!))!;
    expect(await signalProcess({ ...identity, startTime: '1' }, 9)).toBe(false);
    expect(await isRunning(identity)).toBe(true);
    expect(await signalProcess(identity, 9)).toBe(true);
    await exited(child);
    expect(child.signalCode).toBe('SIGKILL');
  });

  it('reads signals as runc takes them', () => {
    expect(signalNumberOf('KILL')).toBe(9);
    expect(signalNumberOf('SIGTERM')).toBe(15);
    expect(signalNumberOf('sigint')).toBe(2);
    expect(signalNumberOf('9')).toBe(9);
    expect(signalNumberOf('NOSUCH')).toBeUndefined();
  });
});

describe('ProcessWatcher', () => {
  it('reports each end once, and never for a process it forgot', async () => {
    const ended: string[] = [];
    const watcher = new ProcessWatcher((id) => ended.push(id), 10);
    const [a, b] = [sleeper(), sleeper()];
    watcher.watch('a', (await identityOf(a.pid!))!);
    watcher.watch('b', (await identityOf(b.pid!))!);
    watcher.forget('b');
    a.kill('SIGKILL');
    b.kill('SIGKILL');
    await Promise.all([exited(a), exited(b)]);
    await expect.poll(() => ended, { timeout: 5000 }).toEqual(['a']);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(ended).toEqual(['a']);
    watcher.stop();
  });

  it('reports at once the end of a process it was told to expect', async () => {
    const ended: string[] = [];
    // A regular look far in the future: only expectEnd can report it.
    const watcher = new ProcessWatcher((id) => ended.push(id), 3_600_000);
    const child = sleeper();
    watcher.watch('c', (await identityOf(child.pid!))!);
    child.kill('SIGKILL');
    await exited(child);
    await watcher.expectEnd('c');
    expect(ended).toEqual(['c']);
    expect(watcher.identityOf('c')).toBeUndefined();
    watcher.stop();
  });
});
