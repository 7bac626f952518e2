import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRemoteCommand, type Transport } from '../../src/cli/streaming-client.js';
import { collector, podConfig, sleep, startTestDaemon, type TestDaemon, TSCRI_BIN } from './harness.js';
import { exists, isAlive, processesMatching } from './host.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');

/**
 * An exec session's process, its monitor (conmon for a tty, `runc exec` without) and its files
 * must not outlive the session: not when the daemon that served it restarts (gracefully or by
 * SIGKILL), not when its container is removed, and not when its client disconnects.
 */
describe('exec sessions end with their client, their daemon or their container', () => {
  let daemon: TestDaemon;
  let podId: string;
  let pod: Record<string, unknown>;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
    pod = podConfig('execs', { log_directory: path.join(daemon.dirs.base, 'logs') });
    podId = (await daemon.runtime('RunPodSandbox', { config: pod })).pod_sandbox_id;
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function container(name: string): Promise<string> {
    const config = { metadata: { name }, image: { image: BUSYBOX }, command: ['sleep', '3600'], log_path: `${name}.log` };
    const { container_id } = await daemon.runtime('CreateContainer', { pod_sandbox_id: podId, config, sandbox_config: pod });
    await daemon.runtime('StartContainer', { container_id });
    return container_id;
  }

  /**
   * A long tty exec and a long piped exec, each running `sleep <marker>` twice (once in the
   * background, so the shell's whole session must go) under a shell whose command line holds
   * the marker too. Resolves once all their processes run.
   */
  async function openSessions(containerId: string, transport: Transport): Promise<Session[]> {
    const sessions = await Promise.all(
      [true, false].map(async (tty): Promise<Session> => {
        const marker = uniqueMarker();
        const { url } = await daemon.runtime('Exec', { container_id: containerId, cmd: longCommand(marker), tty, stdin: true, stdout: true, stderr: !tty });
        const stdin = new PassThrough();
        const run = runRemoteCommand({ url, transport, tty, stdin, stdout: sink(), ...(tty ? {} : { stderr: sink() }) });
        return { marker, ended: run.then((code) => `exit ${code}`, (err: Error) => err.message) };
      }),
    );
    await waitFor(async () => (await Promise.all(sessions.map((s) => processesMatching(s.marker)))).every((pids) => pids.length >= 3), 'sessions started');
    return sessions;
  }

  /** Nothing of the sessions runs and no exec file is left in the state dir. */
  async function expectNothingLeft(markers: string[], monitors: number[]): Promise<void> {
    const leftovers = async (): Promise<string[]> => [
      ...(await Promise.all(markers.map(async (m) => (await processesMatching(m)).map((pid) => `process ${pid} (${m})`)))).flat(),
      ...(await stillRunning(monitors)).map((pid) => `monitor ${pid}`),
      ...(await execFiles(daemon.dirs.state)).map((file) => `file ${file}`),
    ];
    await waitFor(async () => (await leftovers()).length === 0, 'exec sessions cleaned up', 5000, leftovers);
  }

  /** RemoveContainer deletes the bundle after its answer (with the rest of the host side). */
  async function expectBundleGone(id: string): Promise<void> {
    const left = (): Promise<string[]> => bundleEntriesOf(daemon.dirs.state, id);
    await waitFor(async () => (await left()).length === 0, 'bundle removed', 5000, left);
  }

  /** The container runs on, and a new exec into it works, with and without a tty. */
  async function expectServes(containerId: string): Promise<void> {
    const { status } = await daemon.runtime('ContainerStatus', { container_id: containerId });
    expect(status!.state).toBe('CONTAINER_RUNNING');
    for (const tty of [false, true]) {
      const { url } = await daemon.runtime('Exec', { container_id: containerId, cmd: ['echo', 'alive'], tty, stdout: true });
      const stdout = collector();
      expect(await runRemoteCommand({ url, transport: 'spdy', tty, stdout })).toBe(0);
      expect(stdout.text().trim()).toBe('alive');
    }
  }

  it.each([
    ['SIGTERM', () => daemon.restart()],
    ['SIGKILL', async () => {
      await daemon.kill9();
      await daemon.start();
    }],
  ])('ends the sessions a daemon stopped by %s served, and keeps the container', async (how, restart) => {
    const id = await container(`survivor-${how.toLowerCase()}`);
    const sessions = await openSessions(id, 'spdy');
    const monitors = await execMonitors(daemon.dirs.state);
    expect(monitors.length).toBeGreaterThanOrEqual(2);

    await restart();
    // Each client learns its session is over: its connection died with the old daemon.
    for (const session of sessions) expect(await session.ended).toMatch(/closed|reset|hang up|ECONNRESET/i);
    await expectNothingLeft(sessions.map((s) => s.marker), monitors);
    await expectServes(id);

    await daemon.runtime('RemoveContainer', { container_id: id });
    await expectBundleGone(id);
  });

  it('removes a container with live sessions and leaves nothing of it in the state dir', async () => {
    const id = await container('removed');
    const sessions = await openSessions(id, 'websocket');
    const monitors = await execMonitors(daemon.dirs.state);

    await daemon.runtime('RemoveContainer', { container_id: id });
    await Promise.all(sessions.map((s) => s.ended));
    await expectNothingLeft(sessions.map((s) => s.marker), monitors);
    await expectBundleGone(id);
  });

  it.each(['spdy', 'websocket'] as const)('ends the session of a client that disconnects (%s)', async (transport) => {
    const id = await container(`disconnect-${transport}`);
    const clients: Array<{ marker: string; cli: ResultPromise; printed: () => number }> = [false, true].map((tty) => {
      const marker = uniqueMarker();
      const flags = tty ? ['-i', '-t'] : ['-i'];
      // The tscri CLI as a kubectl stand-in: SIGKILL cuts its connection with no goodbye. The
      // command keeps printing, so output meets the closed connection too.
      const command = ['sh', '-c', `sleep ${marker} & while :; do echo ${marker}; sleep 0.05; done`];
      const cli = execa(process.execPath, [TSCRI_BIN, '-r', `unix://${daemon.socket}`, 'exec', ...flags, '--transport', transport, id, ...command], {
        stdin: 'pipe',
        reject: false,
      });
      let printed = 0;
      cli.stdout?.on('data', (chunk: Buffer) => (printed += chunk.length));
      return { marker, cli, printed: () => printed };
    });
    const markers = clients.map((c) => c.marker);
    // 3 processes per marker: the CLI (its arguments name the marker), the shell and its `sleep`.
    await waitFor(async () => (await Promise.all(markers.map((m) => processesMatching(m)))).every((pids) => pids.length >= 3), 'sessions started');
    await waitFor(async () => clients.every((c) => c.printed() > 0), 'output flowing');
    const monitors = await execMonitors(daemon.dirs.state);
    expect(monitors.length).toBeGreaterThanOrEqual(2);

    for (const { cli } of clients) cli.kill('SIGKILL');
    await Promise.all(clients.map((c) => c.cli));
    await expectNothingLeft(markers, monitors);
    await expectServes(id);
    await daemon.runtime('RemoveContainer', { container_id: id });
  });
});

