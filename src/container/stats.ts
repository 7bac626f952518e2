import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import { cgroupDirs, detectHierarchy, parentCgroupDirs, type CgroupDirs, type CgroupHierarchy } from '../cgroups/paths.js';
import { NO_PSI, readPsi, type Psi, type PsiSet } from '../cgroups/psi.js';
import { CpuRate, readCgroupStats, type CgroupStats, type CpuStats } from '../cgroups/stats.js';
import type { Config } from '../config/config.js';
import { CriCgroupReader, readPsiSync, type CriCgroupStats, type CriMemoryStats, type CriReadRequest } from '../metrics/cgroup-cri.js';
import { DiskUsageCache, EXITED } from '../metrics/disk-usage-cache.js';
import type { DiskUsage } from '../metrics/filesystem.js';
import { readPodInterfaces, type InterfaceCounters } from '../metrics/net-dev.js';
import { mapInSlices } from '../metrics/slices.js';
import { isHostNetwork, type Sandbox } from '../sandbox/sandbox.js';
import type { SandboxService } from '../sandbox/service.js';
import { nowNanos } from '../util/time.js';
import type { ContainerFactsSource } from './service.js';
import type { ContainerFacts } from './status.js';

/** Where the host's files are; tests point these at fixture trees. */
export interface StatsRoots {
  /** The cgroup filesystem (default /sys/fs/cgroup). */
  cgroup?: string;
  /** procfs (default /proc). */
  proc?: string;
}

/**
 * One read of a container: its cgroup (undefined once it exited) and its writable layer. CRI
 * stats read the part of the cgroup they report (CriCgroupStats), metrics all of it.
 */
export interface ContainerSample<C extends CriCgroupStats = CgroupStats> {
  container: ContainerFacts;
  timestamp: string;
  cgroup: C | undefined;
  writableLayer: { dir: string; usage: DiskUsage };
}

/** One read of a pod: its pause container's cgroup, the pod cgroup's PSI, its interfaces, its containers. */
export interface PodSample<C extends CriCgroupStats = CgroupStats> {
  sandbox: Readonly<Sandbox>;
  timestamp: string;
  pause: C | undefined;
  /** PSI of the pod's own cgroup (the kubelet's per-pod parent); none when pods share a parent. */
  podPsi: PsiSet;
  /** Interfaces in the pod's netns except loopback; undefined for host-network pods. */
  interfaces: InterfaceCounters[] | undefined;
  containers: ContainerSample<C>[];
}

/** What stats read of pods: one by id or prefix, or those matching a filter. */
export type PodsForStats = Pick<SandboxService, 'get' | 'listSandboxes'>;

/** How much of a cgroup a sample reads: the CRI's part (for a pod, with processes), or all. */
type Depth = 'cri' | 'criPod' | 'full';

/**
 * Container and pod statistics from cgroups, the writable layer and the pod's netns: samples
 * that CRI stats (here) and metrics (metrics/service.ts) are both built from.
 *
 * List calls sample one container after another in time slices (metrics/slices.ts): the CRI
 * reads are synchronous, and hundreds of containers must not hold other requests up.
 */
export class StatsService {
  private readonly rates = new CpuRate();
  private readonly criReader = new CriCgroupReader();
  private lastForget = performance.now();
  readonly hierarchy: CgroupHierarchy;
  readonly procRoot: string;

  constructor(
    private readonly config: Config,
    private readonly containers: ContainerFactsSource,
    private readonly sandboxes: PodsForStats,
    roots: StatsRoots = {},
    /** Writable-layer usage, walked again only every few seconds for a large layer. */
    private readonly layers: DiskUsageCache = new DiskUsageCache(),
  ) {
    this.hierarchy = detectHierarchy(roots.cgroup);
    this.procRoot = roots.proc ?? '/proc';
  }

  async containerStats(idOrPrefix: string): Promise<wire.ContainerStats> {
    const stats = containerStatsOf(await this.sampleContainerAt(this.containers.facts(idOrPrefix), 'cri'), this.rates);
    this.forgetGoneNowAndThen();
    return stats;
  }

  async listContainerStats(filter: cri.ContainerStatsFilter | null): Promise<wire.ContainerStats[]> {
    // Facts taken now: a container removed while the list is sampled is still reported.
    const containers = this.containers.listFacts({ id: filter?.id, podSandboxId: filter?.pod_sandbox_id, labels: filter?.label_selector ?? {} });
    const stats = await mapInSlices(containers, async (container) => containerStatsOf(await this.sampleContainerAt(container, 'cri'), this.rates));
    this.forgetGone();
    return stats;
  }

  async podStats(idOrPrefix: string): Promise<wire.PodSandboxStats> {
    const stats = podStatsOf(await this.samplePodAt(this.sandboxes.get(idOrPrefix), 'criPod'), this.rates);
    this.forgetGoneNowAndThen();
    return stats;
  }

