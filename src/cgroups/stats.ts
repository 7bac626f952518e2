/**
 * One cgroup's counters, read from cgroup v1 or v2 files into one shape. Values follow what
 * cAdvisor and runc read, so CRI stats and metrics agree with what kubelet showed before it
 * asked the runtime: working set = usage − inactive file, rss = anon, cache = file cache.
 */
import path from 'node:path';
import { parseCount, readKeyed, readLines, readNumber } from './files.js';
import { readIoV1, readIoV2, type IoDeviceStats } from './io.js';
import type { CgroupDirs } from './paths.js';
import { readPsi, type PsiSet } from './psi.js';

export interface CpuStats {
  /** CPU time used, nanoseconds, all cores. */
  usageNs: number;
  userNs: number | undefined;
  systemNs: number | undefined;
  /** CFS enforcement periods that elapsed, and those in which the cgroup was throttled. */
  periods: number | undefined;
  throttledPeriods: number | undefined;
  throttledNs: number | undefined;
}

export interface MemoryStats {
  usageBytes: number;
  maxUsageBytes: number | undefined;
  /** Usage minus inactive file cache: what kubelet evicts on. */
  workingSetBytes: number;
  rssBytes: number;
  cacheBytes: number;
  mappedFileBytes: number;
  kernelBytes: number | undefined;
  /** undefined when the kernel does not account swap (v1 without memsw files). */
  swapBytes: number | undefined;
  /** undefined when unlimited. */
  limitBytes: number | undefined;
  swapLimitBytes: number | undefined;
  /** v1 memory.failcnt; v2 memory.events `max` (times usage hit the limit). */
  failcnt: number | undefined;
  /** Page faults of this cgroup's own tasks, and of its whole subtree. */
  pageFaults: number;
  majorPageFaults: number;
  hierarchicalPageFaults: number;
  hierarchicalMajorPageFaults: number;
  oomKills: number | undefined;
}

export interface PidStats {
  /** The cgroup's processes (thread group leaders). */
  pids: number[];
  /** Tasks (threads), which is what pids.current counts. */
  threads: number;
  /** undefined when unlimited. */
  threadsMax: number | undefined;
}

export interface CgroupStats {
  cpu: CpuStats;
  memory: MemoryStats;
  pids: PidStats;
  io: IoDeviceStats[];
  psi: PsiSet;
}

/** The cgroup's counters, or undefined when it does not exist (any more). */
export async function readCgroupStats(dirs: CgroupDirs): Promise<CgroupStats | undefined> {
  return dirs.version === 2 ? readV2(dirs) : readV1(dirs);
}

/** v1 reports "unlimited" as a page-aligned number near 2^63. */
const V1_UNLIMITED = 2 ** 62;
/** cpuacct.stat counts in USER_HZ, which Linux fixes at 100 for userspace. */
const NS_PER_USER_HZ_TICK = 10_000_000;

async function readV1(dirs: CgroupDirs): Promise<CgroupStats | undefined> {
  const cpuacct = dirs.controller('cpuacct');
  const usageNs = await readNumber(path.join(cpuacct, 'cpuacct.usage'));
  if (usageNs === undefined) return undefined;
  const [times, throttling, memory, pids, io, psi] = await Promise.all([
    readKeyed(path.join(cpuacct, 'cpuacct.stat')),
    readKeyed(path.join(dirs.controller('cpu'), 'cpu.stat')),
    readMemoryV1(dirs.controller('memory')),
    readPidsV1(dirs),
    readIoV1(dirs.controller('blkio')),
    readPsi(dirs.unified),
  ]);
  const ticks = (n: number | undefined): number | undefined => (n === undefined ? undefined : n * NS_PER_USER_HZ_TICK);
  const cpu: CpuStats = {
    usageNs,
    userNs: ticks(times.user),
    systemNs: ticks(times.system),
    periods: throttling.nr_periods,
    throttledPeriods: throttling.nr_throttled,
    throttledNs: throttling.throttled_time,
  };
  return { cpu, memory, pids, io, psi };
}

async function readMemoryV1(dir: string): Promise<MemoryStats> {
  const [[usage, max, limit, memswUsage, memswLimit, failcnt, kmem], [stat, oom]] = await Promise.all([
    numbersIn(dir, ['usage_in_bytes', 'max_usage_in_bytes', 'limit_in_bytes', 'memsw.usage_in_bytes', 'memsw.limit_in_bytes', 'failcnt', 'kmem.usage_in_bytes']),
    keyedIn(dir, ['stat', 'oom_control']),
  ]);
  const usageBytes = usage ?? 0;
  const limitBytes = limited(limit);
  const memswLimitBytes = limited(memswLimit);
  return {
    usageBytes,
    maxUsageBytes: max,
    workingSetBytes: Math.max(0, usageBytes - (stat.total_inactive_file ?? stat.inactive_file ?? 0)),
    rssBytes: stat.total_rss ?? stat.rss ?? 0,
    cacheBytes: stat.total_cache ?? stat.cache ?? 0,
    mappedFileBytes: stat.total_mapped_file ?? stat.mapped_file ?? 0,
    kernelBytes: kmem,
    // memsw counts memory plus swap.
    swapBytes: memswUsage === undefined ? undefined : Math.max(0, memswUsage - usageBytes),
    limitBytes,
    swapLimitBytes: memswLimitBytes !== undefined && limitBytes !== undefined ? Math.max(0, memswLimitBytes - limitBytes) : undefined,
    failcnt,
    pageFaults: stat.pgfault ?? 0,
    majorPageFaults: stat.pgmajfault ?? 0,
    hierarchicalPageFaults: stat.total_pgfault ?? stat.pgfault ?? 0,
    hierarchicalMajorPageFaults: stat.total_pgmajfault ?? stat.pgmajfault ?? 0,
    oomKills: oom.oom_kill,
  };
}

