import path from 'node:path';
import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import { cgroupDirs, detectHierarchy, parentCgroupDirs, type CgroupDirs, type CgroupHierarchy } from '../cgroups/paths.js';
import { NO_PSI, type Psi, type PsiSet } from '../cgroups/psi.js';
import { CpuRate, readCgroupStats, type CgroupStats, type CpuStats, type MemoryStats } from '../cgroups/stats.js';
import type { Config } from '../config/config.js';
import { diskUsage, type DiskUsage } from '../metrics/filesystem.js';
import { readPodInterfaces, type InterfaceCounters } from '../metrics/net-dev.js';
import { cgroupsPathFor } from '../oci/spec.js';
import { criStateOf, isHostNetwork, type Sandbox } from '../sandbox/sandbox.js';
import type { SandboxService } from '../sandbox/service.js';
import { nowNanos } from '../util/time.js';
import type { ContainerRecord } from './container.js';
import type { ContainerService } from './service.js';

/** Where the host's files are; tests point these at fixture trees. */
export interface StatsRoots {
  /** The cgroup filesystem (default /sys/fs/cgroup). */
  cgroup?: string;
  /** procfs (default /proc). */
  proc?: string;
}

/** One read of a container: its cgroup (undefined once it exited) and its writable layer. */
export interface ContainerSample {
  record: ContainerRecord;
  timestamp: string;
  cgroup: CgroupStats | undefined;
  writableLayer: { dir: string; usage: DiskUsage };
}

/** One read of a pod: its pause container's cgroup, the pod cgroup's PSI, its interfaces, its containers. */
export interface PodSample {
  sandbox: Sandbox;
  timestamp: string;
  pause: CgroupStats | undefined;
  /** PSI of the pod's own cgroup (the kubelet's per-pod parent); none when pods share a parent. */
  podPsi: PsiSet;
  /** Interfaces in the pod's netns except loopback; undefined for host-network pods. */
  interfaces: InterfaceCounters[] | undefined;
  containers: ContainerSample[];
}

/**
 * Container and pod statistics from cgroups, the writable layer and the pod's netns: samples
 * that CRI stats (here) and metrics (metrics/service.ts) are both built from.
 */
export class StatsService {
  private readonly rates = new CpuRate();
  readonly hierarchy: CgroupHierarchy;
  readonly procRoot: string;

  constructor(
    private readonly config: Config,
    private readonly containers: ContainerService,
    private readonly sandboxes: SandboxService,
    roots: StatsRoots = {},
  ) {
    this.hierarchy = detectHierarchy(roots.cgroup);
    this.procRoot = roots.proc ?? '/proc';
  }

  async containerStats(idOrPrefix: string): Promise<wire.ContainerStats> {
    return containerStatsOf(await this.sampleContainer(this.containers.get(idOrPrefix)), this.rates);
  }

  async listContainerStats(filter: cri.ContainerStatsFilter | null): Promise<wire.ContainerStats[]> {
    const records = this.containers.list({
      id: filter?.id ?? '',
      pod_sandbox_id: filter?.pod_sandbox_id ?? '',
      state: null,
      label_selector: filter?.label_selector ?? {},
    });
    const stats = await Promise.all(records.map(async (c) => containerStatsOf(await this.sampleContainer(this.containers.get(c.id!)), this.rates)));
    this.forgetGone();
    return stats;
  }

  async podStats(idOrPrefix: string): Promise<wire.PodSandboxStats> {
    return podStatsOf(await this.samplePod(this.sandboxes.get(idOrPrefix)), this.rates);
  }

  async listPodStats(filter: cri.PodSandboxStatsFilter | null): Promise<wire.PodSandboxStats[]> {
    const items = this.sandboxes.list({ id: filter?.id ?? '', state: null, label_selector: filter?.label_selector ?? {} });
    const stats = await Promise.all(items.map(async (item) => podStatsOf(await this.samplePod(this.sandboxes.get(item.id!)), this.rates)));
    this.forgetGone();
    return stats;
  }

  /** Pods that are ready, as ListPodSandboxMetrics reports them. */
  readySandboxes(): Sandbox[] {
    return this.sandboxes.sandboxes.values().filter((sandbox) => criStateOf(sandbox) === 'SANDBOX_READY');
  }

  async samplePod(sandbox: Sandbox): Promise<PodSample> {
    const { record } = sandbox;
    const timestamp = nowNanos();
    const [pause, podPsi, interfaces, containers] = await Promise.all([
      sandbox.pauseExit ? undefined : this.readCgroup(() => cgroupDirs(this.hierarchy, this.config.cgroupDriver, record.cgroupsPath)),
      this.readPodPsi(sandbox),
      this.readInterfaces(sandbox),
      Promise.all(this.containers.inSandbox(record.id).map((c) => this.sampleContainer(c))),
    ]);
    return { sandbox, timestamp, pause, podPsi, interfaces, containers };
  }

