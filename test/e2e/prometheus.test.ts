/**
 * The daemon's own Prometheus endpoint (`[metrics] address`), scraped while a pod and a
 * container go through their whole life and an image is pulled.
 */
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podConfig, startTestDaemon, type TestDaemon } from './harness.js';
import { LOCAL_REGISTRY, testImage } from './images.js';
import { labelSets, parseSamples, sampleValue, type Sample } from '../unit/prometheus-text.js';
import { freePort } from '../../hack/lib/registry.mjs';

const BUSYBOX = testImage('busybox');
const RPC = 'tscri_cri_request_duration_seconds';
const STEP = 'tscri_operation_step_duration_seconds';

/** The TCP ports a process listens on: its socket fds matched against /proc/net/tcp{,6}. */
async function listeningPorts(pid: number): Promise<number[]> {
  const fds = await fs.readdir(`/proc/${pid}/fd`);
  const links = await Promise.all(fds.map((fd) => fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  const inodes = new Set(links.map((link) => /^socket:\[(\d+)\]$/.exec(link)?.[1]).filter(Boolean));
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of (await fs.readFile(table, 'utf8')).split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is field 1 (hex ip:port), st field 3 (0A: LISTEN), inode field 9.
      if (fields[3] === '0A' && inodes.has(fields[9])) ports.push(Number.parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

/** The layer sizes of busybox as the run's registry serves them: what a pull must fetch. */
async function busyboxLayerBytes(): Promise<{ bytes: number; layers: number }> {
  const response = await fetch(`http://${LOCAL_REGISTRY}/v2/tscri-test/busybox/manifests/1.0`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
  const manifest = (await response.json()) as { layers: Array<{ size: number }> };
  return { bytes: manifest.layers.reduce((sum, layer) => sum + layer.size, 0), layers: manifest.layers.length };
}

describe("the daemon's Prometheus endpoint", () => {
  let daemon: TestDaemon;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    daemon = await startTestDaemon({ extraToml: `[metrics]\naddress = "127.0.0.1:${port}"` });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function get(path: string, method = 'GET'): Promise<{ status: number; type: string | null; text: string }> {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
    return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
  }

  async function scrape(): Promise<Sample[]> {
    const { status, type, text } = await get('/metrics');
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseSamples(text);
  }

  /** Pods and containers by state, as the gauges count them. */
  async function states(): Promise<Record<string, number>> {
    const samples = await scrape();
    const count = (name: string) => Object.fromEntries(samples.filter((s) => s.name === name && s.value > 0).map((s) => [s.labels.state!, s.value]));
    return { ...count('tscri_pods'), ...count('tscri_containers') };
  }

  /** `_count` of every (rpc, code) series, as `rpc code` → count. */
  function rpcCounts(samples: Sample[]): Map<string, number> {
    return new Map(samples.filter((s) => s.name === `${RPC}_count`).map((s) => [`${s.labels.rpc} ${s.labels.code}`, s.value]));
  }

  it('times every call, step and pull of a pod and a container through their whole life, and counts them by state', async () => {
    const before = await scrape();
    const calls = new Map<string, number>();
    const called = (rpc: string, code = 'OK') => calls.set(`${rpc} ${code}`, (calls.get(`${rpc} ${code}`) ?? 0) + 1);
    // daemon.runtime, counting each call it makes.
    const runtime = ((method: string, request: object, timeout?: number) => {
      called(method);
      return daemon.runtime(method as never, request as never, timeout);
    }) as TestDaemon['runtime'];

    await daemon.images('PullImage', { image: { image: BUSYBOX } });
    called('PullImage');
    expect(await states()).toEqual({});

    const config = podConfig('scraped');
    const { pod_sandbox_id: podId } = await runtime('RunPodSandbox', { config });
    expect(await states()).toEqual({ SANDBOX_READY: 1 });
    const container = { metadata: { name: 'sleeper', attempt: 0 }, image: { image: BUSYBOX }, command: ['sleep', '3600'], linux: {} };
    const { container_id: containerId } = await runtime('CreateContainer', { pod_sandbox_id: podId, config: container, sandbox_config: config });
    expect(await states()).toEqual({ SANDBOX_READY: 1, CONTAINER_CREATED: 1 });
    await runtime('StartContainer', { container_id: containerId });
    expect(await states()).toEqual({ SANDBOX_READY: 1, CONTAINER_RUNNING: 1 });

    // The verbose timings are still kept beside the step histograms.
    const { info } = await runtime('PodSandboxStatus', { pod_sandbox_id: podId, verbose: true });
    expect(Object.keys(JSON.parse(info.info!).timingsMs as object)).toEqual(expect.arrayContaining(['netns', 'cni', 'pauseRun']));
    const { info: containerInfo } = await runtime('ContainerStatus', { container_id: containerId, verbose: true });
    expect(Object.keys(JSON.parse(containerInfo.info!).timingsMs as object)).toEqual(expect.arrayContaining(['record', 'rootfs', 'spec', 'runtimeCreate', 'runtimeStart']));
    await runtime('ListContainers', {});

    await runtime('StopContainer', { container_id: containerId, timeout: 0 });
    expect(await states()).toEqual({ SANDBOX_READY: 1, CONTAINER_EXITED: 1 });
    await runtime('StopPodSandbox', { pod_sandbox_id: podId });
    expect(await states()).toEqual({ SANDBOX_NOTREADY: 1, CONTAINER_EXITED: 1 });
    await runtime('RemoveContainer', { container_id: containerId });
    expect(await states()).toEqual({ SANDBOX_NOTREADY: 1 });
    await runtime('RemovePodSandbox', { pod_sandbox_id: podId });
    expect(await states()).toEqual({});
    // A failed call is counted under its code.
    await expect(daemon.runtime('ContainerStatus', { container_id: containerId })).rejects.toMatchObject({ code: 5 });
    called('ContainerStatus', 'NOT_FOUND');

    const after = await scrape();
    // Every call made since the first scrape, under its method and code, and nothing else.
    const counted = rpcCounts(after);
    const countedBefore = rpcCounts(before);
    const delta = [...counted].map(([key, n]) => [key, n - (countedBefore.get(key) ?? 0)] as const).filter(([, n]) => n !== 0);
    expect(Object.fromEntries(delta)).toEqual(Object.fromEntries(calls));
    expect(sampleValue(after, `${RPC}_bucket`, { rpc: 'RunPodSandbox', code: 'OK', le: '+Inf' })).toBe(counted.get('RunPodSandbox OK'));
    expect(sampleValue(after, `${RPC}_sum`, { rpc: 'RunPodSandbox', code: 'OK' })).toBeGreaterThan(0.001);

    // Each step of each operation ran once (Remove found the pod stopped already).
    const steps = Object.fromEntries(labelSets(after, `${STEP}_count`).map((l) => [`${l.operation} ${l.step}`, sampleValue(after, `${STEP}_count`, l)]));
    for (const step of [
      'RunPodSandbox netns',
      'RunPodSandbox cni',
      'RunPodSandbox pauseRun',
      'CreateContainer rootfs',
      'CreateContainer runtimeCreate',
      'StartContainer runtimeStart',
      'StopPodSandbox pauseStop',
      'StopPodSandbox cni',
      'StopPodSandbox netns',
      'RemoveContainer cleanup',
      'RemovePodSandbox pauseDelete',
    ]) {
      expect(steps[step], step).toBe(1);
    }
    // A step is part of its call: never longer than it.
    const cniSeconds = sampleValue(after, `${STEP}_sum`, { operation: 'RunPodSandbox', step: 'cni' })!;
    expect(cniSeconds).toBeGreaterThan(0);
    expect(cniSeconds).toBeLessThanOrEqual(sampleValue(after, `${RPC}_sum`, { rpc: 'RunPodSandbox', code: 'OK' })!);

    // The pull fetched and unpacked exactly busybox's layers.
    const expected = await busyboxLayerBytes();
    expect(sampleValue(after, 'tscri_image_pull_fetched_bytes_total')).toBe(expected.bytes);
    expect(sampleValue(after, 'tscri_image_pull_unpacked_layers_total')).toBe(expected.layers);
    expect(sampleValue(after, 'tscri_image_pull_duration_seconds_count')).toBe(1);
    expect(sampleValue(after, 'tscri_image_pull_duration_seconds_sum')).toBeGreaterThan(0);

    // The process itself.
    expect(sampleValue(after, 'tscri_process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
    expect(sampleValue(after, 'tscri_process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(sampleValue(after, 'tscri_process_open_fds')).toBeGreaterThan(5);
    expect(sampleValue(after, 'tscri_nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(sampleValue(after, 'tscri_nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
  });

  it('answers only GET and HEAD /metrics', async () => {
    for (const path of ['/', '/metrics/extra', '/debug/pprof/', '/favicon.ico']) expect((await get(path)).status, path).toBe(404);
    expect((await get('/metrics', 'POST')).status).toBe(405);
    expect((await get('/metrics', 'DELETE')).status).toBe(405);
    const head = await get('/metrics', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });

  it('listens on its port beside the streaming server, and a daemon without [metrics] listens on nothing more', async () => {
    const withMetrics = await listeningPorts(daemon.pid!);
    expect(withMetrics).toContain(port);
    const quiet = await startTestDaemon();
    try {
      const without = await listeningPorts(quiet.pid!);
      // The streaming server's port only.
      expect(without).toHaveLength(withMetrics.length - 1);
      expect(quiet.logs).not.toContain('metrics endpoint listening');
    } finally {
      await quiet.stop();
    }
    expect(daemon.logs).toContain('metrics endpoint listening');
  });
});
