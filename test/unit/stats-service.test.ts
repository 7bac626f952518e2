/**
 * StatsService and MetricsService end to end over fixture trees: a pod (pause + one container)
 * under the systemd driver on cgroup v2, v1 hybrid and plain v1, and under cgroupfs, with
 * fake container and sandbox services holding the records.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import type { Config } from '../../src/config/config.js';
import type { ContainerRecord } from '../../src/container/container.js';
import type { ContainerFactsSource } from '../../src/container/service.js';
import { containerCgroupsPath } from '../../src/container/spec.js';
import { factsOf } from '../../src/container/status.js';
import { DaemonLayout } from '../../src/layout.js';
import { StatsService } from '../../src/container/stats.js';
import { metricDescriptors } from '../../src/metrics/descriptors.js';
import { DeviceNames, splitDev } from '../../src/metrics/devices.js';
import { MetricsService } from '../../src/metrics/service.js';
import { criStateOf, type Sandbox, type SandboxRecord } from '../../src/sandbox/sandbox.js';
import type { SandboxService } from '../../src/sandbox/service.js';
import { hybridUnified, removeTree, SYSTEMD_POD_PATH, SYSTEMD_POD_SLICE, systemdScopePath, v1Cgroup, v2Cgroup, writeTree, type Files } from './cgroup-fixtures.js';
import { readyPodRecord } from './fakes/pod-record.js';

const MiB = 1024 * 1024;
const POD_ID = 'pod0000';
const CONTAINER_ID = 'ctr0000';
const PAUSE_PID = 4242;

const NET_DEV = [
  'Inter-|   Receive                                                |  Transmit',
  ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
  '    lo:     999       9    0    0    0     0          0         0      999       9    0    0    0     0       0          0',
  '  eth0: 5000000    4000    1    2    0     0          0         0  7000000    5000    3    4    0     0       0          0',
  '  net1:     100       1    0    0    0     0          0         0      200       2    0    0    0     0       0          0',
  '',
].join('\n');

/** The pod cgroup's own PSI, different from its containers' so the test can tell them apart. */
const POD_PSI = 'some avg10=9.00 avg60=9.00 avg300=9.00 total=9000000\nfull avg10=8.00 avg60=8.00 avg300=8.00 total=8000000\n';

interface Layout {
  driver: 'cgroupfs' | 'systemd';
  /** The pod's cgroup parent as the kubelet passes it. */
  parent: string;
  pauseSpecPath: string;
  cgroupFiles: Files;
}

const SYSTEMD = { driver: 'systemd' as const, parent: SYSTEMD_POD_SLICE, pauseSpecPath: `${SYSTEMD_POD_SLICE}:tscri:${POD_ID}` };

const LAYOUTS: Record<string, Layout> = {
  'v2, systemd': {
    ...SYSTEMD,
    cgroupFiles: {
      ...v2Cgroup(systemdScopePath(POD_ID), { [`${systemdScopePath(POD_ID)}/cpu.stat`]: 'usage_usec 1000000\n', [`${systemdScopePath(POD_ID)}/cgroup.procs`]: `${PAUSE_PID}\n` }),
      ...v2Cgroup(systemdScopePath(CONTAINER_ID)),
      [`${SYSTEMD_POD_PATH}/cpu.pressure`]: POD_PSI,
      [`${SYSTEMD_POD_PATH}/cpu.stat`]: 'usage_usec 3500000\n',
    },
  },
  'v1 hybrid, systemd': {
    ...SYSTEMD,
    cgroupFiles: {
      ...v1Cgroup(systemdScopePath(POD_ID), { [`cpuacct${systemdScopePath(POD_ID)}/cpuacct.usage`]: '1000000000\n' }),
      ...v1Cgroup(systemdScopePath(CONTAINER_ID)),
      ...hybridUnified(systemdScopePath(CONTAINER_ID)),
      [`unified${SYSTEMD_POD_PATH}/cpu.pressure`]: POD_PSI,
      [`cpuacct${SYSTEMD_POD_PATH}/cpuacct.usage`]: '3500000000\n',
    },
  },
  'v1, cgroupfs': {
    driver: 'cgroupfs',
    parent: '/kubepods/burstable/pod123',
    pauseSpecPath: `/kubepods/burstable/pod123/${POD_ID}`,
    cgroupFiles: {
      ...v1Cgroup(`/kubepods/burstable/pod123/${POD_ID}`, { [`cpuacct/kubepods/burstable/pod123/${POD_ID}/cpuacct.usage`]: '1000000000\n' }),
      ...v1Cgroup(`/kubepods/burstable/pod123/${CONTAINER_ID}`),
    },
  },
};

