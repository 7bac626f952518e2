import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConmonRuntime } from '../../src/oci/conmon.js';
import { endExecSessions } from '../../src/oci/exec-sessions.js';
import { parseStat } from '../../src/util/proc.js';
import { RuntimeHandlers } from '../../src/oci/handlers.js';
import { Runc } from '../../src/oci/runc.js';
import { expectAllDead, isRunning } from './processes.js';

let dir: string;
/** A stand-in for runc (or conmon): its comm is its file name, and it names a session on its command line. */
let monitor: string;
/** One that never returns, whatever happens to its child. */
let stubborn: string;
const started: ChildProcess[] = [];
/** Every session member a monitor started: in sessions of their own, their monitor's group does not take them. */
const members: number[] = [];

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-execs-'));
  monitor = path.join(dir, 'fake-monitor');
  // Like runc exec: the exec'd process is its child, leading a session of its own (here with
  // two more members), and it returns once that child has; HOLD says how long the child runs.
  await fs.writeFile(
    monitor,
    '#!/bin/sh\nsetsid sh -c \'sleep "$HOLD" & echo $! >> "$PIDS"; sleep "$HOLD" & echo $! >> "$PIDS"; echo $$ >> "$PIDS"; wait\' &\nwait\n',
    { mode: 0o755 },
  );
  stubborn = path.join(dir, 'stubborn');
  await fs.writeFile(stubborn, '#!/bin/sh\nsetsid sleep 1000 &\nwhile :; do sleep 0.1; done\n', { mode: 0o755 });
});

afterEach(() => {
  for (const child of started.splice(0)) if (child.pid) killGroup(child.pid);
  for (const pid of members.splice(0)) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Gone.
  }
}

/** Start the stand-in as a monitor of `sessionDir`; resolves with it and the pids of the session it runs. */
async function startMonitor(sessionDir: string, hold = 1000): Promise<{ child: ChildProcess; session: number[] }> {
  await fs.mkdir(sessionDir, { recursive: true });
  const pids = path.join(dir, `${path.basename(sessionDir)}.pids`);
  const child = spawn(monitor, ['--process', path.join(sessionDir, 'process.json')], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, HOLD: String(hold), PIDS: pids },
  });
  started.push(child);
  const session = await waitForPids(pids, 3);
  members.push(...session);
  return { child, session };
}