  async sampleContainer(record: ContainerRecord): Promise<ContainerSample> {
    const sandbox = this.sandboxes.sandboxes.find(record.sandboxId);
    const timestamp = nowNanos();
    const dir = path.join(this.config.root, 'containers', record.id, 'upper');
    const [cgroup, usage] = await Promise.all([
      sandbox && !record.exit ? this.readCgroup(() => this.containerCgroupDirs(sandbox, record.id)) : undefined,
      diskUsage(dir),
    ]);
    return { record, timestamp, cgroup, writableLayer: { dir, usage } };
  }

  /** The cgroup of a container, as its spec named it (src/container/spec.ts). */
  containerCgroupDirs(sandbox: Sandbox, containerId: string): CgroupDirs {
    return cgroupDirs(this.hierarchy, this.config.cgroupDriver, cgroupsPathFor(this.config.cgroupDriver, sandbox.record.cgroupParent, containerId));
  }

  /** A cgroupsPath runc could not have used (a malformed slice) names no cgroup: nothing to read. */
  private async readCgroup(locate: () => CgroupDirs): Promise<CgroupStats | undefined> {
    let dirs: CgroupDirs;
    try {
      dirs = locate();
    } catch {
      return undefined;
    }
    return readCgroupStats(dirs);
  }

  /**
   * A pod config naming its own cgroup parent (the kubelet's per-pod cgroup) has its PSI there;
   * under the daemon's shared default parent no cgroup is the pod's alone.
   */
  private async readPodPsi(sandbox: Sandbox): Promise<PsiSet> {
    const parent = sandbox.record.config.linux?.cgroup_parent;
    if (!parent || sandbox.pauseExit) return NO_PSI;
    const stats = await this.readCgroup(() => parentCgroupDirs(this.hierarchy, this.config.cgroupDriver, parent));
    return stats?.psi ?? NO_PSI;
  }

  private async readInterfaces(sandbox: Sandbox): Promise<InterfaceCounters[] | undefined> {
    const pid = sandbox.record.pausePid;
    // A pause that exited may have its pid reused by an unrelated process.
    if (!pid || sandbox.pauseExit || isHostNetwork(sandbox.record)) return undefined;
    return readPodInterfaces(pid, this.procRoot);
  }

  /** Rates of containers and pods that no longer exist are dropped. */
  private forgetGone(): void {
    const live = new Set<string>();
    for (const c of this.containers.containers.values()) live.add(c.id);
    for (const s of this.sandboxes.sandboxes.values()) live.add(podRateKey(s.record.id));
    this.rates.retain(live);
  }
}

const podRateKey = (id: string): string => `pod:${id}`;

export function containerStatsOf(sample: ContainerSample, rates: CpuRate): wire.ContainerStats {
  const { record, timestamp, cgroup } = sample;
  const psi = cgroup?.psi ?? NO_PSI;
  return {
    attributes: { id: record.id, metadata: record.config.metadata, labels: record.config.labels, annotations: record.config.annotations },
    cpu: cpuUsage(timestamp, cgroup?.cpu, cgroup ? rates.update(record.id, cgroup.cpu.usageNs) : undefined, psi.cpu),
    memory: memoryUsage(timestamp, cgroup?.memory, psi.memory),
    writable_layer: {
      timestamp,
      fs_id: { mountpoint: sample.writableLayer.dir },
      used_bytes: { value: sample.writableLayer.usage.bytes },
      inodes_used: { value: sample.writableLayer.usage.inodes },
    },
    swap: swapUsage(timestamp, cgroup?.memory),
    io: ioUsage(timestamp, psi.io),
  };
}

/** Pause and containers have cgroups of their own under the pod's parent, so the pod is their sum. */
export function podStatsOf(sample: PodSample, rates: CpuRate): wire.PodSandboxStats {
  const { sandbox, timestamp, podPsi } = sample;
  const { record } = sandbox;
  const members = [sample.pause, ...sample.containers.map((c) => c.cgroup)].filter((s): s is CgroupStats => s !== undefined);
  const total = members.length > 0 ? sumForPod(members) : undefined;
  return {
    attributes: { id: record.id, metadata: record.config.metadata, labels: record.config.labels, annotations: record.config.annotations },
    linux: {
      cpu: cpuUsage(timestamp, total?.cpu, total ? rates.update(podRateKey(record.id), total.cpu.usageNs) : undefined, podPsi.cpu),
      memory: memoryUsage(timestamp, total?.memory, podPsi.memory),
      network: networkUsage(timestamp, sample.interfaces),
      process: { timestamp, process_count: { value: total?.processes ?? 0 } },
      containers: sample.containers.map((c) => containerStatsOf(c, rates)),
      io: ioUsage(timestamp, podPsi.io),
    },
  };
}