  async listPodStats(filter: cri.PodSandboxStatsFilter | null): Promise<wire.PodSandboxStats[]> {
    const sandboxes = this.sandboxes.listSandboxes({ id: filter?.id || undefined, labels: filter?.label_selector ?? {} });
    const stats = await mapInSlices(sandboxes, async (sandbox) => podStatsOf(await this.samplePodAt(sandbox, 'criPod'), this.rates));
    this.forgetGone();
    return stats;
  }

  /** Pods that are ready, as ListPodSandboxMetrics reports them. */
  readySandboxes(): Sandbox[] {
    return this.sandboxes.listSandboxes({ state: 'SANDBOX_READY' });
  }

  /** Everything a pod's metrics need. */
  samplePod(sandbox: Readonly<Sandbox>): Promise<PodSample> {
    return this.samplePodAt(sandbox, 'full');
  }

  /** Everything a container's metrics need. */
  sampleContainer(container: ContainerFacts): Promise<ContainerSample> {
    return this.sampleContainerAt(container, 'full');
  }

  private async samplePodAt(sandbox: Readonly<Sandbox>, depth: 'full'): Promise<PodSample>;
  private async samplePodAt(sandbox: Readonly<Sandbox>, depth: Depth): Promise<PodSample<CriCgroupStats>>;
  private async samplePodAt(sandbox: Readonly<Sandbox>, depth: Depth): Promise<PodSample<CriCgroupStats>> {
    const { record } = sandbox;
    const timestamp = nowNanos();
    const pauseDirs = (): CgroupDirs => cgroupDirs(this.hierarchy, this.config.cgroupDriver, record.cgroupsPath);
    const pauseKey = podKey(record.id);
    if (sandbox.pauseExit) this.criReader.forget(pauseKey);
    const [pause, podPsi, interfaces, containers] = await Promise.all([
      sandbox.pauseExit ? undefined : this.readCgroup(pauseKey, pauseDirs, depth === 'full' ? 'full' : { processes: true }),
      this.readPodPsi(sandbox, depth),
      this.readInterfaces(sandbox),
      Promise.all(this.containers.listFacts({ podSandboxId: record.id }).map((c) => this.sampleContainerAt(c, depth))),
    ]);
    return { sandbox, timestamp, pause, podPsi, interfaces, containers };
  }

  private async sampleContainerAt(container: ContainerFacts, depth: 'full'): Promise<ContainerSample>;
  private async sampleContainerAt(container: ContainerFacts, depth: Depth): Promise<ContainerSample<CriCgroupStats>>;
  private async sampleContainerAt(container: ContainerFacts, depth: Depth): Promise<ContainerSample<CriCgroupStats>> {
    const timestamp = nowNanos();
    const dir = container.writableLayer;
    const request: CriReadRequest = { processes: depth === 'criPod', psi: true, limits: { version: container.resources } };
    // Its cgroup, as its spec named it; none once it exited or its pod is gone.
    const cgroupsPath = container.exited ? undefined : container.cgroupsPath;
    if (cgroupsPath === undefined) this.criReader.forget(container.id);
    const locate = (path: string) => (): CgroupDirs => cgroupDirs(this.hierarchy, this.config.cgroupDriver, path);
    const cgroup = cgroupsPath !== undefined ? await this.readCgroup(container.id, locate(cgroupsPath), depth === 'full' ? 'full' : request) : undefined;
    // The CPU usage, read before the layer is: what tells the cache the layer cannot have changed.
    const usage = await this.layers.usage(dir, container.exited ? EXITED : cgroup?.cpu.usageNs);
    return { container, timestamp, cgroup, writableLayer: { dir, usage } };
  }

