/**
 * The part of a cgroup CRI stats carry (ContainerStats, PodSandboxStats), read as cheaply as the
 * kernel allows: kubelet asks for every container of the node at once, and a node runs hundreds.
 *
 * - Only the files the CRI fields come from: CPU usage, memory usage and memory.stat, swap, PSI,
 *   and for pods the process list. Throttling, block IO, kernel memory, failcnt and thread
 *   counts are metrics only (readCgroupStats in cgroups/stats.ts reads them all, some 20 files).
 *   The values are computed as readCgroupStats computes them; test/unit/cgroup-cri.test.ts
 *   holds the two readers to the same answers.
 * - Each file is opened once per cgroup and read again from offset 0 at every call: cgroupfs
 *   makes the text afresh for every read from the start, so a read is one pread instead of
 *   open, read and close (some 3 µs instead of 12 here). The descriptors are closed when the
 *   container exits or is removed, or at once if a read fails (the cgroup was removed); a file
 *   left open does not keep a cgroup from being removed. At most `maxOpenFiles` stay open (a
 *   quarter of the process's descriptor limit, 8192 at most); past that, files are opened for
 *   each read.
 * - The memory and swap limits change only through UpdateContainerResources, so they are read
 *   again only when the caller's `limitsVersion` (the record's resources object, replaced at
 *   each update) changes.
 * - Reads are synchronous, into one reused buffer. cgroupfs makes its text in memory, so a read
 *   never waits for a disk; fs.promises.readFile would cost five thread-pool round trips and a
 *   64 KiB buffer per file (kernfs reports a size of 0), 0.1 to 1 ms each once hundreds are in
 *   flight. Callers reading many cgroups yield between them (metrics/slices.ts).
 */
import { openSync, readFileSync } from 'node:fs';
import { closeQuietly, parseCount, readSmallFile, readWhole } from '../cgroups/files.js';
import type { CgroupDirs, V1Controller } from '../cgroups/paths.js';
import { NO_PSI, type Psi, type PsiLine, type PsiSet } from '../cgroups/psi.js';
import type { CpuStats, MemoryStats, PidStats } from '../cgroups/stats.js';

export type CriMemoryStats = Pick<
  MemoryStats,
  'usageBytes' | 'workingSetBytes' | 'rssBytes' | 'pageFaults' | 'majorPageFaults' | 'limitBytes' | 'swapBytes' | 'swapLimitBytes'
>;

/** What CRI stats need of a cgroup; readCgroupStats' CgroupStats has all of it too. */
export interface CriCgroupStats {
  cpu: Pick<CpuStats, 'usageNs'>;
  memory: CriMemoryStats;
  /** Read when asked for (a pod's process count), else undefined. */
  pids: Pick<PidStats, 'pids'> | undefined;
  psi: PsiSet;
}

export interface CriReadRequest {
  /** Read the process list (PodSandboxStats counts processes). */
  processes?: boolean;
  /** Read the pressure files (a pause container's PSI is not reported). */
  psi?: boolean;
  /**
   * Read the limits and swap, keeping the limits until `version` changes (compared by
   * identity). A pause container needs neither.
   */
  limits?: { version: unknown };
}

interface Limits {
  limitBytes: number | undefined;
  swapLimitBytes: number | undefined;
}

/** One cgroup's directories and the files of it held open, by controller (or 'unified') and name. */
interface Kept {
  dirs: CgroupDirs;
  files: Map<string, Map<string, number>>;
  limits: { version: unknown; limits: Limits } | undefined;
}

/** v1 reports "unlimited" as a page-aligned number near 2^63. */
const V1_UNLIMITED = 2 ** 62;
const MAX_OPEN_FILES = 8192;

export class CriCgroupReader {
  private readonly cgroups = new Map<string, Kept>();
  private open = 0;

  constructor(private readonly maxOpenFiles: number = defaultMaxOpenFiles()) {}

  /**
   * The CRI figures of the cgroup kept under `key` (a container or pod id), located by
   * `locate` the first time; undefined when it does not exist (any more) or cannot be located.
   */
  read(key: string, locate: () => CgroupDirs, request: CriReadRequest = {}): CriCgroupStats | undefined {
    const kept = this.kept(key, locate);
    const stats = kept && this.readKept(kept, request);
    if (!stats) this.forget(key);
    return stats;
  }

  /** Close what is kept for `key` (its container exited, or is gone). */
  forget(key: string): void {
    const kept = this.cgroups.get(key);
    if (!kept) return;
    for (const files of kept.files.values()) {
      for (const fd of files.values()) closeQuietly(fd);
      this.open -= files.size;
    }
    this.cgroups.delete(key);
  }

  /** Forget every key not in `keys` (containers and pods that no longer exist). */
  retain(keys: ReadonlySet<string>): void {
    for (const key of [...this.cgroups.keys()]) if (!keys.has(key)) this.forget(key);
  }

  /** Files held open, for tests. */
  get openFiles(): number {
    return this.open;
  }