export function cpuUsage(timestamp: string, cpu: CpuStats | undefined, nanoCores: number | undefined, psi: Psi | undefined): wire.CpuUsage {
  return {
    timestamp,
    usage_core_nano_seconds: { value: cpu?.usageNs ?? 0 },
    ...(nanoCores !== undefined ? { usage_nano_cores: { value: nanoCores } } : {}),
    ...psiField(psi),
  };
}

export function memoryUsage(timestamp: string, memory: MemoryStats | undefined, psi: Psi | undefined): wire.MemoryUsage {
  if (!memory) return { timestamp, working_set_bytes: { value: 0 } };
  return {
    timestamp,
    working_set_bytes: { value: memory.workingSetBytes },
    usage_bytes: { value: memory.usageBytes },
    rss_bytes: { value: memory.rssBytes },
    page_faults: { value: memory.pageFaults },
    major_page_faults: { value: memory.majorPageFaults },
    ...(memory.limitBytes !== undefined ? { available_bytes: { value: Math.max(0, memory.limitBytes - memory.workingSetBytes) } } : {}),
    ...psiField(psi),
  };
}

/** Swap as the kernel accounts it; nothing but the timestamp where it does not. */
export function swapUsage(timestamp: string, memory: MemoryStats | undefined): wire.SwapUsage {
  const used = memory?.swapBytes;
  const limit = memory?.swapLimitBytes;
  return {
    timestamp,
    ...(used !== undefined ? { swap_usage_bytes: { value: used } } : {}),
    ...(used !== undefined && limit !== undefined ? { swap_available_bytes: { value: Math.max(0, limit - used) } } : {}),
  };
}

/** The CRI has only PSI for IO; byte and operation counts are served as metrics. */
export function ioUsage(timestamp: string, psi: Psi | undefined): wire.IoUsage {
  return { timestamp, ...psiField(psi) };
}

function psiField(psi: Psi | undefined): { psi?: wire.PsiStats } {
  return psi ? { psi: psiStats(psi) } : {};
}

/** The kernel's totals are µs; the CRI's are ns. */
export function psiStats(psi: Psi): wire.PsiStats {
  const data = (line: Psi['some']): wire.PsiData => ({ Total: line.totalUs * 1000, Avg10: line.avg10, Avg60: line.avg60, Avg300: line.avg300 });
  return { Some: data(psi.some), ...(psi.full ? { Full: data(psi.full) } : {}) };
}

/**
 * The CRI's default interface is eth0 (the one CNI adds) or else the first; `interfaces`
 * holds the others, as the API defines it.
 */
export function networkUsage(timestamp: string, interfaces: InterfaceCounters[] | undefined): wire.NetworkUsage {
  if (!interfaces) return { timestamp };
  const toCri = (i: InterfaceCounters): wire.NetworkInterfaceUsage => ({
    name: i.name,
    rx_bytes: { value: i.rxBytes },
    rx_errors: { value: i.rxErrors },
    tx_bytes: { value: i.txBytes },
    tx_errors: { value: i.txErrors },
  });
  const primary = interfaces.find((i) => i.name === 'eth0') ?? interfaces[0];
  return {
    timestamp,
    ...(primary ? { default_interface: toCri(primary) } : {}),
    interfaces: interfaces.filter((i) => i !== primary).map(toCri),
  };
}

interface PodTotals {
  cpu: CpuStats;
  memory: MemoryStats;
  processes: number;
}

function sumForPod(members: CgroupStats[]): PodTotals {
  const sum = (pick: (s: CgroupStats) => number): number => members.reduce((total, s) => total + pick(s), 0);
  return {
    cpu: { usageNs: sum((s) => s.cpu.usageNs), userNs: undefined, systemNs: undefined, periods: undefined, throttledPeriods: undefined, throttledNs: undefined },
    memory: {
      usageBytes: sum((s) => s.memory.usageBytes),
      maxUsageBytes: undefined,
      workingSetBytes: sum((s) => s.memory.workingSetBytes),
      rssBytes: sum((s) => s.memory.rssBytes),
      cacheBytes: sum((s) => s.memory.cacheBytes),
      mappedFileBytes: sum((s) => s.memory.mappedFileBytes),
      kernelBytes: undefined,
      swapBytes: undefined,
      limitBytes: undefined,
      swapLimitBytes: undefined,
      failcnt: undefined,
      pageFaults: sum((s) => s.memory.pageFaults),
      majorPageFaults: sum((s) => s.memory.majorPageFaults),
      hierarchicalPageFaults: sum((s) => s.memory.hierarchicalPageFaults),
      hierarchicalMajorPageFaults: sum((s) => s.memory.hierarchicalMajorPageFaults),
      oomKills: undefined,
    },
    processes: sum((s) => s.pids.pids.length),
  };
}