  /**
   * The cgroup of a container or pause container (`key`, its id or podKey), in full or its CRI
   * part. A cgroupsPath runc could not have used (a malformed slice) names no cgroup.
   */
  private async readCgroup(key: string, locate: () => CgroupDirs, what: 'full'): Promise<CgroupStats | undefined>;
  private async readCgroup(key: string, locate: () => CgroupDirs, what: 'full' | CriReadRequest): Promise<CriCgroupStats | undefined>;
  private async readCgroup(key: string, locate: () => CgroupDirs, what: 'full' | CriReadRequest): Promise<CriCgroupStats | undefined> {
    if (what !== 'full') return this.criReader.read(key, locate, what);
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
  private async readPodPsi(sandbox: Readonly<Sandbox>, depth: Depth): Promise<PsiSet> {
    const parent = sandbox.record.config.linux?.cgroup_parent;
    if (!parent || sandbox.pauseExit) return NO_PSI;
    let dirs: CgroupDirs;
    try {
      dirs = parentCgroupDirs(this.hierarchy, this.config.cgroupDriver, parent);
    } catch {
      return NO_PSI;
    }
    return depth === 'full' ? readPsi(dirs.unified) : readPsiSync(dirs.unified);
  }

  private async readInterfaces(sandbox: Readonly<Sandbox>): Promise<InterfaceCounters[] | undefined> {
    const pid = sandbox.record.pausePid;
    // A pause that exited may have its pid reused by an unrelated process.
    if (!pid || sandbox.pauseExit || isHostNetwork(sandbox.record)) return undefined;
    return readPodInterfaces(pid, this.procRoot);
  }

  /**
   * A client that asks for one container or pod at a time still lets go of the removed ones'
   * open cgroup files, at most once a FORGET_INTERVAL_MS.
   */
  private forgetGoneNowAndThen(): void {
    const now = performance.now();
    if (now - this.lastForget >= FORGET_INTERVAL_MS) this.forgetGone();
  }

  /** Rates, open cgroup files and layer usage of containers and pods that no longer exist are dropped. */
  private forgetGone(): void {
    this.lastForget = performance.now();
    const live = new Set<string>();
    const layers = new Set<string>();
    for (const c of this.containers.listFacts()) {
      live.add(c.id);
      layers.add(c.writableLayer);
    }
    for (const s of this.sandboxes.listSandboxes()) live.add(podKey(s.record.id));
    this.criReader.retain(live);
    this.layers.retain(layers);
    this.rates.retain(live);
  }
}

/** Walking every container and pod to drop what is gone costs some 100 µs at 400 containers. */
const FORGET_INTERVAL_MS = 10_000;

/** A pod's key among container ids: its CPU rate, its pause container's open cgroup files. */
const podKey = (id: string): string => `pod:${id}`;

export function containerStatsOf(sample: ContainerSample<CriCgroupStats>, rates: CpuRate): wire.ContainerStats {
  const { container, timestamp, cgroup } = sample;
  const psi = cgroup?.psi ?? NO_PSI;
  return {
    attributes: { id: container.id, metadata: container.metadata, labels: container.labels, annotations: container.annotations },
    cpu: cpuUsage(timestamp, cgroup?.cpu, cgroup ? rates.update(container.id, cgroup.cpu.usageNs) : undefined, psi.cpu),
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
export function podStatsOf(sample: PodSample<CriCgroupStats>, rates: CpuRate): wire.PodSandboxStats {
  const { sandbox, timestamp, podPsi } = sample;
  const { record } = sandbox;
  const members = [sample.pause, ...sample.containers.map((c) => c.cgroup)].filter((s): s is CriCgroupStats => s !== undefined);
  const total = members.length > 0 ? sumForPod(members) : undefined;
  return {
    attributes: { id: record.id, metadata: record.config.metadata, labels: record.config.labels, annotations: record.config.annotations },
    linux: {
      cpu: cpuUsage(timestamp, total?.cpu, total ? rates.update(podKey(record.id), total.cpu.usageNs) : undefined, podPsi.cpu),
      memory: memoryUsage(timestamp, total?.memory, podPsi.memory),
      network: networkUsage(timestamp, sample.interfaces),
      process: { timestamp, process_count: { value: total?.processes ?? 0 } },
      containers: sample.containers.map((c) => containerStatsOf(c, rates)),
      io: ioUsage(timestamp, podPsi.io),
    },
  };
}

export function cpuUsage(timestamp: string, cpu: Pick<CpuStats, 'usageNs'> | undefined, nanoCores: number | undefined, psi: Psi | undefined): wire.CpuUsage {
  return {
    timestamp,
    usage_core_nano_seconds: { value: cpu?.usageNs ?? 0 },
    ...(nanoCores !== undefined ? { usage_nano_cores: { value: nanoCores } } : {}),
    ...psiField(psi),
  };
}

export function memoryUsage(timestamp: string, memory: CriMemoryStats | undefined, psi: Psi | undefined): wire.MemoryUsage {
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
export function swapUsage(timestamp: string, memory: CriMemoryStats | undefined): wire.SwapUsage {
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
  cpu: Pick<CpuStats, 'usageNs'>;
  memory: CriMemoryStats;
  processes: number;
}

function sumForPod(members: CriCgroupStats[]): PodTotals {
  const sum = (pick: (s: CriCgroupStats) => number): number => members.reduce((total, s) => total + pick(s), 0);
  return {
    cpu: { usageNs: sum((s) => s.cpu.usageNs) },
    memory: {
      usageBytes: sum((s) => s.memory.usageBytes),
      workingSetBytes: sum((s) => s.memory.workingSetBytes),
      rssBytes: sum((s) => s.memory.rssBytes),
      pageFaults: sum((s) => s.memory.pageFaults),
      majorPageFaults: sum((s) => s.memory.majorPageFaults),
      limitBytes: undefined,
      swapBytes: undefined,
      swapLimitBytes: undefined,
    },
    processes: sum((s) => s.pids?.pids.length ?? 0),
  };
}