  private kept(key: string, locate: () => CgroupDirs): Kept | undefined {
    const known = this.cgroups.get(key);
    if (known) return known;
    let dirs: CgroupDirs;
    try {
      dirs = locate();
    } catch {
      // A cgroupsPath runc could not have used (a malformed slice) names no cgroup.
      return undefined;
    }
    const kept: Kept = { dirs, files: new Map(), limits: undefined };
    this.cgroups.set(key, kept);
    return kept;
  }

  private readKept(kept: Kept, request: CriReadRequest): CriCgroupStats | undefined {
    const { dirs } = kept;
    const text = (controller: V1Controller, file: string): string | undefined => this.text(kept, controller, file);
    const v2 = dirs.version === 2;
    const usageUs = v2 ? keyedValue(text('cpu', 'cpu.stat') ?? '', 'usage_usec') : undefined;
    const usageNs = v2 ? (usageUs === undefined ? undefined : usageUs * 1000) : parseCount(text('cpuacct', 'cpuacct.usage')?.trim());
    if (usageNs === undefined) return undefined;
    const limits = request.limits ? limitsOf(kept, request.limits.version) : undefined;
    return {
      cpu: { usageNs },
      memory: v2 ? memoryV2(text, limits) : memoryV1(text, limits),
      pids: request.processes ? { pids: v2 ? pidsOf(text('pids', 'cgroup.procs')) : processesV1(text) } : undefined,
      psi: request.psi && dirs.unified !== undefined ? psiOf((name) => this.text(kept, 'unified', name)) : NO_PSI,
    };
  }

  /**
   * A file of the cgroup, read through the descriptor kept for it (opened now if need be); the
   * path is only made to open it.
   */
  private text(kept: Kept, controller: V1Controller | 'unified', name: string): string | undefined {
    let files = kept.files.get(controller);
    if (!files) kept.files.set(controller, (files = new Map()));
    let fd = files.get(name);
    if (fd === undefined) {
      const dir = controller === 'unified' ? kept.dirs.unified : kept.dirs.controller(controller);
      if (dir === undefined) return undefined;
      if (this.open >= this.maxOpenFiles) return readSmallFile(`${dir}/${name}`);
      try {
        fd = openSync(`${dir}/${name}`, 'r');
      } catch {
        return undefined;
      }
      files.set(name, fd);
      this.open += 1;
    }
    const text = readWhole(fd);
    if (text === undefined) {
      // The cgroup was removed (ENODEV): this descriptor is of no more use.
      closeQuietly(fd);
      files.delete(name);
      this.open -= 1;
    }
    return text;
  }
}

type ReadText = (controller: V1Controller, file: string) => string | undefined;

/** The limits, read again (without keeping the files open) only when their version changed. */
function limitsOf(kept: Kept, version: unknown): Limits {
  if (kept.limits && kept.limits.version === version) return kept.limits.limits;
  const text: ReadText = (controller, file) => readSmallFile(`${kept.dirs.controller(controller)}/${file}`);
  const limits = kept.dirs.version === 2 ? limitsV2(text) : limitsV1(text);
  kept.limits = { version, limits };
  return limits;
}

function memoryV1(text: ReadText, limits: Limits | undefined): CriMemoryStats {
  const usageBytes = parseCount(text('memory', 'memory.usage_in_bytes')?.trim()) ?? 0;
  const stat = text('memory', 'memory.stat') ?? '';
  // memsw counts memory plus swap; without swap accounting the file is missing.
  const memsw = limits ? parseCount(text('memory', 'memory.memsw.usage_in_bytes')?.trim()) : undefined;
  return {
    usageBytes,
    workingSetBytes: Math.max(0, usageBytes - (keyedValue(stat, 'total_inactive_file') ?? keyedValue(stat, 'inactive_file') ?? 0)),
    rssBytes: keyedValue(stat, 'total_rss') ?? keyedValue(stat, 'rss') ?? 0,
    pageFaults: keyedValue(stat, 'pgfault') ?? 0,
    majorPageFaults: keyedValue(stat, 'pgmajfault') ?? 0,
    limitBytes: limits?.limitBytes,
    swapBytes: memsw === undefined ? undefined : Math.max(0, memsw - usageBytes),
    swapLimitBytes: limits?.swapLimitBytes,
  };
}

function limitsV1(text: ReadText): Limits {
  const limited = (file: string): number | undefined => {
    const value = parseCount(text('memory', file)?.trim());
    return value !== undefined && value < V1_UNLIMITED ? value : undefined;
  };
  const limitBytes = limited('memory.limit_in_bytes');
  const memswLimit = limited('memory.memsw.limit_in_bytes');
  return { limitBytes, swapLimitBytes: memswLimit !== undefined && limitBytes !== undefined ? Math.max(0, memswLimit - limitBytes) : undefined };
}

