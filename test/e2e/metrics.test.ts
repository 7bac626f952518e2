/**
 * Metrics from the runtime (ListMetricDescriptors, ListPodSandboxMetrics) and the IO, swap and
 * PSI parts of ContainerStats/PodSandboxStats, against the real daemon on this host (cgroup v1,
 * cgroupfs driver). A container burns CPU, holds memory, writes a file with O_DIRECT and sends
 * traffic from its pod's eth0; every value is checked for the direction it moved and against the
 * cgroup and /proc files the host itself shows, read before and after the RPC.
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { podConfig, sleep, startTestDaemon, type TestDaemon } from './harness.js';
import { exists } from './host.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');
const CGROUP_ROOT = '/sys/fs/cgroup';
const MiB = 1024 * 1024;
/** The base labels every tscri metric starts with, in this order. */
const BASE_LABELS = ['id', 'image', 'namespace', 'pod', 'container'];

/**
 * The worker holds ~32 MiB in a shell variable (rss), keeps a listening socket open (nc), and
 * stays a shell (the loop) so that the variable is not dropped by an exec of the last command.
 */
const WORKER_COMMAND = [
  'sh',
  '-c',
  'x=$(yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa | head -c 33554432); nc -l -p 7070 >/dev/null & echo ready > /tmp/ready; while :; do sleep 3600; done',
];

type Metric = cri.Metric;
type Labels = Record<string, string>;