function sandboxRecord(layout: Layout, ownParent: boolean): SandboxRecord {
  const config = { labels: { app: 'web' }, linux: { cgroup_parent: ownParent ? layout.parent : '' } };
  return readyPodRecord(POD_ID, { cgroupParent: layout.parent, cgroupsPath: layout.pauseSpecPath, pausePid: PAUSE_PID }, config);
}

function containerRecord(): ContainerRecord {
  return {
    version: 1,
    id: CONTAINER_ID,
    sandboxId: POD_ID,
    name: 'app_web-0_ns_uid_0',
    config: { metadata: { name: 'app', attempt: 0 }, labels: {}, annotations: {} } as unknown as cri.ContainerConfig,
    image: { requested: 'busybox', id: 'sha256:abc', name: 'registry.test/busybox:1.0', layers: [] },
    phase: 'created',
    createdAt: '1',
    startedAt: '2',
    logPath: '',
    resources: { cpu_quota: '50000', cpu_period: '100000' } as cri.LinuxContainerResources,
    stopSignal: 'SIGTERM',
    ownPidNamespace: true,
  };
}

function fakeServices(sandbox: Sandbox, container: ContainerRecord, config: Config): { containers: ContainerFactsSource; sandboxes: SandboxService } {
  const facts = factsOf(container, containerCgroupsPath(config.cgroupDriver, sandbox.record.cgroupParent, container.id), new DaemonLayout(config.root, '/run/unused').containerUpper(container.id));
  const containers: ContainerFactsSource = {
    facts: () => facts,
    listFacts: (filter = {}) => (!filter.podSandboxId || filter.podSandboxId === sandbox.record.id ? [facts] : []),
  };
  const sandboxes = {
    get: () => sandbox,
    list: () => [{ id: sandbox.record.id }],
    find: (id: string) => (id === sandbox.record.id ? sandbox : undefined),
    listSandboxes: (filter: { state?: string } = {}) => (!filter.state || criStateOf(sandbox) === filter.state ? [sandbox] : []),
  } as unknown as SandboxService;
  return { containers, sandboxes };
}

