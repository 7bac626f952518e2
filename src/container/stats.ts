import path from 'node:path';
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

/**
 * One read of a container: its cgroup (undefined once it exited) and its writable layer. CRI
 * stats read the part of the cgroup they report (CriCgroupStats), metrics all of it.
 */
export interface ContainerSample<C extends CriCgroupStats = CgroupStats> {
  record: ContainerRecord;
  timestamp: string;
  cgroup: C | undefined;
  writableLayer: { dir: string; usage: DiskUsage };
}

/** One read of a pod: its pause container's cgroup, the pod cgroup's PSI, its interfaces, its containers. */
export interface PodSample<C extends CriCgroupStats = CgroupStats> {
  sandbox: Sandbox;
  timestamp: string;
  pause: C | undefined;
  /** PSI of the pod's own cgroup (the kubelet's per-pod parent); none when pods share a parent. */
  podPsi: PsiSet;
  /** Interfaces in the pod's netns except loopback; undefined for host-network pods. */
  interfaces: InterfaceCounters[] | undefined;
  containers: ContainerSample<C>[];
}

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
  private readonly containersDir: string;

  constructor(
    private readonly config: Config,
    private readonly containers: ContainerService,
    private readonly sandboxes: SandboxService,
    roots: StatsRoots = {},
    /** Writable-layer usage, walked again only every few seconds for a large layer. */
    private readonly layers: DiskUsageCache = new DiskUsageCache(),
  ) {
    this.hierarchy = detectHierarchy(roots.cgroup);
    this.procRoot = roots.proc ?? '/proc';
    this.containersDir = path.join(config.root, 'containers');
  }

  async containerStats(idOrPrefix: string): Promise<wire.ContainerStats> {
    const stats = containerStatsOf(await this.sampleContainerAt(this.containers.get(idOrPrefix), 'cri'), this.rates);
    this.forgetGoneNowAndThen();
    return stats;
  }

  async listContainerStats(filter: cri.ContainerStatsFilter | null): Promise<wire.ContainerStats[]> {
    const listed = this.containers.list({
      id: filter?.id ?? '',
      pod_sandbox_id: filter?.pod_sandbox_id ?? '',
      state: null,
      label_selector: filter?.label_selector ?? {},
    });
    // Records taken now: one removed while the list is sampled is still reported.
    const records = listed.map((c) => this.containers.get(c.id!));
    const stats = await mapInSlices(records, async (record) => containerStatsOf(await this.sampleContainerAt(record, 'cri'), this.rates));
    this.forgetGone();
    return stats;
  }

  async podStats(idOrPrefix: string): Promise<wire.PodSandboxStats> {
    const stats = podStatsOf(await this.samplePodAt(this.sandboxes.get(idOrPrefix), 'criPod'), this.rates);
    this.forgetGoneNowAndThen();
    return stats;
  }

  async listPodStats(filter: cri.PodSandboxStatsFilter | null): Promise<wire.PodSandboxStats[]> {
    const items = this.sandboxes.list({ id: filter?.id ?? '', state: null, label_selector: filter?.label_selector ?? {} });
    const sandboxes = items.map((item) => this.sandboxes.get(item.id!));
    const stats = await mapInSlices(sandboxes, async (sandbox) => podStatsOf(await this.samplePodAt(sandbox, 'criPod'), this.rates));
    this.forgetGone();
    return stats;
  }

  /** Pods that are ready, as ListPodSandboxMetrics reports them. */
  readySandboxes(): Sandbox[] {
    return this.sandboxes.sandboxes.values().filter((sandbox) => criStateOf(sandbox) === 'SANDBOX_READY');
  }

  /** Everything a pod's metrics need. */
  samplePod(sandbox: Sandbox): Promise<PodSample> {
    return this.samplePodAt(sandbox, 'full');
  }

  /** Everything a container's metrics need. */
  sampleContainer(record: ContainerRecord): Promise<ContainerSample> {
    return this.sampleContainerAt(record, 'full');
  }

  private async samplePodAt(sandbox: Sandbox, depth: 'full'): Promise<PodSample>;
  private async samplePodAt(sandbox: Sandbox, depth: Depth): Promise<PodSample<CriCgroupStats>>;
  private async samplePodAt(sandbox: Sandbox, depth: Depth): Promise<PodSample<CriCgroupStats>> {
    const { record } = sandbox;
    const timestamp = nowNanos();
    const pauseDirs = (): CgroupDirs => cgroupDirs(this.hierarchy, this.config.cgroupDriver, record.cgroupsPath);
    const pauseKey = podKey(record.id);
    if (sandbox.pauseExit) this.criReader.forget(pauseKey);
    const [pause, podPsi, interfaces, containers] = await Promise.all([
      sandbox.pauseExit ? undefined : this.readCgroup(pauseKey, pauseDirs, depth === 'full' ? 'full' : { processes: true }),
      this.readPodPsi(sandbox, depth),
      this.readInterfaces(sandbox),
      Promise.all(this.containers.inSandbox(record.id).map((c) => this.sampleContainerAt(c, depth))),
    ]);
    return { sandbox, timestamp, pause, podPsi, interfaces, containers };
  }

  private async sampleContainerAt(record: ContainerRecord, depth: 'full'): Promise<ContainerSample>;
  private async sampleContainerAt(record: ContainerRecord, depth: Depth): Promise<ContainerSample<CriCgroupStats>>;
  private async sampleContainerAt(record: ContainerRecord, depth: Depth): Promise<ContainerSample<CriCgroupStats>> {
    const sandbox = this.sandboxes.sandboxes.find(record.sandboxId);
    const timestamp = nowNanos();
    const dir = this.writableLayerDir(record.id);
    const request: CriReadRequest = { processes: depth === 'criPod', psi: true, limits: { version: record.resources } };
    const running = sandbox && !record.exit;
    if (!running) this.criReader.forget(record.id);
    const cgroup = running ? await this.readCgroup(record.id, () => this.containerCgroupDirs(sandbox, record.id), depth === 'full' ? 'full' : request) : undefined;
    // The CPU usage, read before the layer is: what tells the cache the layer cannot have changed.
    const usage = await this.layers.usage(dir, record.exit ? EXITED : cgroup?.cpu.usageNs);
    return { record, timestamp, cgroup, writableLayer: { dir, usage } };
  }

  /** The upper directory of a container's rootfs overlay (ids are hex: no path.join needed). */
  private writableLayerDir(containerId: string): string {
    return `${this.containersDir}/${containerId}/upper`;
  }

  /** The cgroup of a container, as its spec named it (src/container/spec.ts). */
  containerCgroupDirs(sandbox: Sandbox, containerId: string): CgroupDirs {
    return cgroupDirs(this.hierarchy, this.config.cgroupDriver, cgroupsPathFor(this.config.cgroupDriver, sandbox.record.cgroupParent, containerId));
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
  private async readPodPsi(sandbox: Sandbox, depth: Depth): Promise<PsiSet> {
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

  private async readInterfaces(sandbox: Sandbox): Promise<InterfaceCounters[] | undefined> {
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
    for (const c of this.containers.containers.values()) {
      live.add(c.id);
      layers.add(this.writableLayerDir(c.id));
    }
    for (const s of this.sandboxes.sandboxes.values()) live.add(podKey(s.record.id));
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
