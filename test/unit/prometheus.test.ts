import http from 'node:http';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/errors.js';
import { PullProgress } from '../../src/image/progress.js';
import { silentLogger } from '../../src/log.js';
import { ENDPOINT_LIMITS, startMetricsEndpoint, type MetricsEndpoint } from '../../src/observability/endpoint.js';
import { observer, setObserver, type Observer } from '../../src/observability/hooks.js';
import { LATENCY_BUCKETS_SECONDS, createDaemonMetrics, type StateLists } from '../../src/observability/prometheus.js';
import { eventStream, unary } from '../../src/server/wrap.js';
import { stepTimer, timeStep } from '../../src/util/time.js';
import { parseSamples, sampleValue, labelSets } from './prometheus-text.js';

/** An observer that writes down every report. */
function recorder() {
  const reports: Array<[string, ...unknown[]]> = [];
  const record: Observer = {
    rpc: (...args) => void reports.push(['rpc', ...args]),
    eventSubscribers: (...args) => void reports.push(['eventSubscribers', ...args]),
    step: (...args) => void reports.push(['step', ...args]),
    pullBytes: (...args) => void reports.push(['pullBytes', ...args]),
    pullLayerDone: () => void reports.push(['pullLayerDone']),
    pullFinished: (...args) => void reports.push(['pullFinished', ...args]),
  };
  setObserver(record);
  return reports;
}

afterEach(() => setObserver(undefined));

describe('the step timer reports to the observer', () => {
  it('keeps the timings it always kept and reports each step with its operation, in seconds', async () => {
    const reports = recorder();
    const timings: Record<string, number> = {};
    const step = stepTimer(timings, 'RunPodSandbox');
    expect(await step('netns', async () => 'made')).toBe('made');
    await step('cni', () => new Promise((resolve) => setTimeout(resolve, 20)));
    expect(Object.keys(timings)).toEqual(['netns', 'cni']);
    expect(timings.cni).toBeGreaterThanOrEqual(19);
    expect(reports.map((r) => r.slice(0, 3))).toEqual([
      ['step', 'RunPodSandbox', 'netns'],
      ['step', 'RunPodSandbox', 'cni'],
    ]);
    const seconds = reports[1]![3] as number;
    expect(seconds).toBeGreaterThanOrEqual(0.019);
    expect(seconds).toBeLessThan(5);
    // Milliseconds in the timings, seconds to the observer: the same measurement.
    expect(Math.abs(seconds * 1000 - timings.cni!)).toBeLessThan(5);
  });

  it('neither records nor reports a step that fails', async () => {
    const reports = recorder();
    const timings: Record<string, number> = {};
    await expect(stepTimer(timings, 'CreateContainer')('runtimeCreate', async () => Promise.reject(new Error('runc said no')))).rejects.toThrow('runc said no');
    await expect(timeStep('StopPodSandbox', 'cni', async () => Promise.reject(new Error('DEL failed')))).rejects.toThrow('DEL failed');
    expect(timings).toEqual({});
    expect(reports).toEqual([]);
  });

  it('times single steps where no timings are kept', async () => {
    const reports = recorder();
    expect(await timeStep('RemoveContainer', 'runtimeDelete', async () => 7)).toBe(7);
    expect(reports).toEqual([['step', 'RemoveContainer', 'runtimeDelete', expect.any(Number)]]);
  });

  it('works with no observer installed', async () => {
    expect(observer()).toBeUndefined();
    const timings: Record<string, number> = {};
    await stepTimer(timings, 'RunPodSandbox')('record', async () => undefined);
    expect(await timeStep('StartContainer', 'runtimeStart', async () => 'ok')).toBe('ok');
    expect(Object.keys(timings)).toEqual(['record']);
  });
});

/** A unary call as grpc-js hands it to a handler, as far as the wrapper uses it. */
function fakeUnaryCall<Req>(request: Req) {
  return Object.assign(new EventEmitter(), { request }) as unknown as grpc.ServerUnaryCall<Req, unknown>;
}

function callUnary<Res>(handler: grpc.handleUnaryCall<object, Res>): Promise<{ error: Partial<grpc.ServiceError> | null; reportsAtAnswer: number }> {
  return new Promise((resolve) => {
    handler(fakeUnaryCall({}), (error) => resolve({ error: error as Partial<grpc.ServiceError> | null, reportsAtAnswer: reportCount() }));
  });
}

let reportCount = (): number => 0;