interface Session {
  marker: string;
  /** How the client's side ended: "exit <code>", or its error. */
  ended: Promise<string>;
}

/** A number no other process on the host has in its command line. */
function uniqueMarker(): string {
  return String(3_000_000 + Math.floor(Math.random() * 6_000_000));
}

function longCommand(marker: string): string[] {
  return ['sh', '-c', `sleep ${marker} & sleep ${marker}; echo done`];
}

/**
 * The monitors of exec sessions of a daemon: conmon with --exec (a tty exec), and runc exec
 * (a piped one), found by the daemon's state dir in their command line.
 */
async function execMonitors(stateDir: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const comm = await fs.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
    const args = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (!args.some((a) => a.includes(stateDir))) continue;
    const isExec = comm.trim() === 'conmon' ? args.includes('--exec') : comm.startsWith('runc') && args.includes('exec');
    if (isExec && (await isAlive(pid))) found.push(pid);
  }
  return found;
}

/** Which of `pids` still run the same program (a zombie is gone: pid 1 here does not reap). */
async function stillRunning(pids: number[]): Promise<number[]> {
  const alive = await Promise.all(pids.map(async (pid) => ((await isAlive(pid)) ? pid : undefined)));
  return alive.filter((pid): pid is number => pid !== undefined);
}

/** Files and directories of exec sessions below the daemon's bundles (an empty `execs` dir is not one). */
async function execFiles(stateDir: string): Promise<string[]> {
  const bundles = path.join(stateDir, 'bundles');
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const full = path.join(dir, entry.name);
      const relative = path.relative(bundles, full);
      const isDir = entry.isDirectory();
      if (/exec/.test(relative) && !(isDir && entry.name === 'execs' && (await fs.readdir(full)).length === 0)) found.push(relative);
      if (isDir) await walk(full);
    }
  };
  await walk(bundles);
  return found;
}

/** Whatever of a container is left under the daemon's bundles: its bundle, or a directory named after it. */
async function bundleEntriesOf(stateDir: string, id: string): Promise<string[]> {
  const bundles = path.join(stateDir, 'bundles');
  const entries = await fs.readdir(bundles).catch(() => [] as string[]);
  const left = entries.filter((e) => e.startsWith(id.slice(0, 12)));
  if (await exists(path.join(bundles, id))) left.push(id);
  return [...new Set(left)];
}

function sink(): Writable {
  return new Writable({ write: (_chunk, _encoding, callback) => callback() });
}

async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000, describe?: () => Promise<string[]>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await sleep(50);
  }
  const detail = describe ? `: ${(await describe()).join(', ')}` : '';
  throw new Error(`${what}: not so after ${timeoutMs} ms${detail}`);
}