function memoryV2(text: ReadText, limits: Limits | undefined): CriMemoryStats {
  const usageBytes = parseCount(text('memory', 'memory.current')?.trim()) ?? 0;
  const stat = text('memory', 'memory.stat') ?? '';
  return {
    usageBytes,
    workingSetBytes: Math.max(0, usageBytes - (keyedValue(stat, 'inactive_file') ?? 0)),
    rssBytes: keyedValue(stat, 'anon') ?? 0,
    pageFaults: keyedValue(stat, 'pgfault') ?? 0,
    majorPageFaults: keyedValue(stat, 'pgmajfault') ?? 0,
    limitBytes: limits?.limitBytes,
    swapBytes: limits ? parseCount(text('memory', 'memory.swap.current')?.trim()) : undefined,
    swapLimitBytes: limits?.swapLimitBytes,
  };
}

function limitsV2(text: ReadText): Limits {
  return {
    limitBytes: parseCount(text('memory', 'memory.max')?.trim()),
    swapLimitBytes: parseCount(text('memory', 'memory.swap.max')?.trim()),
  };
}

/** Without a pids hierarchy every v1 controller holds the same processes for a runc container. */
function processesV1(text: ReadText): number[] {
  const pids = pidsOf(text('pids', 'cgroup.procs'));
  return pids.length > 0 ? pids : pidsOf(text('memory', 'cgroup.procs'));
}

function pidsOf(text: string | undefined): number[] {
  const pids: number[] = [];
  for (const line of (text ?? '').split('\n')) {
    const pid = parseCount(line.trim());
    if (pid !== undefined && pid > 0) pids.push(pid);
  }
  return pids;
}

function psiOf(read: (name: string) => string | undefined): PsiSet {
  const psi = (name: string): Psi | undefined => {
    const text = read(name);
    return text === undefined ? undefined : parsePressure(text);
  };
  return { cpu: psi('cpu.pressure'), memory: psi('memory.pressure'), io: psi('io.pressure') };
}

/**
 * parsePsi's answer (cgroups/psi.ts) for a pressure file, without splitting it into words and
 * maps: three files per container at every call add up. test/unit/cgroup-cri.test.ts holds the
 * two to the same answers.
 */
export function parsePressure(text: string): Psi | undefined {
  const some = pressureLine(text, 'some');
  return some ? { some, full: pressureLine(text, 'full') } : undefined;
}

function pressureLine(text: string, kind: 'some' | 'full'): PsiLine | undefined {
  // The kernel writes `some …` first and `full …` second; parsePsi keeps the last of a kind.
  const at = text.lastIndexOf(`${kind} `);
  if (at < 0 || (at > 0 && text[at - 1] !== '\n')) return undefined;
  const end = text.indexOf('\n', at);
  const line = text.slice(at, end < 0 ? undefined : end);
  const avg10 = pressureField(line, 'avg10', AVERAGE);
  const avg60 = pressureField(line, 'avg60', AVERAGE);
  const avg300 = pressureField(line, 'avg300', AVERAGE);
  const total = pressureField(line, 'total', COUNT);
  if (avg10 === undefined || avg60 === undefined || avg300 === undefined || total === undefined) return undefined;
  return { avg10, avg60, avg300, totalUs: total };
}

const AVERAGE = /^\d+(\.\d+)?$/;
const COUNT = /^\d+$/;

function pressureField(line: string, name: string, form: RegExp): number | undefined {
  const at = line.indexOf(` ${name}=`);
  if (at < 0) return undefined;
  const start = at + name.length + 2;
  const end = line.indexOf(' ', start);
  const value = line.slice(start, end < 0 ? undefined : end);
  return form.test(value) ? Number(value) : undefined;
}

/** The three pressure files of a cgroup in a v2 hierarchy, read synchronously (see readPsi). */
export function readPsiSync(unifiedDir: string | undefined): PsiSet {
  return unifiedDir === undefined ? NO_PSI : psiOf((name) => readSmallFile(`${unifiedDir}/${name}`));
}

/**
 * The value of `key` in a "key value" per line file (memory.stat, cpu.stat), as parseKeyed
 * reads it, without splitting every line: memory.stat has some 40 and two or three are wanted.
 */
export function keyedValue(text: string, key: string): number | undefined {
  const prefix = `${key} `;
  let start = 0;
  if (!text.startsWith(prefix)) {
    const at = text.indexOf(`\n${prefix}`);
    if (at < 0) return undefined;
    start = at + 1;
  }
  start += prefix.length;
  const end = text.indexOf('\n', start);
  return parseCount(text.slice(start, end < 0 ? undefined : end).trim());
}

/** A quarter of the soft limit on open files (/proc/self/limits), at most MAX_OPEN_FILES. */
function defaultMaxOpenFiles(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    if (soft === 'unlimited') return MAX_OPEN_FILES;
    const limit = Number(soft);
    return Number.isInteger(limit) && limit > 0 ? Math.min(MAX_OPEN_FILES, Math.floor(limit / 4)) : 0;
  } catch {
    return 0;
  }
}