describe('metrics from the runtime', () => {
  let daemon: TestDaemon;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function runWorker(name: string, resources: Record<string, unknown> = {}) {
    const config = podConfig(name);
    const { pod_sandbox_id: podId } = await daemon.runtime('RunPodSandbox', { config });
    const { container_id: id } = await daemon.runtime('CreateContainer', {
      pod_sandbox_id: podId,
      config: { metadata: { name: 'worker', attempt: 0 }, image: { image: BUSYBOX }, command: WORKER_COMMAND, linux: { resources } },
      sandbox_config: config,
    });
    await daemon.runtime('StartContainer', { container_id: id });
    await waitFor(async () => (await daemon.runtime('ExecSync', { container_id: id, cmd: ['cat', '/tmp/ready'], timeout: 5 })).exit_code === 0);
    const podInfo = JSON.parse((await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: podId, verbose: true })).info.info!);
    const containerInfo = JSON.parse((await daemon.runtime('ContainerStatus', { container_id: id, verbose: true })).info.info!);
    return {
      podId,
      id,
      podName: name,
      pausePid: podInfo.pid as number,
      podIp: (await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: podId })).status!.network!.ip,
      cgroup: containerInfo.runtimeSpec.linux.cgroupsPath as string,
      upper: path.join(daemon.dirs.root, 'containers', id, 'upper'),
    };
  }

  it('describes every metric it reports, and reports a pod and its container moving as the host sees them', async () => {
    // 0.8 CPU: the busy loop is throttled in most 100 ms periods.
    const worker = await runWorker('metrics', { cpu_quota: 80_000, cpu_period: 100_000 });
    const { descriptors } = await daemon.runtime('ListMetricDescriptors', {});
    const keysOf = new Map(descriptors.map((d) => [d.name, d.label_keys]));
    expect(keysOf.size).toBe(descriptors.length);
    for (const d of descriptors) {
      expect(d.label_keys.slice(0, BASE_LABELS.length)).toEqual(BASE_LABELS);
      expect(d.help).not.toBe('');
    }

    const before = await metricsOf(worker.podId);
    const blockDevice = await throttleAccountingOn(worker.cgroup, worker.upper);
    const received = await sendFromPod(worker.id, worker.podIp, 256 * 1024);
    const hostBefore = await hostView(worker);
    const after = await metricsOf(worker.podId);
    const hostAfter = await hostView(worker);

    // Every metric is described, with as many label values as its descriptor has keys, and
    // counters are cAdvisor's: the *_total metrics but the inode gauge, and failcnt.
    for (const metric of [...after.pod, ...after.container]) {
      expect(keysOf.has(metric.name), metric.name).toBe(true);
      expect(metric.label_values).toHaveLength(keysOf.get(metric.name)!.length);
      const counter = (metric.name.endsWith('_total') && metric.name !== 'container_fs_inodes_total') || metric.name === 'container_memory_failcnt';
      expect(metric.metric_type, metric.name).toBe(counter ? 'COUNTER' : 'GAUGE');
    }
    const pick = (metrics: Metric[], name: string, labels: Labels = {}) => valueOf(metrics, keysOf, name, labels);
    const base = { id: worker.id, namespace: 'e2e', pod: worker.podName, container: 'worker', image: BUSYBOX };
    const podBase = { id: worker.podId, namespace: 'e2e', pod: worker.podName, container: 'POD' };

    // CPU: two seconds of a busy loop at 0.8 CPU, in whole seconds (the wire carries uint64).
    const cpu = (m: Metric[]) => pick(m, 'container_cpu_usage_seconds_total', { ...base, cpu: 'total' });
    expect(cpu(after.container) - cpu(before.container)).toBeGreaterThanOrEqual(1);
    expect(cpu(after.container)).toBeGreaterThanOrEqual(Math.floor(hostBefore.cpuNs / 1e9));
    expect(cpu(after.container)).toBeLessThanOrEqual(Math.floor(hostAfter.cpuNs / 1e9));
    expect(pick(after.container, 'container_cpu_user_seconds_total', base)).toBeGreaterThanOrEqual(1);
    const throttled = (m: Metric[]) => pick(m, 'container_cpu_cfs_throttled_periods_total', base);
    expect(throttled(after.container) - throttled(before.container)).toBeGreaterThanOrEqual(5);
    expect(throttled(after.container)).toBeGreaterThanOrEqual(hostBefore.throttledPeriods);
    expect(throttled(after.container)).toBeLessThanOrEqual(hostAfter.throttledPeriods);
    expect(pick(after.container, 'container_cpu_cfs_periods_total', base)).toBeGreaterThanOrEqual(15);
    // The pause container has no quota, so no CFS series (as cAdvisor).
    expect(after.pod.some((m) => m.name === 'container_cpu_cfs_periods_total')).toBe(false);
    expect(pick(after.pod, 'container_cpu_usage_seconds_total', { ...podBase, cpu: 'total' })).toBe(0);

    // Memory: the 32 MiB the shell holds, within what the cgroup showed around the call.
    const usage = pick(after.container, 'container_memory_usage_bytes', base);
    expect(usage).toBeGreaterThanOrEqual(Math.min(hostBefore.memoryUsage, hostAfter.memoryUsage) - MiB);
    expect(usage).toBeLessThanOrEqual(Math.max(hostBefore.memoryUsage, hostAfter.memoryUsage) + MiB);
    expect(pick(after.container, 'container_memory_rss', base)).toBeGreaterThanOrEqual(32 * MiB);
    expect(pick(after.container, 'container_memory_working_set_bytes', base)).toBeGreaterThanOrEqual(32 * MiB);
    expect(pick(after.container, 'container_memory_failures_total', { ...base, failure_type: 'pgfault', scope: 'container' })).toBeGreaterThan(0);
    expect(pick(after.container, 'container_memory_swap', base)).toBe(hostAfter.swap);

    // The writable layer grew by the file written; IO reached the block device.
    const fsUsage = (m: Metric[]) => sumOf(m, keysOf, 'container_fs_usage_bytes', base);
    expect(fsUsage(after.container) - fsUsage(before.container)).toBeGreaterThanOrEqual(4 * MiB);
    expect(fsUsage(after.container)).toBeGreaterThanOrEqual((await fs.stat(path.join(worker.upper, 'data.bin'))).blocks * 512);
    if (blockDevice) {
      const written = (m: Metric[]) => pick(m, 'container_fs_writes_bytes_total', { ...base, device: blockDevice.name });
      expect(written(after.container) - (optional(() => written(before.container)) ?? 0)).toBeGreaterThanOrEqual(4 * MiB);
      expect(written(after.container)).toBeGreaterThanOrEqual(hostBefore.blkioWrite(blockDevice.key));
      expect(written(after.container)).toBeLessThanOrEqual(hostAfter.blkioWrite(blockDevice.key));
    }

    // Processes: the shell, sleep and nc, the socket nc listens on.
    expect(pick(after.container, 'container_processes', base)).toBe(hostAfter.processes);
    expect(pick(after.container, 'container_threads', base)).toBe(hostAfter.threads);
    expect(pick(after.container, 'container_sockets', base)).toBeGreaterThanOrEqual(1);
    expect(pick(after.container, 'container_file_descriptors', base)).toBeGreaterThanOrEqual(3 * hostAfter.processes);

    // Network, at the pod's level: what eth0 carried, between the host's two readings.
    const sent = (m: Metric[]) => pick(m, 'container_network_transmit_bytes_total', { ...podBase, interface: 'eth0' });
    expect(received).toBe(256 * 1024);
    expect(sent(after.pod) - sent(before.pod)).toBeGreaterThanOrEqual(256 * 1024);
    expect(sent(after.pod)).toBeGreaterThanOrEqual(hostBefore.eth0.txBytes);
    expect(sent(after.pod)).toBeLessThanOrEqual(hostAfter.eth0.txBytes);
    expect(pick(after.pod, 'container_network_receive_packets_total', { ...podBase, interface: 'eth0' })).toBeGreaterThan(
      pick(before.pod, 'container_network_receive_packets_total', { ...podBase, interface: 'eth0' }),
    );
    expect(after.pod.some((m) => m.name.startsWith('container_network_') && labelsOf(m, keysOf).interface === 'lo')).toBe(false);

    // PSI is there exactly when the host keeps it for this cgroup (v2, or v1 with the hybrid unified mount).
    const psiFile = path.join(CGROUP_ROOT, 'unified', worker.cgroup, 'cpu.pressure');
    const hasPsi = await exists(psiFile);
    expect(after.container.some((m) => m.name === 'container_pressure_cpu_waiting_seconds_total')).toBe(hasPsi);
  });

  it('carries IO and swap in ContainerStats and PodSandboxStats, with PSI where the host keeps it', async () => {
    const worker = await runWorker('stats-io');
    const stats = (await daemon.runtime('ContainerStats', { container_id: worker.id })).stats!;
    const host = await hostView(worker);
    expect(Number(stats.io!.timestamp)).toBeGreaterThan(0);
    expect(Number(stats.swap!.timestamp)).toBeGreaterThan(0);
    expect(Number(stats.swap!.swap_usage_bytes!.value)).toBe(host.swap);
    const psiFile = path.join(CGROUP_ROOT, 'unified', worker.cgroup, 'cpu.pressure');
    if (await exists(psiFile)) {
      // The hybrid unified hierarchy keeps per-cgroup stall times: totals in ns, from the file's µs.
      const totalUs = Number(/^some .*total=(\d+)/m.exec(await fs.readFile(psiFile, 'utf8'))![1]);
      expect(Number(stats.cpu!.psi!.Some!.Total)).toBeGreaterThanOrEqual(totalUs * 1000);
      expect(stats.memory!.psi!.Full).not.toBeNull();
      expect(stats.io!.psi!.Some).not.toBeNull();
    } else {
      expect(stats.cpu!.psi).toBeNull();
      expect(stats.io!.psi).toBeNull();
    }
    const pod = (await daemon.runtime('PodSandboxStats', { pod_sandbox_id: worker.podId })).stats!;
    expect(Number(pod.linux!.io!.timestamp)).toBeGreaterThan(0);
    expect(pod.linux!.containers[0]!.swap!.swap_usage_bytes).not.toBeNull();
    expect(Number(pod.linux!.process!.process_count!.value)).toBeGreaterThanOrEqual(3); // pause, sh, sleep (and nc)
    expect(pod.linux!.network!.default_interface!.name).toBe('eth0');
    expect(pod.linux!.network!.interfaces.map((i) => i.name)).not.toContain('eth0');
  });

  async function metricsOf(podId: string): Promise<{ pod: Metric[]; container: Metric[] }> {
    const { pod_metrics } = await daemon.runtime('ListPodSandboxMetrics', {});
    const mine = pod_metrics.find((p) => p.pod_sandbox_id === podId);
    expect(mine, 'the pod is listed').toBeDefined();
    expect(mine!.container_metrics).toHaveLength(1);
    return { pod: mine!.metrics, container: mine!.container_metrics[0]!.metrics };
  }

  /**
   * Write 4 MiB with O_DIRECT (block IO the container's own task issues, which cgroup v1 charges
   * to its cgroup; buffered writeback is charged to the root there), burn two seconds of CPU,
   * and send `bytes` from the pod's eth0 to a server on the bridge's address.
   */
  async function sendFromPod(id: string, podIp: string, bytes: number): Promise<number> {
    const gateway = podIp.replace(/\.\d+$/, '.1');
    let received = 0;
    const server = net.createServer((socket) => {
      socket.on('data', (chunk) => {
        received += chunk.length;
        if (received >= bytes) socket.destroy();
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, gateway, resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const script = [
        'dd if=/dev/zero of=/data.bin bs=64k count=64 oflag=direct 2>/dev/null',
        "timeout 2 sh -c 'while :; do :; done'",
        `dd if=/dev/zero bs=1024 count=${bytes / 1024} 2>/dev/null | nc -w 3 ${gateway} ${port}`,
        'true',
      ].join('; ');
      await daemon.runtime('ExecSync', { container_id: id, cmd: ['sh', '-c', script], timeout: 20 });
    } finally {
      server.close();
    }
    return received;
  }
});

/**
 * On cgroup v1, recent kernels (6.18 here) count blkio.throttle.* only for queues blk-throttle
 * is set up on, which happens at the first throttle rule. A rule far above any real rate, on the
 * container's own cgroup (removed with it), makes the counters count. Returns the device, or
 * undefined when the writable layer is not on a block device.
 */
async function throttleAccountingOn(cgroup: string, upper: string): Promise<{ key: string; name: string } | undefined> {
  const dev = (await fs.stat(upper, { bigint: true })).dev;
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  const key = `${major}:${minor}`;
  const uevent = await fs.readFile(`/sys/dev/block/${key}/uevent`, 'utf8').catch(() => undefined);
  const devname = uevent && /^DEVNAME=(.+)$/m.exec(uevent)?.[1];
  if (!devname) return undefined;
  await fs.writeFile(path.join(CGROUP_ROOT, 'blkio', cgroup, 'blkio.throttle.write_bps_device'), `${key} 1099511627776`);
  return { key, name: `/dev/${devname}` };
}

/** What the host's own files say about the worker's cgroup and its pod's eth0. */
async function hostView(worker: { cgroup: string; pausePid: number }) {
  const read = (controller: string, file: string) => fs.readFile(path.join(CGROUP_ROOT, controller, worker.cgroup, file), 'utf8');
  const number = async (controller: string, file: string) => Number((await read(controller, file)).trim());
  const memoryUsage = await number('memory', 'memory.usage_in_bytes');
  const memsw = await number('memory', 'memory.memsw.usage_in_bytes').catch(() => undefined);
  const blkio = await read('blkio', 'blkio.throttle.io_service_bytes_recursive');
  const netDev = await fs.readFile(`/proc/${worker.pausePid}/net/dev`, 'utf8');
  const eth0 = netDev.split('\n').find((l) => l.trim().startsWith('eth0:'))!.trim().split(/[:\s]+/);
  return {
    cpuNs: await number('cpuacct', 'cpuacct.usage'),
    throttledPeriods: Number(/^nr_throttled (\d+)$/m.exec(await read('cpu', 'cpu.stat'))![1]),
    memoryUsage,
    swap: memsw === undefined ? 0 : Math.max(0, memsw - memoryUsage),
    processes: (await read('pids', 'cgroup.procs')).trim().split('\n').filter(Boolean).length,
    threads: await number('pids', 'pids.current'),
    eth0: { rxBytes: Number(eth0[1]), txBytes: Number(eth0[9]) },
    blkioWrite: (key: string) => Number(new RegExp(`^${key} Write (\\d+)$`, 'm').exec(blkio)?.[1] ?? 0),
  };
}

function labelsOf(metric: Metric, keysOf: Map<string, string[]>): Labels {
  const keys = keysOf.get(metric.name) ?? [];
  return Object.fromEntries(keys.map((key, i) => [key, metric.label_values[i] ?? '']));
}

function matching(metrics: Metric[], keysOf: Map<string, string[]>, name: string, labels: Labels): Metric[] {
  return metrics.filter((m) => m.name === name && Object.entries(labels).every(([k, v]) => labelsOf(m, keysOf)[k] === v));
}

/** The one metric with this name and these labels, as a number. */
function valueOf(metrics: Metric[], keysOf: Map<string, string[]>, name: string, labels: Labels): number {
  const found = matching(metrics, keysOf, name, labels);
  expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1);
  return Number(found[0]!.value!.value);
}

function sumOf(metrics: Metric[], keysOf: Map<string, string[]>, name: string, labels: Labels): number {
  const found = matching(metrics, keysOf, name, labels);
  expect(found.length, name).toBeGreaterThan(0);
  return found.reduce((sum, m) => sum + Number(m.value!.value), 0);
}

function optional<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(100);
  }
}