describe('the RPC wrapper reports to the observer', () => {
  const options = (ready = true) => ({ log: silentLogger(), isReady: () => ready });

  it('reports every answer with its method and status code, before the client has it', async () => {
    const reports = recorder();
    reportCount = () => reports.length;
    const ok = await callUnary(unary('Version', options(), async () => ({ version: '1' })));
    const notFound = await callUnary(unary('ContainerStatus', options(), async () => Promise.reject(new NotFoundError('no such container'))));
    const bug = await callUnary(
      unary('ListImages', options(), () => {
        throw new TypeError('a bug');
      }),
    );
    const starting = await callUnary(unary('RunPodSandbox', options(false), async () => ({})));
    expect([ok, notFound, bug, starting].map((r) => [r.error?.code ?? 0, r.reportsAtAnswer])).toEqual([
      [0, 1],
      [5, 2],
      [13, 3],
      [14, 4],
    ]);
    expect(reports.map((r) => r.slice(0, 3))).toEqual([
      ['rpc', 'Version', 0],
      ['rpc', 'ContainerStatus', 5],
      ['rpc', 'ListImages', 13],
      ['rpc', 'RunPodSandbox', 14],
    ]);
    for (const report of reports) expect(report[3]).toBeGreaterThanOrEqual(0);
  });

  it('counts event subscribers in and out, once each', () => {
    const reports = recorder();
    const call = Object.assign(new EventEmitter(), { writableLength: 0, write: () => true }) as unknown as grpc.ServerWritableStream<object, unknown>;
    let unsubscribed = 0;
    eventStream('GetContainerEvents', options(), () => () => void unsubscribed++)(call);
    expect(reports).toEqual([['eventSubscribers', 1]]);
    call.emit('cancelled');
    call.emit('close');
    expect(reports).toEqual([
      ['eventSubscribers', 1],
      ['eventSubscribers', -1],
    ]);
    expect(unsubscribed).toBe(1);
  });
});

describe('pull progress reports to the observer', () => {
  it('reports bytes received, layers done and the duration at the end', () => {
    const reports = recorder();
    const progress = new PullProgress('registry.example/busybox:1', silentLogger());
    progress.expect(2, 300);
    progress.received(100);
    progress.received(200);
    progress.layerDone();
    progress.layerDone();
    const done = progress.finish();
    expect(reports).toEqual([['pullBytes', 100], ['pullBytes', 200], ['pullLayerDone'], ['pullLayerDone'], ['pullFinished', done.elapsedMs / 1000]]);
  });
});

/** Lists the state gauges count, changed by the test between scrapes. */
function fakeLists(): StateLists & { podStates: string[]; containerStates: string[] } {
  const lists = {
    podStates: [] as string[],
    containerStates: [] as string[],
    pods: () => lists.podStates.map((state) => ({ id: 'p', state })),
    containers: () => lists.containerStates.map((state) => ({ id: 'c', state })),
  };
  return lists;
}

async function scrape(metrics: ReturnType<typeof createDaemonMetrics>) {
  return parseSamples(await metrics.registry.metrics());
}