describe('stats and metrics of a pod over fixture cgroup trees', () => {
  const trees: string[] = [];
  afterAll(() => Promise.all(trees.map(removeTree)));

  /** Cgroups, /proc (net/dev of the pause, fds of one container process), sysfs and a writable layer. */
  async function setUp(layoutName: string, options: { ownParent?: boolean; hybrid?: boolean } = {}) {
    const layout = LAYOUTS[layoutName]!;
    let cgroupFiles = layout.cgroupFiles;
    if (options.hybrid === false) cgroupFiles = Object.fromEntries(Object.entries(cgroupFiles).filter(([file]) => !file.startsWith('unified')));
    const cgroupRoot = await writeTree(cgroupFiles);
    const host = await writeTree({
      [`proc/${PAUSE_PID}/net/dev`]: NET_DEV,
      [`proc/101/fd`]: null,
      [`proc/201/fd`]: null,
      [`root/containers/${CONTAINER_ID}/upper/data.bin`]: 'x'.repeat(8192),
      'sys/dev/block/254:0/uevent': 'MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n',
    });
    trees.push(cgroupRoot, host);
    for (const pid of [101, 201]) {
      await fs.symlink('/dev/null', path.join(host, `proc/${pid}/fd/0`));
      await fs.symlink('socket:[31337]', path.join(host, `proc/${pid}/fd/3`));
    }
    // The writable layer's filesystem gets a sysfs name too, so its device label is known (if
    // it is the fixture's IO device, 254:0, it keeps that one's name).
    const { major, minor } = splitDev((await fs.stat(host, { bigint: true })).dev);
    const layerDevice = `${major}:${minor}` === '254:0' ? '/dev/vda' : '/dev/testdisk';
    if (layerDevice === '/dev/testdisk') {
      await fs.mkdir(path.join(host, `sys/dev/block/${major}:${minor}`), { recursive: true });
      await fs.writeFile(path.join(host, `sys/dev/block/${major}:${minor}/uevent`), 'DEVNAME=testdisk\n');
    }

    const sandbox: Sandbox = { record: sandboxRecord(layout, options.ownParent ?? true) };
    const config = { cgroupDriver: layout.driver, root: path.join(host, 'root') } as Config;
    const { containers, sandboxes } = fakeServices(sandbox, containerRecord(), config);
    const stats = new StatsService(config, containers, sandboxes, { cgroup: cgroupRoot, proc: path.join(host, 'proc') });
    const metrics = new MetricsService(stats, new DeviceNames({ sys: path.join(host, 'sys'), mountinfo: path.join(host, 'no-mountinfo') }));
    return { stats, metrics, layerDevice };
  }

  it('v2 + systemd: container stats from the scope, with swap, IO PSI and the CRI’s ns totals', async () => {
    const { stats } = await setUp('v2, systemd');
    const container = await stats.containerStats(CONTAINER_ID);
    expect(container.cpu).toMatchObject({ usage_core_nano_seconds: { value: 2_500_000_000 } });
    expect(container.cpu!.psi).toEqual({
      Some: { Total: 2_500_000_000, Avg10: 1.5, Avg60: 0.75, Avg300: 0.25 },
      Full: { Total: 1_200_000_000, Avg10: 0.5, Avg60: 0.25, Avg300: 0 },
    });
    expect(container.memory).toMatchObject({ working_set_bytes: { value: 80 * MiB }, usage_bytes: { value: 100 * MiB }, rss_bytes: { value: 60 * MiB } });
    expect(container.memory!.available_bytes).toBeUndefined(); // memory.max is "max"
    expect(container.swap).toMatchObject({ swap_usage_bytes: { value: 4 * MiB }, swap_available_bytes: { value: 60 * MiB } });
    expect(container.io!.psi!.Full).toEqual({ Total: 6_000_000_000, Avg10: 3, Avg60: 1.5, Avg300: 0.5 });
    expect(Number(container.writable_layer!.used_bytes!.value)).toBeGreaterThanOrEqual(8192);
  });

  it('v2 + systemd: the pod sums its members, takes PSI from its own cgroup and keeps eth0 apart from the other interfaces', async () => {
    const { stats } = await setUp('v2, systemd');
    const pod = (await stats.podStats(POD_ID)).linux!;
    expect(pod.cpu!.usage_core_nano_seconds).toEqual({ value: 3_500_000_000 });
    expect(pod.cpu!.psi!.Some!.Total).toBe(9_000_000_000);
    expect(pod.process!.process_count).toEqual({ value: 4 }); // the pause and three container processes
    expect(pod.network!.default_interface).toEqual({ name: 'eth0', rx_bytes: { value: 5000000 }, rx_errors: { value: 1 }, tx_bytes: { value: 7000000 }, tx_errors: { value: 3 } });
    expect(pod.network!.interfaces!.map((i) => i.name)).toEqual(['net1']);
    expect(pod.containers).toHaveLength(1);
    expect(pod.io!.timestamp).toBeDefined();
  });

  it('v2 + systemd: metrics for the pod (network, pause) and its container, each described and labelled', async () => {
    const { metrics, layerDevice } = await setUp('v2, systemd');
    const [pod] = await metrics.podSandboxMetrics();
    const keys = new Map(metricDescriptors().map((d) => [d.name, d.label_keys!]));
    const all = [...pod!.metrics!, ...pod!.container_metrics!.flatMap((c) => c.metrics!)];
    for (const m of all) expect(m.label_values, m.name).toHaveLength(keys.get(m.name)!.length);

    const labelled = (m: cri.Metric | (typeof all)[number]) => Object.fromEntries(keys.get(m.name!)!.map((k, i) => [k, m.label_values![i]]));
    const podSent = pod!.metrics!.filter((m) => m.name === 'container_network_transmit_bytes_total').map(labelled);
    expect(podSent).toEqual([
      { id: POD_ID, image: 'tscri/pause:builtin', namespace: 'ns', pod: 'web-0', container: 'POD', interface: 'eth0' },
      { id: POD_ID, image: 'tscri/pause:builtin', namespace: 'ns', pod: 'web-0', container: 'POD', interface: 'net1' },
    ]);
    expect(pod!.metrics!.find((m) => m.name === 'container_cpu_usage_seconds_total')!.value).toEqual({ value: 1 });

    const container = pod!.container_metrics![0]!;
    expect(container.container_id).toBe(CONTAINER_ID);
    const find = (name: string, extra: Record<string, string> = {}) =>
      container.metrics!.filter((m) => m.name === name && Object.entries(extra).every(([k, v]) => labelled(m)[k] === v));
    expect(labelled(find('container_memory_rss')[0]!)).toEqual({ id: CONTAINER_ID, image: 'registry.test/busybox:1.0', namespace: 'ns', pod: 'web-0', container: 'app' });
    expect(find('container_cpu_usage_seconds_total', { cpu: 'total' })[0]!.value).toEqual({ value: 2 });
    expect(find('container_cpu_cfs_throttled_periods_total')[0]!.value).toEqual({ value: 30 }); // it has a quota
    expect(find('container_fs_writes_bytes_total', { device: '/dev/vda' })[0]!.value).toEqual({ value: 8388608 });
    expect(find('container_fs_reads_bytes_total', { device: '7:3' })[0]!.value).toEqual({ value: 512 }); // no sysfs name
    expect(Number(find('container_fs_usage_bytes', { device: layerDevice })[0]!.value!.value)).toBeGreaterThanOrEqual(8192);
    expect(find('container_sockets')[0]!.value).toEqual({ value: 1 });
    expect(find('container_file_descriptors')[0]!.value).toEqual({ value: 2 });
    expect(find('container_threads_max')[0]!.value).toEqual({ value: 1024 });
    expect(find('container_pressure_io_stalled_seconds_total')[0]!.value).toEqual({ value: 6 });
    expect(find('container_memory_swap')[0]!.value).toEqual({ value: 4 * MiB });
  });

  it('v1 hybrid + systemd: PSI from the unified mount; the pod’s own cgroup PSI too', async () => {
    const { stats, metrics } = await setUp('v1 hybrid, systemd');
    const container = await stats.containerStats(CONTAINER_ID);
    expect(container.cpu!.usage_core_nano_seconds).toEqual({ value: 2_500_000_000 });
    expect(container.cpu!.psi!.Some!.Total).toBe(2_500_000_000);
    expect(container.swap!.swap_usage_bytes).toEqual({ value: 10 * MiB });
    expect((await stats.podStats(POD_ID)).linux!.cpu!.psi!.Some!.Total).toBe(9_000_000_000);
    const names = (await metrics.podSandboxMetrics())[0]!.container_metrics![0]!.metrics!.map((m) => m.name);
    expect(names).toContain('container_pressure_cpu_waiting_seconds_total');
  });

  it('v1 without a unified mount: no PSI anywhere, and no pressure metrics', async () => {
    const { stats, metrics } = await setUp('v1 hybrid, systemd', { hybrid: false });
    const container = await stats.containerStats(CONTAINER_ID);
    expect(container.cpu!.usage_core_nano_seconds).toEqual({ value: 2_500_000_000 });
    expect(container.cpu!.psi).toBeUndefined();
    expect(container.memory!.psi).toBeUndefined();
    expect(container.io).toEqual({ timestamp: container.io!.timestamp });
    const names = (await metrics.podSandboxMetrics())[0]!.container_metrics![0]!.metrics!.map((m) => m.name);
    expect(names.some((n) => n!.startsWith('container_pressure_'))).toBe(false);
    expect(names).toContain('container_memory_usage_bytes');
  });

  it('v1 + cgroupfs: pods under a shared parent get no pod-level PSI; a container without a cgroup has no metrics', async () => {
    const { stats, metrics } = await setUp('v1, cgroupfs', { ownParent: false });
    const pod = (await stats.podStats(POD_ID)).linux!;
    expect(pod.cpu!.usage_core_nano_seconds).toEqual({ value: 3_500_000_000 });
    expect(pod.cpu!.psi).toBeUndefined();
    const container = await stats.containerStats(CONTAINER_ID);
    expect(container.memory!.available_bytes).toEqual({ value: 176 * MiB }); // 256 MiB limit − 80 MiB working set
    await fs.rm(path.join((stats.hierarchy as { root: string }).root, 'cpuacct'), { recursive: true });
    const [podMetrics] = await metrics.podSandboxMetrics();
    expect(podMetrics!.container_metrics).toEqual([]);
    expect(podMetrics!.metrics!.every((m) => m.name!.startsWith('container_network_'))).toBe(true);
  });
});
