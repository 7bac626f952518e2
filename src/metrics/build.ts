/**
 * CRI metrics from what stats read: pure functions from counters to `Metric` messages, each
 * carrying its descriptor's type and exactly as many label values as its descriptor has keys.
 */
import type * as wire from '../api/wire.js';
import type { IoDeviceStats } from '../cgroups/io.js';
import type { OpenFiles } from '../cgroups/processes.js';
import type { Psi, PsiSet } from '../cgroups/psi.js';
import type { CpuStats, MemoryStats, PidStats } from '../cgroups/stats.js';
import { CPU, FILESYSTEM, MEMORY, NETWORK, PRESSURE, PROCESSES, type MetricSpec } from './descriptors.js';
import type { DiskUsage, FilesystemCapacity } from './filesystem.js';
import type { InterfaceCounters } from './net-dev.js';

/** Values of BASE_LABEL_KEYS, in order. */
export interface BaseLabels {
  id: string;
  image: string;
  namespace: string;
  pod: string;
  container: string;
}

/** An IO device's counters with the name the `device` label carries. */
export type NamedIoDevice = IoDeviceStats & { name: string };

/**
 * One metric. Its timestamp stays 0: the API's word for "gathered live", so kubelet stamps it
 * with the scrape's time.
 */
export function metric(spec: MetricSpec, base: BaseLabels, value: number, extra: readonly string[] = []): wire.Metric {
  if (extra.length !== spec.labels.length) throw new Error(`${spec.name} takes ${spec.labels.length} extra labels, got ${extra.length}`);
  return {
    name: spec.name,
    metric_type: spec.kind,
    label_values: [base.id, base.image, base.namespace, base.pod, base.container, ...extra],
    value: { value: asUint64(value) },
  };
}