function limited(value: number | undefined): number | undefined {
  return value !== undefined && value < V1_UNLIMITED ? value : undefined;
}

async function readPidsV1(dirs: CgroupDirs): Promise<PidStats> {
  const pidsDir = dirs.controller('pids');
  let procs = await readLines(path.join(pidsDir, 'cgroup.procs'));
  // Without a pids hierarchy every v1 controller holds the same processes for a runc container.
  if (procs.length === 0) procs = await readLines(path.join(dirs.controller('memory'), 'cgroup.procs'));
  const current = await readNumber(path.join(pidsDir, 'pids.current'));
  return {
    pids: pidsOf(procs),
    threads: current ?? (await readLines(path.join(dirs.controller('memory'), 'tasks'))).length,
    threadsMax: await readNumber(path.join(pidsDir, 'pids.max')),
  };
}

async function readV2(dirs: CgroupDirs): Promise<CgroupStats | undefined> {
  const dir = dirs.controller('cpu');
  const cpuStat = await readKeyed(path.join(dir, 'cpu.stat'));
  if (cpuStat.usage_usec === undefined) return undefined;
  const [memory, pids, io, psi] = await Promise.all([readMemoryV2(dir), readPidsV2(dir), readIoV2(dir), readPsi(dirs.unified)]);
  const ns = (us: number | undefined): number | undefined => (us === undefined ? undefined : us * 1000);
  const cpu: CpuStats = {
    usageNs: cpuStat.usage_usec * 1000,
    userNs: ns(cpuStat.user_usec),
    systemNs: ns(cpuStat.system_usec),
    periods: cpuStat.nr_periods,
    throttledPeriods: cpuStat.nr_throttled,
    throttledNs: ns(cpuStat.throttled_usec),
  };
  return { cpu, memory, pids, io, psi };
}

async function readMemoryV2(dir: string): Promise<MemoryStats> {
  const [[current, peak, max, swap, swapMax], [stat, events]] = await Promise.all([
    numbersIn(dir, ['current', 'peak', 'max', 'swap.current', 'swap.max']),
    keyedIn(dir, ['stat', 'events']),
  ]);
  const usageBytes = current ?? 0;
  return {
    usageBytes,
    maxUsageBytes: peak,
    workingSetBytes: Math.max(0, usageBytes - (stat.inactive_file ?? 0)),
    rssBytes: stat.anon ?? 0,
    cacheBytes: stat.file ?? 0,
    mappedFileBytes: stat.file_mapped ?? 0,
    // "kernel" since 5.18; before, its two largest parts.
    kernelBytes: stat.kernel ?? (stat.kernel_stack !== undefined || stat.slab !== undefined ? (stat.kernel_stack ?? 0) + (stat.slab ?? 0) : undefined),
    swapBytes: swap,
    limitBytes: max,
    swapLimitBytes: swapMax,
    failcnt: events.max,
    // v2's memory.stat is hierarchical only.
    pageFaults: stat.pgfault ?? 0,
    majorPageFaults: stat.pgmajfault ?? 0,
    hierarchicalPageFaults: stat.pgfault ?? 0,
    hierarchicalMajorPageFaults: stat.pgmajfault ?? 0,
    oomKills: events.oom_kill,
  };
}

async function readPidsV2(dir: string): Promise<PidStats> {
  const [procs, current, max] = await Promise.all([
    readLines(path.join(dir, 'cgroup.procs')),
    readNumber(path.join(dir, 'pids.current')),
    readNumber(path.join(dir, 'pids.max')),
  ]);
  return {
    pids: pidsOf(procs),
    threads: current ?? (await readLines(path.join(dir, 'cgroup.threads'))).length,
    threadsMax: max,
  };
}

function pidsOf(lines: string[]): number[] {
  return lines.map((line) => parseCount(line.trim())).filter((pid): pid is number => pid !== undefined && pid > 0);
}

/**
 * CPU rate between successive samples, as kubelet's usage_nano_cores: nanoseconds of CPU per
 * second of wall time. The first sample of a cgroup has no rate.
 */
export class CpuRate {
  private readonly last = new Map<string, { at: bigint; usage: number }>();

  update(key: string, usageNs: number): number | undefined {
    const now = process.hrtime.bigint();
    const previous = this.last.get(key);
    this.last.set(key, { at: now, usage: usageNs });
    if (!previous || now <= previous.at || usageNs < previous.usage) return undefined;
    return Math.round(((usageNs - previous.usage) * 1e9) / Number(now - previous.at));
  }

  /** Drop keys not in `live` (removed containers and pods), so the map does not grow forever. */
  retain(live: ReadonlySet<string>): void {
    for (const key of this.last.keys()) if (!live.has(key)) this.last.delete(key);
  }
}

/** The numbers in the files `memory.<name>` of `dir`, in order (undefined where a file is missing). */
function numbersIn<const N extends readonly string[]>(dir: string, names: N): Promise<{ [K in keyof N]: number | undefined }> {
  return Promise.all(names.map((name) => readNumber(path.join(dir, `memory.${name}`)))) as Promise<{ [K in keyof N]: number | undefined }>;
}

type Keyed = Awaited<ReturnType<typeof readKeyed>>;

/** The keyed files `memory.<name>` of `dir`, in order. */
function keyedIn<const N extends readonly string[]>(dir: string, names: N): Promise<{ [K in keyof N]: Keyed }> {
  return Promise.all(names.map((name) => readKeyed(path.join(dir, `memory.${name}`)))) as Promise<{ [K in keyof N]: Keyed }>;
}