describe('the daemon metrics', () => {
  it('counts pods and containers by state at each scrape, every state shown even at 0', async () => {
    const lists = fakeLists();
    const metrics = createDaemonMetrics(lists);
    let samples = await scrape(metrics);
    expect(labelSets(samples, 'tscri_pods')).toEqual([{ state: 'SANDBOX_READY' }, { state: 'SANDBOX_NOTREADY' }]);
    expect(samples.filter((s) => s.name === 'tscri_pods' || s.name === 'tscri_containers').every((s) => s.value === 0)).toBe(true);

    lists.podStates = ['SANDBOX_READY', 'SANDBOX_READY', 'SANDBOX_NOTREADY'];
    lists.containerStates = ['CONTAINER_RUNNING', 'CONTAINER_EXITED', 'CONTAINER_RUNNING', 'CONTAINER_CREATED'];
    samples = await scrape(metrics);
    expect(sampleValue(samples, 'tscri_pods', { state: 'SANDBOX_READY' })).toBe(2);
    expect(sampleValue(samples, 'tscri_pods', { state: 'SANDBOX_NOTREADY' })).toBe(1);
    expect(sampleValue(samples, 'tscri_containers', { state: 'CONTAINER_CREATED' })).toBe(1);
    expect(sampleValue(samples, 'tscri_containers', { state: 'CONTAINER_RUNNING' })).toBe(2);
    expect(sampleValue(samples, 'tscri_containers', { state: 'CONTAINER_EXITED' })).toBe(1);
    expect(sampleValue(samples, 'tscri_containers', { state: 'CONTAINER_UNKNOWN' })).toBe(0);

    // Everything removed: back to zeros, not gone.
    lists.podStates = [];
    lists.containerStates = [];
    samples = await scrape(metrics);
    expect(sampleValue(samples, 'tscri_pods', { state: 'SANDBOX_READY' })).toBe(0);
    expect(sampleValue(samples, 'tscri_containers', { state: 'CONTAINER_RUNNING' })).toBe(0);
  });

  it('turns reports into histograms and counters with code names and the declared buckets', async () => {
    const metrics = createDaemonMetrics(fakeLists());
    const o = metrics.observer;
    o.rpc('Version', 0, 0.0002);
    o.rpc('Version', 0, 0.003);
    o.rpc('ContainerStatus', 5, 0.001);
    o.step('RunPodSandbox', 'cni', 0.2);
    o.step('RunPodSandbox', 'cni', 70);
    o.step('CreateContainer', 'rootfs', 0.004);
    o.pullBytes(1000);
    o.pullBytes(24);
    o.pullLayerDone();
    o.pullFinished(3);
    o.eventSubscribers(1);
    o.eventSubscribers(1);
    o.eventSubscribers(-1);
    const samples = await scrape(metrics);

    const rpc = 'tscri_cri_request_duration_seconds';
    expect(sampleValue(samples, `${rpc}_count`, { rpc: 'Version', code: 'OK' })).toBe(2);
    expect(sampleValue(samples, `${rpc}_count`, { rpc: 'ContainerStatus', code: 'NOT_FOUND' })).toBe(1);
    expect(sampleValue(samples, `${rpc}_bucket`, { rpc: 'Version', code: 'OK', le: '0.0005' })).toBe(1);
    expect(sampleValue(samples, `${rpc}_bucket`, { rpc: 'Version', code: 'OK', le: '0.005' })).toBe(2);
    expect(labelSets(samples, `${rpc}_bucket`).filter((l) => l.rpc === 'Version').map((l) => l.le)).toEqual([...LATENCY_BUCKETS_SECONDS.map(String), '+Inf']);

    const step = 'tscri_operation_step_duration_seconds';
    expect(sampleValue(samples, `${step}_count`, { operation: 'RunPodSandbox', step: 'cni' })).toBe(2);
    expect(sampleValue(samples, `${step}_sum`, { operation: 'RunPodSandbox', step: 'cni' })).toBeCloseTo(70.2);
    expect(sampleValue(samples, `${step}_bucket`, { operation: 'RunPodSandbox', step: 'cni', le: '60' })).toBe(1);
    expect(sampleValue(samples, `${step}_bucket`, { operation: 'RunPodSandbox', step: 'cni', le: '120' })).toBe(2);
    expect(sampleValue(samples, `${step}_count`, { operation: 'CreateContainer', step: 'rootfs' })).toBe(1);

    expect(sampleValue(samples, 'tscri_image_pull_fetched_bytes_total')).toBe(1024);
    expect(sampleValue(samples, 'tscri_image_pull_unpacked_layers_total')).toBe(1);
    expect(sampleValue(samples, 'tscri_image_pull_duration_seconds_count')).toBe(1);
    expect(sampleValue(samples, 'tscri_image_pull_duration_seconds_bucket', { le: '5' })).toBe(1);
    expect(sampleValue(samples, 'tscri_event_subscribers')).toBe(1);
  });

  it('serves the process metrics, prefixed', async () => {
    const samples = await scrape(createDaemonMetrics(fakeLists()));
    for (const name of [
      'tscri_process_cpu_seconds_total',
      'tscri_process_resident_memory_bytes',
      'tscri_process_open_fds',
      'tscri_nodejs_heap_size_used_bytes',
      'tscri_nodejs_eventloop_lag_seconds',
    ]) {
      expect(sampleValue(samples, name), name).toBeGreaterThanOrEqual(0);
    }
    expect(sampleValue(samples, 'tscri_process_resident_memory_bytes')).toBeGreaterThan(1024 * 1024);
  });

  it('never throws from an observation: the first failure goes to the error callback', () => {
    const errors: unknown[] = [];
    const metrics = createDaemonMetrics(fakeLists(), (err) => errors.push(err));
    expect(() => metrics.observer.rpc('Version', 0, Number.NaN)).not.toThrow();
    expect(() => metrics.observer.step('RunPodSandbox', 'cni', Number.POSITIVE_INFINITY)).not.toThrow();
    expect(errors).toHaveLength(2);
  });
});