async function waitForPids(file: string, count: number): Promise<number[]> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const pids = (await fs.readFile(file, 'utf8').catch(() => '')).split(/\s+/).filter(Boolean).map(Number);
    if (pids.length >= count) return pids;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${file}: fewer than ${count} pids after 5 s`);
}

const MONITORS = new Set(['fake-monitor']);

describe('parseStat', () => {
  it('reads the fields after a comm with spaces and parentheses', () => {
    const fields = ['S', '1', '40', '41', '0', '-1', ...Array(13).fill('0'), '987654'];
    expect(parseStat(`42 (a (b) c) ${fields.join(' ')} 0 0\n`)).toEqual({
      pid: 42,
      comm: 'a (b) c',
      state: 'S',
      ppid: 1,
      pgid: 40,
      sid: 41,
      startTime: '987654',
    });
  });

  it('refuses what is not a stat line', () => {
    expect(parseStat('')).toBeUndefined();
    expect(parseStat('42 (x) S 1')).toBeUndefined();
  });
});

describe('endExecSessions', () => {
  it("kills the whole session of a monitor's child, and the monitor then returns", async () => {
    const { child, session } = await startMonitor(path.join(dir, 'a', 'execs', 's1'));
    await endExecSessions([path.join(dir, 'a', 'execs', 's1')], MONITORS);
    await expectAllDead([...session, child.pid!]);
  });

  it('leaves alone a monitor of another session, and processes that are not monitors', async () => {
    const other = await startMonitor(path.join(dir, 'b', 'execs', 's2'));
    const bystander = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
    started.push(bystander);
    await endExecSessions([path.join(dir, 'b', 'execs', 'gone'), path.join(dir, 'b', 'execs')], MONITORS);
    expect([...other.session, other.child.pid!, bystander.pid!].filter(isRunning)).toHaveLength(5);
  });

  it('kills a monitor that does not return after its child was killed', async () => {
    const sessionDir = path.join(dir, 'c', 'execs', 's3');
    const { child, session } = await startMonitor(sessionDir);
    // A second monitor of the session, which would never end by itself.
    const loop = spawn(stubborn, ['--bundle', sessionDir], { detached: true, stdio: 'ignore' });
    started.push(loop);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const begun = Date.now();
    await endExecSessions([sessionDir], new Set([...MONITORS, 'stubborn']));
    await expectAllDead([...session, child.pid!, loop.pid!]);
    expect(Date.now() - begun).toBeLessThan(4000);
  });
});

describe('ConmonRuntime exec sessions', () => {
  const id = 'c'.repeat(64);
  let bundleRoot: string;
  let runtime: ConmonRuntime;

  beforeAll(async () => {
    bundleRoot = path.join(dir, 'bundles');
    await fs.mkdir(path.join(bundleRoot, id), { recursive: true });
    // An exec runs the container's own process with the command's arguments.
    await fs.writeFile(path.join(bundleRoot, id, 'config.json'), JSON.stringify({ process: { args: ['sleep'], cwd: '/' } }));
    // The stand-in plays runc: runc exec of a live ExecSync, and the monitor of a leftover session.
    const runc = new Runc(monitor, path.join(dir, 'runc-root'));
    const features = { recursiveReadOnlyMounts: false, idmappedMounts: false, userNamespaces: false, runtimeVersion: 'stand-in', missing: {} };
    const handlers = new RuntimeHandlers('runc', [{ name: 'runc', cli: runc, version: 'stand-in', features }]);
    runtime = new ConmonRuntime({ conmon: '/usr/bin/conmon', handlers, bundleRoot, exitDir: path.join(dir, 'exits'), logger: pino({ level: 'silent' }) });
    await runtime.open();
  });

  afterAll(() => runtime.close());

  it('ends what an earlier daemon left, in both layouts, and never a session it serves', async () => {
    const leftover = path.join(bundleRoot, id, 'execs', 'dead0001');
    const { child, session } = await startMonitor(leftover);
    const legacy = path.join(bundleRoot, `${id.slice(0, 12)}-exec-0123abcd`);
    await fs.mkdir(legacy);
    await fs.writeFile(path.join(legacy, 'process.json'), '{}');

    // A live ExecSync whose "runc" runs for a second (HOLD=1 in the daemon's environment).
    process.env.HOLD = '1';
    process.env.PIDS = path.join(dir, 'live.pids');
    const live = runtime.exec(id, ['true'], { timeoutMs: 10_000 });
    const liveSession = await waitForPids(path.join(dir, 'live.pids'), 3);
    members.push(...liveSession);
    const [liveDir] = await fs.readdir(path.join(bundleRoot, id, 'execs')).then((names) => names.filter((n) => n !== 'dead0001'));

    await runtime.endOrphanedExecSessions();
    await expectAllDead([...session, child.pid!]);
    expect(await fs.readdir(bundleRoot)).toEqual([id]);
    expect(await fs.readdir(path.join(bundleRoot, id, 'execs'))).toEqual([liveDir]);
    expect(liveSession.filter(isRunning)).toHaveLength(3);

    expect((await live).exitCode).toBe(0);
    expect(await fs.readdir(path.join(bundleRoot, id, 'execs'))).toEqual([]);
    delete process.env.HOLD;
    delete process.env.PIDS;
  });

  it('removes every session directory with the container', async () => {
    const other = 'd'.repeat(64);
    const sessionDir = path.join(bundleRoot, other, 'execs', 'left0001');
    const { child, session } = await startMonitor(sessionDir);
    await runtime.delete(other);
    await expectAllDead([...session, child.pid!]);
    expect(await fs.readdir(bundleRoot)).toEqual([id]);
  });
});
