import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';

const CGROUP_ROOT = '/sys/fs/cgroup';

/** True on a unified (v2) hierarchy. */
export const isCgroupV2 = existsSync(path.join(CGROUP_ROOT, 'cgroup.controllers'));

export interface CgroupSample {
  /** CPU time used, nanoseconds (all cores). */
  cpuUsageNs: number;
  memoryUsageBytes: number;
  /** Usage minus inactive file cache: what the kubelet evicts on. */
  workingSetBytes: number;
  rssBytes: number;
  pageFaults: number;
  majorPageFaults: number;
  /** The memory limit, or undefined when unlimited. */
  memoryLimitBytes: number | undefined;
  processes: number;
}

/**
 * Read one cgroup's CPU, memory and pid counters. `cgroupPath` is the path below the
 * hierarchy root (the spec's cgroupsPath with the cgroupfs driver).
 */
export async function readCgroup(cgroupPath: string): Promise<CgroupSample | undefined> {
  return isCgroupV2 ? readV2(cgroupPath) : readV1(cgroupPath);
}

async function readV1(cgroupPath: string): Promise<CgroupSample | undefined> {
  const dir = (controller: string): string => path.join(CGROUP_ROOT, controller, cgroupPath);
  const usage = await readNumber(path.join(dir('cpuacct'), 'cpuacct.usage'));
  if (usage === undefined) return undefined;
  const memoryUsage = (await readNumber(path.join(dir('memory'), 'memory.usage_in_bytes'))) ?? 0;
  const stat = await readKeyed(path.join(dir('memory'), 'memory.stat'));
  const limit = await readNumber(path.join(dir('memory'), 'memory.limit_in_bytes'));
  const inactiveFile = stat.total_inactive_file ?? stat.inactive_file ?? 0;
  return {
    cpuUsageNs: usage,
    memoryUsageBytes: memoryUsage,
    workingSetBytes: Math.max(0, memoryUsage - inactiveFile),
    rssBytes: stat.total_rss ?? stat.rss ?? 0,
    pageFaults: stat.total_pgfault ?? stat.pgfault ?? 0,
    majorPageFaults: stat.total_pgmajfault ?? stat.pgmajfault ?? 0,
    // v1 reports "unlimited" as a page-aligned number near 2^63.
    memoryLimitBytes: limit !== undefined && limit < 2 ** 62 ? limit : undefined,
    processes: (await readNumber(path.join(dir('pids'), 'pids.current'))) ?? 0,
  };
}

async function readV2(cgroupPath: string): Promise<CgroupSample | undefined> {
  const dir = path.join(CGROUP_ROOT, cgroupPath);
  const cpu = await readKeyed(path.join(dir, 'cpu.stat'));
  if (cpu.usage_usec === undefined) return undefined;
  const memoryUsage = (await readNumber(path.join(dir, 'memory.current'))) ?? 0;
  const stat = await readKeyed(path.join(dir, 'memory.stat'));
  const max = await fs.readFile(path.join(dir, 'memory.max'), 'utf8').catch(() => 'max');
  return {
    cpuUsageNs: cpu.usage_usec * 1000,
    memoryUsageBytes: memoryUsage,
    workingSetBytes: Math.max(0, memoryUsage - (stat.inactive_file ?? 0)),
    rssBytes: stat.anon ?? 0,
    pageFaults: stat.pgfault ?? 0,
    majorPageFaults: stat.pgmajfault ?? 0,
    memoryLimitBytes: max.trim() === 'max' ? undefined : Number(max.trim()),
    processes: (await readNumber(path.join(dir, 'pids.current'))) ?? 0,
  };
}

async function readNumber(file: string): Promise<number | undefined> {
  try {
    const value = Number((await fs.readFile(file, 'utf8')).trim());
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** A "key value" per line file (memory.stat, cpu.stat). */
async function readKeyed(file: string): Promise<Record<string, number>> {
  try {
    const out: Record<string, number> = {};
    for (const line of (await fs.readFile(file, 'utf8')).split('\n')) {
      const [key, value] = line.split(' ');
      if (key && value !== undefined) out[key] = Number(value);
    }
    return out;
  } catch {
    return {};
  }
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

  forget(key: string): void {
    this.last.delete(key);
  }
}

/** Bytes and inodes under a directory (a container's writable layer), not crossing mounts. */
export async function diskUsage(dir: string): Promise<{ bytes: number; inodes: number }> {
  let bytes = 0;
  let inodes = 0;
  let device: number | undefined;
  const seen = new Set<number>();
  const walk = async (current: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(current, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(current, entry.name);
      const stat = await fs.lstat(full).catch(() => undefined);
      if (!stat || (device !== undefined && stat.dev !== device)) continue;
      if (seen.has(stat.ino)) continue;
      seen.add(stat.ino);
      inodes += 1;
      bytes += stat.blocks * 512;
      if (entry.isDirectory()) await walk(full);
    }
  };
  const root = await fs.lstat(dir).catch(() => undefined);
  if (!root) return { bytes, inodes };
  device = root.dev;
  await walk(dir);
  return { bytes, inodes };
}
