import type * as cri from '../api/cri.js';
import { cpuPercent, humanSize, shortId, type CpuSample } from './output.js';

/**
 * The rows of `tscri stats` and `tscri statsp`, made from two samples taken a moment apart:
 * CPU % needs the CPU time used between them. Laid out as crictl lays them out: sorted by id,
 * sizes with four significant digits, and nothing for what the first sample did not have.
 */

export const CONTAINER_STATS_HEADER = ['CONTAINER', 'NAME', 'CPU %', 'MEM', 'DISK', 'INODES'];
export const POD_STATS_HEADER = ['POD', 'POD ID', 'CPU %', 'MEM'];

/** `all`: containers that use nothing (not running) too. */
export function containerStatsRows(before: cri.ContainerStats[], after: cri.ContainerStats[], all: boolean): string[][] {
  const earlier = new Map(before.map((s) => [s.attributes?.id ?? '', s]));
  return byId(after, (s) => s.attributes?.id ?? '').flatMap((s) => {
    const id = s.attributes?.id ?? '';
    const previous = earlier.get(id);
    const memory = Number(s.memory?.working_set_bytes?.value ?? 0);
    if (!previous || (!all && isIdle(s.cpu, memory))) return [];
    return [[
      shortId(id, false),
      s.attributes?.metadata?.name ?? '',
      cpuPercent(cpuSample(previous.cpu), cpuSample(s.cpu)),
      humanSize(memory, 4),
      humanSize(Number(s.writable_layer?.used_bytes?.value ?? 0), 4),
      String(s.writable_layer?.inodes_used?.value ?? 0),
    ]];
  });
}

export function podStatsRows(before: cri.PodSandboxStats[], after: cri.PodSandboxStats[]): string[][] {
  const earlier = new Map(before.map((s) => [s.attributes?.id ?? '', s]));
  return byId(after, (s) => s.attributes?.id ?? '').flatMap((s) => {
    const id = s.attributes?.id ?? '';
    const previous = earlier.get(id);
    const memory = Number(s.linux?.memory?.working_set_bytes?.value ?? 0);
    // A pod with no numbers at all (no cgroup read yet) says nothing worth a row.
    if (!previous || isIdle(s.linux?.cpu, memory)) return [];
    return [[
      s.attributes?.metadata?.name ?? '',
      shortId(id, false),
      cpuPercent(cpuSample(previous.linux?.cpu), cpuSample(s.linux?.cpu)),
      humanSize(memory, 4),
    ]];
  });
}

function isIdle(cpu: cri.CpuUsage | null | undefined, memoryBytes: number): boolean {
  return BigInt(cpu?.usage_core_nano_seconds?.value ?? 0) === 0n && memoryBytes === 0;
}

function cpuSample(cpu: cri.CpuUsage | null | undefined): CpuSample | undefined {
  if (!cpu) return undefined;
  return { usageCoreNanoSeconds: cpu.usage_core_nano_seconds?.value ?? 0, timestamp: cpu.timestamp || 0 };
}

function byId<T>(items: T[], idOf: (item: T) => string): T[] {
  return [...items].sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0));
}