/** uint64 on the wire: whole and never negative. */
function asUint64(value: number): number {
  return Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

const seconds = (ns: number): number => Math.floor(ns / 1e9);

/** Push a metric only for a value the kernel reported. */
function optional(out: wire.Metric[], spec: MetricSpec, base: BaseLabels, value: number | undefined): void {
  if (value !== undefined) out.push(metric(spec, base, value));
}

/**
 * CPU time. The CFS series exist only for a container with a CPU quota, as in cAdvisor: without
 * one nothing is ever throttled and the counters say nothing.
 */
export function cpuMetrics(base: BaseLabels, cpu: CpuStats, hasQuota: boolean): wire.Metric[] {
  // cpu="total": kubelet's cAdvisor never exposed per-CPU series.
  const out = [metric(CPU.usage, base, seconds(cpu.usageNs), ['total'])];
  optional(out, CPU.user, base, cpu.userNs === undefined ? undefined : seconds(cpu.userNs));
  optional(out, CPU.system, base, cpu.systemNs === undefined ? undefined : seconds(cpu.systemNs));
  if (!hasQuota) return out;
  optional(out, CPU.periods, base, cpu.periods);
  optional(out, CPU.throttledPeriods, base, cpu.throttledPeriods);
  optional(out, CPU.throttledSeconds, base, cpu.throttledNs === undefined ? undefined : seconds(cpu.throttledNs));
  return out;
}

export function memoryMetrics(base: BaseLabels, memory: MemoryStats): wire.Metric[] {
  const out = [
    metric(MEMORY.usage, base, memory.usageBytes),
    metric(MEMORY.workingSet, base, memory.workingSetBytes),
    metric(MEMORY.rss, base, memory.rssBytes),
    metric(MEMORY.cache, base, memory.cacheBytes),
    metric(MEMORY.mappedFile, base, memory.mappedFileBytes),
    metric(MEMORY.failures, base, memory.pageFaults, ['pgfault', 'container']),
    metric(MEMORY.failures, base, memory.majorPageFaults, ['pgmajfault', 'container']),
    metric(MEMORY.failures, base, memory.hierarchicalPageFaults, ['pgfault', 'hierarchy']),
    metric(MEMORY.failures, base, memory.hierarchicalMajorPageFaults, ['pgmajfault', 'hierarchy']),
  ];
  optional(out, MEMORY.maxUsage, base, memory.maxUsageBytes);
  optional(out, MEMORY.swap, base, memory.swapBytes);
  optional(out, MEMORY.kernel, base, memory.kernelBytes);
  optional(out, MEMORY.failcnt, base, memory.failcnt);
  optional(out, MEMORY.oomEvents, base, memory.oomKills);
  return out;
}

export function processMetrics(base: BaseLabels, pids: PidStats, files: OpenFiles): wire.Metric[] {
  return [
    metric(PROCESSES.processes, base, pids.pids.length),
    metric(PROCESSES.threads, base, pids.threads),
    // cAdvisor's convention: 0 means no limit.
    metric(PROCESSES.threadsMax, base, pids.threadsMax ?? 0),
    metric(PROCESSES.sockets, base, files.sockets),
    metric(PROCESSES.fileDescriptors, base, files.fileDescriptors),
  ];
}

/** "waiting" is PSI's `some` (a task stalled), "stalled" its `full` (all of them). */
export function pressureMetrics(base: BaseLabels, psi: PsiSet): wire.Metric[] {
  const pairs: Array<[Psi | undefined, MetricSpec, MetricSpec]> = [
    [psi.cpu, PRESSURE.cpuWaiting, PRESSURE.cpuStalled],
    [psi.memory, PRESSURE.memoryWaiting, PRESSURE.memoryStalled],
    [psi.io, PRESSURE.ioWaiting, PRESSURE.ioStalled],
  ];
  const us = (micros: number): number => Math.floor(micros / 1e6);
  return pairs.flatMap(([resource, waiting, stalled]) => {
    if (!resource) return [];
    const out = [metric(waiting, base, us(resource.some.totalUs))];
    if (resource.full) out.push(metric(stalled, base, us(resource.full.totalUs)));
    return out;
  });
}

export function ioMetrics(base: BaseLabels, devices: readonly NamedIoDevice[]): wire.Metric[] {
  return devices.flatMap((d) => [
    metric(FILESYSTEM.readBytes, base, d.readBytes, [d.name]),
    metric(FILESYSTEM.writeBytes, base, d.writeBytes, [d.name]),
    metric(FILESYSTEM.reads, base, d.reads, [d.name]),
    metric(FILESYSTEM.writes, base, d.writes, [d.name]),
    metric(FILESYSTEM.blkioDeviceUsage, base, d.readBytes, [d.name, String(d.major), String(d.minor), 'Read']),
    metric(FILESYSTEM.blkioDeviceUsage, base, d.writeBytes, [d.name, String(d.major), String(d.minor), 'Write']),
  ]);
}

/** The writable layer; the limit and inode gauges are the filesystem's, where statfs answered. */
export function filesystemMetrics(base: BaseLabels, device: string, usage: DiskUsage, capacity: FilesystemCapacity | undefined): wire.Metric[] {
  const out = [metric(FILESYSTEM.usage, base, usage.bytes, [device])];
  if (capacity) {
    out.push(
      metric(FILESYSTEM.limit, base, capacity.capacityBytes, [device]),
      metric(FILESYSTEM.inodesTotal, base, capacity.inodesTotal, [device]),
      metric(FILESYSTEM.inodesFree, base, capacity.inodesFree, [device]),
    );
  }
  return out;
}

export function networkMetrics(base: BaseLabels, interfaces: readonly InterfaceCounters[]): wire.Metric[] {
  // NETWORK's keys are the counters' names, in the order the metrics are listed.
  const counters = Object.keys(NETWORK) as (keyof typeof NETWORK)[];
  return interfaces.flatMap((i) => counters.map((key) => metric(NETWORK[key], base, i[key], [i.name])));
}
