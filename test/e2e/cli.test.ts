import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../src/util/executable.js';
import { TSCRI_BIN, podConfig, startTestDaemon, type TestDaemon } from './harness.js';
import { exists } from './host.js';
import { LOCAL_REGISTRY, testImage } from './images.js';

/** RFC 3339 in UTC, with an optional fraction. */
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

describe('the tscri client against the daemon', () => {
  let daemon: TestDaemon;
  let configFile: string;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    configFile = path.join(daemon.dirs.base, 'pod.json');
    // crictl's own file format: snake_case names, enums as numbers.
    await fs.writeFile(
      configFile,
      JSON.stringify({
        metadata: { name: 'cli-pod', namespace: 'cli', uid: 'cli-uid-1', attempt: 1 },
        log_directory: '/tmp',
        port_mappings: [{ protocol: 0, container_port: 80, host_port: 0 }],
        labels: { tier: 'cli' },
        linux: {},
      }),
    );
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  const tscri = (...args: string[]) => execa(process.execPath, [TSCRI_BIN, '-r', `unix://${daemon.socket}`, ...args], { reject: false });

  it('runs, lists, inspects, stops and removes a pod', async () => {
    const version = await tscri('version');
    expect(version.stdout).toMatch(/RuntimeName:\s+tscri/);

    const run = await tscri('runp', configFile);
    expect(run.exitCode).toBe(0);
    const id = run.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);

    const pods = await tscri('pods');
    expect(pods.stdout).toMatch(/POD ID\s+CREATED\s+STATE\s+NAME\s+NAMESPACE\s+ATTEMPT\s+RUNTIME/);
    expect(pods.stdout).toMatch(new RegExp(`${id.slice(0, 13)}\\s+.*Ready\\s+cli-pod\\s+cli\\s+1`));
    expect((await tscri('pods', '-q', '--label', 'tier=cli')).stdout.trim()).toBe(id);
    expect((await tscri('pods', '-q', '--label', 'tier=other')).stdout.trim()).toBe('');
    expect((await tscri('pods', '-q', '--name', '^cli-')).stdout.trim()).toBe(id);

    // crictl's layout: status beside the verbose info's keys, times in RFC 3339.
    const inspect = JSON.parse((await tscri('inspectp', id.slice(0, 8))).stdout) as {
      status: { id: string; state: string; network: { ip: string }; createdAt: string };
      info: { netnsPath: string };
    };
    expect(inspect.status).toMatchObject({ id, state: 'SANDBOX_READY' });
    expect(inspect.status.createdAt).toMatch(RFC3339);
    expect(Math.abs(Date.parse(inspect.status.createdAt) - Date.now())).toBeLessThan(60_000);
    expect(inspect.status.network.ip).toMatch(/^10\.88\./);
    expect(await exists(inspect.info.netnsPath)).toBe(true);

    const info = JSON.parse((await tscri('info')).stdout) as { status: { conditions: Array<{ type: string; status: boolean }> }; config: { root: string } };
    expect(info.status.conditions).toEqual(
      expect.arrayContaining([expect.objectContaining({ type: 'NetworkReady', status: true })]),
    );
    expect(info.config.root).toBe(daemon.dirs.root);

    expect((await tscri('stopp', id)).stdout).toBe(`Stopped sandbox ${id}`);
    expect((await tscri('pods', '--state', 'notready', '-q')).stdout.trim()).toBe(id);
    expect((await tscri('rmp', id)).stdout).toBe(`Removed sandbox ${id}`);
    expect(await exists(inspect.info.netnsPath)).toBe(false);
    expect((await tscri('pods', '-q')).stdout.trim()).toBe('');
  });

  it('pulls, lists, inspects and removes images, and reports image fs usage', async () => {
    const ref = testImage('busybox');
    const pull = await tscri('pull', ref);
    expect(pull.exitCode).toBe(0);
    const id = /Image is up to date for (sha256:[a-f0-9]{64})/.exec(pull.stdout)?.[1];
    expect(id).toBeDefined();

    const images = await tscri('images');
    expect(images.stdout).toMatch(/IMAGE\s+TAG\s+IMAGE ID\s+SIZE/);
    expect(images.stdout).toMatch(new RegExp(`${LOCAL_REGISTRY}/tscri-test/busybox\\s+1\\.0\\s+${id!.slice(7, 20)}\\s+\\d`));
    expect((await tscri('images', '-q')).stdout.trim()).toBe(id);
    expect((await tscri('images', '--digests')).stdout).toMatch(/DIGEST/);

    const inspected = JSON.parse((await tscri('inspecti', ref)).stdout) as { status: { id: string }; info: { imageSpec: { os: string } } };
    expect(inspected.status.id).toBe(id);
    expect(inspected.info.imageSpec.os).toBe('linux');
    const fsinfo = JSON.parse((await tscri('imagefsinfo')).stdout) as { status: { usedBytes: { value: string } } };
    expect(Number(fsinfo.status.usedBytes.value)).toBeGreaterThan(1_000_000);

    expect((await tscri('rmi', ref)).stdout).toBe(`Deleted: ${ref}`);
    expect((await tscri('images', '-q')).stdout.trim()).toBe('');
    const missing = await tscri('rmi', ref);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('no such image');
  });

  it('runs containers: run, ps, exec, logs, stats, update, stop, inspect, rm', async () => {
    await tscri('pull', testImage('busybox'));
    const podFile = path.join(daemon.dirs.base, 'ctr-pod.json');
    const logDir = path.join(daemon.dirs.base, 'pod-logs');
    await fs.writeFile(podFile, JSON.stringify({ ...podConfig('ctr-pod'), log_directory: logDir }));
    const ctrFile = path.join(daemon.dirs.base, 'ctr.json');
    await fs.writeFile(
      ctrFile,
      JSON.stringify({
        metadata: { name: 'web' },
        image: { image: testImage('busybox') },
        command: ['sh', '-c', 'echo started; i=0; while true; do i=$((i+1)); echo line $i; sleep 0.2; done'],
        log_path: 'web.log',
        labels: { app: 'web' },
      }),
    );
    const run = await tscri('run', ctrFile, podFile);
    expect(run.exitCode).toBe(0);
    const id = run.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);

    expect((await tscri('ps')).stdout).toMatch(new RegExp(`${id.slice(0, 13)}\\s+\\S+busybox:1.0\\s+.*Running\\s+web\\s+0\\s+[0-9a-f]{13}\\s+ctr-pod`));
    expect((await tscri('ps', '-q', '--label', 'app=web')).stdout.trim()).toBe(id);

    const exec = await tscri('exec', id, 'sh', '-c', 'echo out; echo err >&2; exit 4');
    expect([exec.stdout, exec.stderr, exec.exitCode]).toEqual(['out', 'err', 4]);

    await new Promise((resolve) => setTimeout(resolve, 600));
    const logs = await tscri('logs', id);
    expect(logs.stdout.split('\n')[0]).toBe('started');
    expect((await tscri('logs', '--tail', '1', id)).stdout.split('\n')).toHaveLength(1);
    expect((await tscri('logs', '-t', '--tail', '1', id)).stdout).toMatch(/^\d{4}-\d\d-\d\dT\S+ line \d+$/);

    const stats = (await tscri('stats', '-s', '1')).stdout;
    expect(stats).toMatch(/^CONTAINER\s+NAME\s+CPU %\s+MEM\s+DISK\s+INODES$/m);
    // The shell loop keeps the container a little busy: its CPU % is a number with two decimals.
    expect(stats).toMatch(new RegExp(`${id.slice(0, 13)}\\s+web\\s+\\d+\\.\\d\\d\\s+[\\d.]+[kMG]?B\\s+[\\d.]+[kMG]?B\\s+\\d+`));
    const podStats = (await tscri('statsp')).stdout;
    expect(podStats).toMatch(/^POD\s+POD ID\s+CPU %\s+MEM$/m);
    expect(podStats).toMatch(/^ctr-pod\s+[0-9a-f]{13}\s+\d+\.\d\d\s+[\d.]+[kMG]?B$/m);
    const started = JSON.parse((await tscri('inspect', id)).stdout) as { status: { createdAt: string; startedAt: string; finishedAt: string } };
    expect(started.status.createdAt).toMatch(RFC3339);
    expect(started.status.startedAt).toMatch(RFC3339);
    expect(started.status.finishedAt).toBe('0001-01-01T00:00:00Z');
    expect((await tscri('update', '--memory', String(96 * 1024 * 1024), id)).exitCode).toBe(0);
    const inspected = JSON.parse((await tscri('inspect', id)).stdout) as { status: { state: string; resources: { linux: { memoryLimitInBytes: string } } } };
    expect(inspected.status.state).toBe('CONTAINER_RUNNING');
    expect(inspected.status.resources.linux.memoryLimitInBytes).toBe(String(96 * 1024 * 1024));

    const refused = await tscri('rm', id);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('is running');
    expect((await tscri('stop', '-t', '2', id)).stdout).toBe(id);
    expect((await tscri('ps', '-a', '-q', '--state', 'exited')).stdout.trim()).toBe(id);
    expect((await tscri('rm', id)).stdout).toBe(id);
    expect((await tscri('ps', '-a', '-q')).stdout.trim()).toBe('');
    await tscri('rmp', '--all');
  });

  it('says so when the pod refuses a forwarded connection', async () => {
    const podFile = path.join(daemon.dirs.base, 'pf-pod.json');
    await fs.writeFile(podFile, JSON.stringify(podConfig('pf-pod')));
    const podId = (await tscri('runp', podFile)).stdout.trim();
    // Nothing in the pod listens on port 9.
    const forward = execa(process.execPath, [TSCRI_BIN, '-r', `unix://${daemon.socket}`, 'port-forward', podId, ':9'], { reject: false, buffer: true });
    let stderr = '';
    forward.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const local = await new Promise<number>((resolve, reject) => {
        forward.stdout!.on('data', (chunk: Buffer) => {
          const port = /Forwarding from 127\.0\.0\.1:(\d+) -> 9/.exec(chunk.toString())?.[1];
          if (port) resolve(Number(port));
        });
        void forward.then((r) => reject(new Error(`port-forward ended: ${r.stderr}`)));
      });
      await new Promise<void>((resolve) => {
        const socket = net.connect(local, '127.0.0.1');
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
      });
      for (let i = 0; i < 50 && !stderr.includes('port 9'); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(stderr).toMatch(new RegExp(`port-forward to pod ${podId} port 9: .*(refused|Connection)`, 'i'));
    } finally {
      forward.kill('SIGTERM');
      await forward;
    }
    await tscri('rmp', podId);
  });

  it('reports server errors with their message and a non-zero exit', async () => {
    const result = await tscri('inspectp', 'f'.repeat(64));
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/not found/);
    const bad = path.join(daemon.dirs.base, 'bad.json');
    await fs.writeFile(bad, JSON.stringify({ metadata: { nmae: 'typo' } }));
    const typo = await tscri('runp', bad);
    expect(typo.exitCode).toBe(1);
    expect(typo.stderr).toContain('unknown field "nmae"');
  });

  it('serves crictl, which sends the socket path as :authority', async () => {
    const crictl = await findExecutable('crictl');
    if (!crictl) {
      // crictl is an instrument, not a dependency: no binary, no check.
      console.warn('crictl not installed; skipping the crictl compatibility check');
      return;
    }
    const run = (...args: string[]) => execa(crictl, ['-r', `unix://${daemon.socket}`, ...args], { reject: false });
    expect((await run('version')).stdout).toMatch(/RuntimeName:\s+tscri/);
    const podFile = path.join(daemon.dirs.base, 'crictl-pod.json');
    await fs.writeFile(podFile, JSON.stringify(podConfig('crictl-pod')));
    const id = (await run('runp', podFile)).stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect((await run('pods', '-q')).stdout).toContain(id);
    const inspected = JSON.parse((await run('inspectp', id)).stdout) as { status: { state: string } };
    expect(inspected.status.state).toBe('SANDBOX_READY');
    expect((await run('info')).exitCode).toBe(0);

    // Containers through crictl too.
    await run('-i', `unix://${daemon.socket}`, 'pull', testImage('busybox'));
    const ctrFile = path.join(daemon.dirs.base, 'crictl-ctr.json');
    await fs.writeFile(ctrFile, JSON.stringify({ metadata: { name: 'c' }, image: { image: testImage('busybox') }, command: ['sleep', '3600'] }));
    const ctr = (await run('create', id, ctrFile, podFile)).stdout.trim();
    expect((await run('start', ctr)).exitCode).toBe(0);
    expect((await run('ps', '-q')).stdout.trim()).toBe(ctr);
    expect((await run('exec', '-s', ctr, 'echo', 'hi')).stdout.trim()).toBe('hi');
    expect(JSON.parse((await run('inspect', ctr)).stdout).status.state).toBe('CONTAINER_RUNNING');
    expect((await run('stats', '-o', 'json')).exitCode).toBe(0);
    expect((await run('update', '--memory', String(64 * 1024 * 1024), ctr)).exitCode).toBe(0);
    expect((await run('stop', ctr)).exitCode).toBe(0);
    expect((await run('rm', ctr)).exitCode).toBe(0);

    expect((await run('stopp', id)).exitCode).toBe(0);
    expect((await run('rmp', id)).exitCode).toBe(0);
    expect((await run('pods', '-q')).stdout.trim()).toBe('');
  });
});