/** One HTTP request to the endpoint; the answer's status, headers and body. */
function request(port: number, method: string, path: string, body?: string) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    // Node sends a GET's body without a length unless told one.
    const headers = body === undefined ? {} : { 'content-length': Buffer.byteLength(body) };
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the metrics endpoint', () => {
  let endpoint: MetricsEndpoint | undefined;
  afterEach(async () => {
    await endpoint?.close();
    endpoint = undefined;
  });

  it('serves GET and HEAD /metrics and nothing else', async () => {
    const lists = fakeLists();
    lists.podStates = ['SANDBOX_READY'];
    endpoint = await startMetricsEndpoint({ host: '127.0.0.1', port: 0 }, lists, silentLogger());
    const got = await request(endpoint.port, 'GET', '/metrics');
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sampleValue(parseSamples(got.body), 'tscri_pods', { state: 'SANDBOX_READY' })).toBe(1);
    expect((await request(endpoint.port, 'GET', '/metrics?name[]=x')).status).toBe(200);

    const head = await request(endpoint.port, 'HEAD', '/metrics');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');

    for (const path of ['/', '/metrics/', '/debug/pprof', '/metricsx']) expect((await request(endpoint.port, 'GET', path)).status).toBe(404);
    const post = await request(endpoint.port, 'POST', '/metrics', 'x'.repeat(100_000));
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect(post.headers.connection).toBe('close');
    // A GET carrying a body is answered, and its connection closed rather than the body read.
    const withBody = await request(endpoint.port, 'GET', '/metrics', 'ignored');
    expect(withBody.status).toBe(200);
    expect(withBody.headers.connection).toBe('close');
  });

  it('installs the observer while it serves, and removes it and stops listening when closed', async () => {
    const started = await startMetricsEndpoint({ host: '127.0.0.1', port: 0 }, fakeLists(), silentLogger());
    expect(observer()).toBeDefined();
    observer()!.rpc('Version', 0, 0.001);
    const samples = parseSamples((await request(started.port, 'GET', '/metrics')).body);
    expect(sampleValue(samples, 'tscri_cri_request_duration_seconds_count', { rpc: 'Version', code: 'OK' })).toBe(1);

    // A kept-alive connection must not hold the close.
    const socket = net.connect(started.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    await started.close();
    expect(observer()).toBeUndefined();
    await expect(request(started.port, 'GET', '/metrics')).rejects.toThrow(/ECONNREFUSED/);
    socket.destroy();
  });

  it('closes connections that stall or idle, and refuses them beyond its bound', async () => {
    const limits = { ...ENDPOINT_LIMITS, headersTimeoutMs: 300, requestTimeoutMs: 300, checkIntervalMs: 100, idleTimeoutMs: 1500, keepAliveTimeoutMs: 200, maxConnections: 2 };
    endpoint = await startMetricsEndpoint({ host: '127.0.0.1', port: 0 }, fakeLists(), silentLogger(), limits);
    const port = endpoint.port;
    /** A connection that writes `data` once connected; what it received, and when it closed. */
    const connection = (data: string) => {
      const started = Date.now();
      const socket = net.connect(port, '127.0.0.1', () => socket.write(data));
      let received = '';
      socket.on('data', (chunk) => (received += chunk.toString()));
      const closed = new Promise<{ ms: number; received: string; error?: string }>((resolve) => {
        let error: string | undefined;
        socket.on('error', (err) => (error = err.message));
        socket.on('close', () => resolve({ ms: Date.now() - started, received, error }));
      });
      return { socket, closed };
    };
    // Half a request line, then nothing; and nothing at all: both cut off by the header timeout.
    const slow = connection('GET /metr');
    const silent = connection('');
    const [slowEnd, silentEnd] = await Promise.all([slow.closed, silent.closed]);
    expect(slowEnd.ms).toBeLessThan(1200);
    expect(slowEnd.received).toMatch(/^HTTP\/1\.1 408/);
    expect(silentEnd.ms).toBeLessThan(1200);
    // Kept alive after its answer, then idle: closed after keepAliveTimeoutMs (plus Node's 1 s grace).
    const kept = connection('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => kept.socket.once('data', resolve));
    // Two open connections are the bound: a third is dropped at once.
    const other = connection('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    const third = connection('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    const [keptEnd, otherEnd, thirdEnd] = await Promise.all([kept.closed, other.closed, third.closed]);
    expect(keptEnd.received).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(keptEnd.ms).toBeLessThan(3000);
    // Which of the two the server accepted first is the kernel's business: one is answered.
    expect([otherEnd.received, thirdEnd.received].map((text) => text.slice(0, 15)).sort()).toEqual(['', 'HTTP/1.1 200 OK']);
  });

  it('refuses to start on an address in use, naming it, and observes nothing then', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      await expect(startMetricsEndpoint({ host: '127.0.0.1', port }, fakeLists(), silentLogger())).rejects.toMatchObject({
        code: 'FailedPrecondition',
        message: expect.stringContaining(`metrics endpoint cannot listen on 127.0.0.1:${port}`),
        hint: expect.stringContaining('[metrics] address'),
      });
      expect(observer()).toBeUndefined();
    } finally {
      blocker.close();
    }
  });
});
