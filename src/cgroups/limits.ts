/**
 * Writing limits into an existing cgroup (a pod's, for UpdatePodSandboxResources), on v1 or
 * v2. Containers get theirs through runc; a pod's cgroup is the kubelet's cgroup parent,
 * which no runc container owns, so its files are written here.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as cri from '../api/cri.js';
import { InvalidArgumentError, NotFoundError, errnoCode } from '../errors.js';
import type { CgroupDirs } from './paths.js';

/** The limits a pod's cgroup should enforce: its containers' sum plus its overhead. */
export interface PodLimits {
  cpuPeriod?: number;
  /** -1: unlimited. */
  cpuQuota?: number;
  cpuShares?: number;
  /** 0 or absent: leave as it is. */
  memoryBytes?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
}

const n = (value: string): number => Number(value || '0');

/** resources + overhead, field by field, as the kubelet sizes a pod's cgroup. */
export function podLimits(resources: cri.LinuxContainerResources | null, overhead: cri.LinuxContainerResources | null): PodLimits {
  const limits: PodLimits = {};
  const sum = (field: keyof cri.LinuxContainerResources): number => n(String(resources?.[field] ?? '0')) + n(String(overhead?.[field] ?? '0'));
  const period = n(resources?.cpu_period ?? '0') || n(overhead?.cpu_period ?? '0');
  if (period > 0) limits.cpuPeriod = period;
  const quotas = [resources?.cpu_quota, overhead?.cpu_quota].map((q) => n(q ?? '0'));
  if (quotas.some((q) => q < 0)) limits.cpuQuota = -1;
  else if (quotas.some((q) => q > 0)) limits.cpuQuota = quotas[0]! + quotas[1]!;
  if (sum('cpu_shares') > 0) limits.cpuShares = sum('cpu_shares');
  if (n(resources?.memory_limit_in_bytes ?? '0') > 0) limits.memoryBytes = sum('memory_limit_in_bytes');
  if (resources?.cpuset_cpus) limits.cpusetCpus = resources.cpuset_cpus;
  if (resources?.cpuset_mems) limits.cpusetMems = resources.cpuset_mems;
  return limits;
}

/** The files and values that set `limits` on a cgroup of the given version. */
export function limitFiles(dirs: CgroupDirs, limits: PodLimits): Array<[file: string, value: string]> {
  const files: Array<[string, string]> = [];
  if (dirs.version === 1) {
    const cpu = dirs.controller('cpu');
    // The period first: a quota is checked against the period already in place.
    if (limits.cpuPeriod !== undefined) files.push([path.join(cpu, 'cpu.cfs_period_us'), String(limits.cpuPeriod)]);
    if (limits.cpuQuota !== undefined) files.push([path.join(cpu, 'cpu.cfs_quota_us'), String(limits.cpuQuota)]);
    if (limits.cpuShares !== undefined) files.push([path.join(cpu, 'cpu.shares'), String(limits.cpuShares)]);
    if (limits.memoryBytes !== undefined) files.push([path.join(dirs.controller('memory'), 'memory.limit_in_bytes'), String(limits.memoryBytes)]);
    if (limits.cpusetCpus) files.push([path.join(dirs.controller('cpuset'), 'cpuset.cpus'), limits.cpusetCpus]);
    if (limits.cpusetMems) files.push([path.join(dirs.controller('cpuset'), 'cpuset.mems'), limits.cpusetMems]);
    return files;
  }
  const dir = dirs.controller('cpu');
  if (limits.cpuQuota !== undefined || limits.cpuPeriod !== undefined) {
    const quota = limits.cpuQuota === undefined || limits.cpuQuota < 0 ? 'max' : String(limits.cpuQuota);
    files.push([path.join(dir, 'cpu.max'), `${quota} ${limits.cpuPeriod ?? 100000}`]);
  }
  // cgroup v2 weights (1-10000) from v1 shares (2-262144), as runc converts them.
  if (limits.cpuShares !== undefined) files.push([path.join(dir, 'cpu.weight'), String(1 + Math.floor(((limits.cpuShares - 2) * 9999) / 262142))]);
  if (limits.memoryBytes !== undefined) files.push([path.join(dir, 'memory.max'), String(limits.memoryBytes)]);
  if (limits.cpusetCpus) files.push([path.join(dir, 'cpuset.cpus'), limits.cpusetCpus]);
  if (limits.cpusetMems) files.push([path.join(dir, 'cpuset.mems'), limits.cpusetMems]);
  return files;
}

/** Write `limits` into the cgroup; the kernel's refusals become errors naming the file. */
export async function applyLimits(dirs: CgroupDirs, limits: PodLimits): Promise<void> {
  for (const [file, value] of limitFiles(dirs, limits)) {
    try {
      await fs.writeFile(file, value);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') throw new NotFoundError(`the pod's cgroup has no ${file}`);
      if (code === 'EBUSY') throw new InvalidArgumentError(`${path.basename(file)} ${value}: below what the pod uses now`);
      if (code === 'EINVAL') throw new InvalidArgumentError(`${path.basename(file)} ${value}: the kernel refused it`);
      throw err;
    }
  }
}
