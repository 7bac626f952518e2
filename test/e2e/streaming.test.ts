import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { status as grpcStatus } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPortForward, runRemoteCommand, type Transport } from '../../src/cli/streaming-client.js';
import { findExecutable } from '../../src/util/executable.js';
import { collector, podConfig, sleep, startTestDaemon, type TestDaemon } from './harness.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');
const TRANSPORTS: Transport[] = ['spdy', 'websocket'];

describe('streaming: exec, attach and port forward', () => {
  let daemon: TestDaemon;
  let podId: string;
  let pod: Record<string, unknown>;
  let shell: string;

  beforeAll(async () => {
    daemon = await startTestDaemon({ extraToml: '[streaming]\ntoken_ttl_seconds = 2\n' });
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
    pod = podConfig('streams', { log_directory: path.join(daemon.dirs.base, 'logs') });
    podId = (await daemon.runtime('RunPodSandbox', { config: pod })).pod_sandbox_id;
    shell = await container('shell', ['sh', '-c', 'sleep 3600']);
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function container(name: string, command: string[], extra: Record<string, unknown> = {}): Promise<string> {
    const config = { metadata: { name }, image: { image: BUSYBOX }, command, log_path: `${name}.log`, ...extra };
    const { container_id } = await daemon.runtime('CreateContainer', { pod_sandbox_id: podId, config, sandbox_config: pod });
    await daemon.runtime('StartContainer', { container_id });
    return container_id;
  }

  async function execUrl(cmd: string[], opts: { tty?: boolean; stdin?: boolean; stderr?: boolean } = {}): Promise<string> {
    const tty = opts.tty ?? false;
    const { url } = await daemon.runtime('Exec', { container_id: shell, cmd, tty, stdin: opts.stdin ?? false, stdout: true, stderr: opts.stderr ?? !tty });
    return url;
  }

  it.each(TRANSPORTS)('returns the exit code and keeps stdout and stderr apart (%s)', async (transport) => {
    const [stdout, stderr] = [collector(), collector()];
    const code = await runRemoteCommand({ url: await execUrl(['sh', '-c', 'echo out; echo err >&2; exit 3']), transport, tty: false, stdout, stderr });
    expect(code).toBe(3);
    expect(stdout.text()).toBe('out\n');
    expect(stderr.text()).toBe('err\n');
    expect(await runRemoteCommand({ url: await execUrl(['true'], { stderr: false }), transport, tty: false, stdout: collector() })).toBe(0);
  });

  it.each(TRANSPORTS)('carries 1 MiB through stdin and back unchanged (%s)', async (transport) => {
    const payload = randomBytes(1024 * 1024);
    const stdout = collector();
    const code = await runRemoteCommand({ url: await execUrl(['cat'], { stdin: true }), transport, tty: false, stdin: Readable.from([payload]), stdout, stderr: collector() });
    expect(code).toBe(0);
    expect(stdout.bytes().equals(payload)).toBe(true);
  });

  it.each(TRANSPORTS)('gives a tty exec its size and later resizes (%s)', async (transport) => {
    const stdin = new PassThrough();
    const stdout = collector();
    const resizes = new EventEmitter();
    const run = runRemoteCommand({
      url: await execUrl(['sh', '-c', 'stty size; read line; stty size; tty'], { tty: true, stdin: true }),
      transport,
      tty: true,
      stdin,
      stdout,
      resizes,
      initialSize: { width: 100, height: 30 },
    });
    await waitFor(() => stdout.text().includes('30 100'));
    resizes.emit('resize', { width: 120, height: 40 });
    await sleep(200);
    stdin.write('go\n');
    stdin.end();
    expect(await run).toBe(0);
    const lines = stdout.text().split(/\r?\n/);
    expect(lines).toContain('30 100');
    expect(lines).toContain('40 120');
    expect(lines.some((l) => /^\/dev\/pts\/\d+$/.test(l))).toBe(true);
  });

  it.each(TRANSPORTS)('attaches to a looping container, reads its output and writes to its stdin (%s)', async (transport) => {
    const looping = await container(`loop-${transport}`, ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done']);
    const { url } = await daemon.runtime('Attach', { container_id: looping, stdin: false, tty: false, stdout: true, stderr: true });
    const ticks = collector();
    const attached = runRemoteCommand({ url, transport, tty: false, stdout: ticks, stderr: collector() });
    await waitFor(() => (ticks.text().match(/tick \d+/g) ?? []).length >= 2);
    await daemon.runtime('StopContainer', { container_id: looping, timeout: 0 });
    await attached;

    const echo = await container(`echo-${transport}`, ['sh', '-c', 'while read line; do echo "echo:$line"; done'], { stdin: true });
    const attach = await daemon.runtime('Attach', { container_id: echo, stdin: true, tty: false, stdout: true, stderr: true });
    const input = new PassThrough();
    const output = collector();
    const session = runRemoteCommand({ url: attach.url, transport, tty: false, stdin: input, stdout: output, stderr: collector() });
    await sleep(300);
    input.write('hello\n');
    await waitFor(() => output.text().includes('echo:hello'));
    input.end();
    await daemon.runtime('StopContainer', { container_id: echo, timeout: 0 });
    await session;
  });

  it.each(TRANSPORTS)('survives an attached client that keeps sending stdin after its container stopped (%s)', async (transport) => {
    const reader = await container(`late-stdin-${transport}`, ['sh', '-c', 'read line; echo "got:$line"; sleep 0.3'], { stdin: true });
    const attach = await daemon.runtime('Attach', { container_id: reader, stdin: true, tty: false, stdout: true, stderr: true });
    const input = new PassThrough();
    const output = collector();
    const session = runRemoteCommand({ url: attach.url, transport, tty: false, stdin: input, stdout: output, stderr: collector() }).catch(() => undefined);
    await sleep(300);
    input.write('first\n');
    await waitFor(() => output.text().includes('got:first'));
    // The process ends and conmon closes the attach socket; the client does not notice at once.
    await sleep(800);
    for (let i = 0; i < 20; i++) input.write(`late ${i}\n`);
    input.end();
    await session;
    await sleep(200);
    expect((await daemon.runtime('Version', { version: 'v1' })).runtime_name).toBe('tscri');
  });

  it.each(TRANSPORTS)('forwards a port to an HTTP server in the pod (%s)', async (transport) => {
    await fs.mkdir(path.join(daemon.dirs.base, 'www'), { recursive: true });
    await container(`web-${transport}`, ['httpd', '-f', '-p', transport === 'spdy' ? '8081' : '8082', '-h', '/etc']);
    const port = transport === 'spdy' ? 8081 : 8082;
    await waitFor(async () => (await daemon.runtime('ExecSync', { container_id: shell, cmd: ['sh', '-c', `nc -w 1 127.0.0.1 ${port} </dev/null`], timeout: 5 })).exit_code === 0);
    const { url } = await daemon.runtime('PortForward', { pod_sandbox_id: podId, port: [port] });
    const session = await openPortForward(url, transport);
    try {
      const connection = await session.connect(port);
      const response = collector();
      connection.pipe(response);
      connection.write('GET /passwd HTTP/1.0\r\nHost: pod\r\n\r\n');
      await new Promise((resolve) => connection.on('end', resolve));
      expect(response.text()).toMatch(/^HTTP\/1\.[01] 200 OK/);
      expect(response.text()).toContain('root:x:0:0:root');
    } finally {
      session.close();
    }
  });

  it('reports a port nothing listens on as a forwarding error', async () => {
    const { url } = await daemon.runtime('PortForward', { pod_sandbox_id: podId, port: [9] });
    const session = await openPortForward(url, 'spdy');
    try {
      const connection = await session.connect(9);
      const failure = await new Promise<Error>((resolve) => connection.on('error', resolve));
      expect(failure.message).toMatch(/error forwarding port 9.*(refused|Connection)/i);
    } finally {
      session.close();
    }
  });

  it('serves 20 sessions at once', async () => {
    const runs = Array.from({ length: 20 }, async (_, i) => {
      const stdout = collector();
      const transport = TRANSPORTS[i % 2]!;
      const code = await runRemoteCommand({ url: await execUrl(['sh', '-c', `sleep 0.3; echo session-${i}`]), transport, tty: false, stdout, stderr: collector() });
      return { code, text: stdout.text() };
    });
    const results = await Promise.all(runs);
    results.forEach((r, i) => expect(r).toEqual({ code: 0, text: `session-${i}\n` }));
  });

  it('refuses a used or expired token', async () => {
    const url = await execUrl(['true'], { stderr: false });
    expect(await runRemoteCommand({ url, transport: 'spdy', tty: false, stdout: collector() })).toBe(0);
    await expect(runRemoteCommand({ url, transport: 'spdy', tty: false, stdout: collector() })).rejects.toThrow(/404.*expired/);
    const later = await execUrl(['true'], { stderr: false });
    await sleep(2500);
    await expect(runRemoteCommand({ url: later, transport: 'websocket', tty: false, stdout: collector() })).rejects.toThrow(/404.*expired/);
    const plain = await new Promise<number>((resolve) => http.get(later, (res) => resolve(res.statusCode ?? 0)));
    expect(plain).toBe(400);
  });

  it('validates streaming requests', async () => {
    await expect(daemon.runtime('Exec', { container_id: shell, cmd: [], stdout: true })).rejects.toMatchObject({ code: grpcStatus.INVALID_ARGUMENT });
    await expect(daemon.runtime('Exec', { container_id: shell, cmd: ['sh'], tty: true, stdout: true, stderr: true })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
    });
    await expect(daemon.runtime('Exec', { container_id: 'f'.repeat(64), cmd: ['sh'], stdout: true })).rejects.toMatchObject({ code: grpcStatus.NOT_FOUND });
    const stopped = await container('stopped', ['true']);
    await sleep(500);
    await expect(daemon.runtime('Exec', { container_id: stopped, cmd: ['sh'], stdout: true })).rejects.toMatchObject({
      code: grpcStatus.FAILED_PRECONDITION,
    });
    await expect(daemon.runtime('Attach', { container_id: shell, stdin: true, stdout: true })).rejects.toMatchObject({
      code: grpcStatus.FAILED_PRECONDITION,
    });
  });

  it('works for crictl exec -it, attach and port-forward', async () => {
    const crictl = await findExecutable('crictl');
    if (!crictl) {
      console.warn('crictl not installed; skipping the crictl streaming check');
      return;
    }
    const base = ['-r', `unix://${daemon.socket}`];
    const exec = await execa(crictl, [...base, 'exec', shell, 'sh', '-c', 'echo crictl; exit 4'], { reject: false });
    expect(exec.stdout).toBe('crictl');
    expect(exec.stderr).toContain('exit code 4');
    const piped = await execa(crictl, [...base, 'exec', '-i', shell, 'cat'], { input: 'through stdin', reject: false });
    expect(piped.stdout).toBe('through stdin');
    const tty = await execa('script', ['-qc', `${crictl} ${base.join(' ')} exec -it ${shell} tty`, '/dev/null'], { reject: false, input: '' });
    expect(tty.stdout).toMatch(/\/dev\/pts\/\d+/);
    const forward = execa(crictl, [...base, 'port-forward', podId, '18765:8081'], { reject: false });
    try {
      await waitFor(async () => (await fetchText('http://127.0.0.1:18765/hostname').catch(() => '')) !== '', 10_000);
      expect(await fetchText('http://127.0.0.1:18765/hostname')).toBe(`${pod.hostname as string}\n`);
    } finally {
      forward.kill();
      await forward;
    }
  });
});

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await sleep(50);
  }
  throw new Error('condition not met in time');
}
