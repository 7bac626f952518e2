/**
 * A pod's interface counters, read from /proc/<pid>/net/dev of a process in its network
 * namespace (the pause process): the kernel answers that file for the reader's view of the
 * pid's netns, so no process is started to enter it.
 */
import path from 'node:path';
import { readSmallFile } from '../cgroups/files.js';

export interface InterfaceCounters {
  name: string;
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDropped: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDropped: number;
}

/** Interfaces cAdvisor leaves out of container network stats: loopback never leaves the pod. */
const IGNORED_INTERFACES = new Set(['lo']);

/** The file is made in memory by the kernel: read synchronously, as cgroup files (cgroup-cri.ts). */
export async function readPodInterfaces(pid: number, procRoot = '/proc'): Promise<InterfaceCounters[] | undefined> {
  const text = readSmallFile(path.join(procRoot, String(pid), 'net', 'dev'));
  return text === undefined ? undefined : parseNetDev(text).filter((i) => !IGNORED_INTERFACES.has(i.name));
}

/**
 * Two header lines, then `name: rx bytes packets errs drop fifo frame compressed multicast
 * tx bytes packets errs drop fifo colls carrier compressed`.
 */
export function parseNetDev(text: string): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (!name || f.length < 16 || f.some((n) => !Number.isFinite(n))) continue;
    out.push({
      name,
      rxBytes: f[0]!,
      rxPackets: f[1]!,
      rxErrors: f[2]!,
      rxDropped: f[3]!,
      txBytes: f[8]!,
      txPackets: f[9]!,
      txErrors: f[10]!,
      txDropped: f[11]!,
    });
  }
  return out;
}
