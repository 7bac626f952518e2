/**
 * The CDI devices of this node: the spec directories read at start and again whenever they
 * change. Drivers write specs while the daemon runs (a DRA driver just before the kubelet
 * asks for its device), so each directory is watched; one that does not exist yet, or that
 * was removed or replaced, is looked for again on a timer. A CreateContainer that arrives
 * after a change was seen but before the debounced reload ran gets the reload first.
 */
import { watch, promises as fs, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { quote } from '../validation/fields.js';
import { resolveDeviceNode } from './host.js';
import { deviceTable, scanSpecDirs, type DeviceTable, type SpecProblem } from './scan.js';
import { emptyEdits, type CdiContainerEdits, type CdiInjection, type CdiInjector, type CdiRequest, type CdiSpec, type ResolvedEdits } from './types.js';

export interface CdiRegistryOptions {
  /** Lowest priority first; empty turns CDI off. */
  specDirs: readonly string[];
  log: Logger;
  /** Quiet time after a change before the directories are read again. */
  debounceMs?: number;
  /** How often directories not being watched are looked for. */
  recheckMs?: number;
}

const DEFAULT_DEBOUNCE_MS = 100;
const DEFAULT_RECHECK_MS = 5_000;

interface WatchedDir {
  watcher: FSWatcher;
  /** The directory's inode when watching began: a different one means it was replaced. */
  ino: number;
}

export class CdiRegistry implements CdiInjector {
  private table: DeviceTable = deviceTable([]);
  private readonly watched = new Map<string, WatchedDir>();
  private reloads: Promise<void> = Promise.resolve();
  private reloadTimer: NodeJS.Timeout | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  /** A change was seen that no reload has picked up yet. */
  private stale = false;
  private closed = false;
  private lastProblems = '';

  constructor(private readonly options: CdiRegistryOptions) {}

  get enabled(): boolean {
    return this.options.specDirs.length > 0;
  }

  /** Read the directories and start watching them. */
  async start(): Promise<void> {
    if (!this.enabled) {
      this.options.log.info('CDI is off ([cdi] spec_dirs is empty)');
      return;
    }
    await this.refresh();
    this.options.log.info({ specDirs: this.options.specDirs, devices: this.table.devices.size, problems: this.table.problems.length }, 'CDI spec dirs read');
    this.recheckTimer = setInterval(() => void this.recheck(), this.options.recheckMs ?? DEFAULT_RECHECK_MS);
    this.recheckTimer.unref();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.reloadTimer);
    clearInterval(this.recheckTimer);
    for (const { watcher } of this.watched.values()) watcher.close();
    this.watched.clear();
  }

  /** Read every directory now (after any reload already running). */
  refresh(): Promise<void> {
    this.reloads = this.reloads.then(() => this.reload());
    return this.reloads;
  }

  /** Qualified names of the usable devices, sorted. */
  deviceNames(): string[] {
    return [...this.table.devices.keys()].sort();
  }

  /** What is wrong with the spec files and directories as last read. */
  problems(): readonly SpecProblem[] {
    return this.table.problems;
  }

  async resolve(requests: readonly CdiRequest[]): Promise<CdiInjection> {
    if (requests.length === 0) return { devices: [], edits: emptyEdits() };
    if (!this.enabled) return this.resolveDisabled(requests);
    if (this.stale) await this.refresh();
    const table = this.table;
    const collected: DeviceEdits[] = [];
    const specsSeen = new Set<CdiSpec>();
    for (const request of requests) {
      const entry = table.devices.get(request.name);
      if (!entry) throw this.unresolvable(request, table);
      // Spec-level edits come once, before the first of that spec's devices.
      const specEdits = entry.from.spec.containerEdits;
      if (!specsSeen.has(entry.from.spec) && specEdits) collected.push({ device: request.name, edits: specEdits });
      specsSeen.add(entry.from.spec);
      collected.push({ device: request.name, edits: entry.device.containerEdits });
    }
    checkApplicable(collected);
    return { devices: requests.map((r) => r.name), edits: await resolveEdits(collected) };
  }

  /** CDI off: the kubelet's list cannot be honoured; old-style annotations are ignored, as elsewhere. */
  private resolveDisabled(requests: readonly CdiRequest[]): CdiInjection {
    const asked = requests.find((r) => r.source === 'config');
    if (asked) {
      throw new FailedPreconditionError(`${asked.field} asks for CDI device ${quote(asked.name)}, but CDI is off on this node`, {
        hint: 'set [cdi] spec_dirs in the tscri config (the default is ["/etc/cdi", "/var/run/cdi"])',
      });
    }
    this.options.log.debug({ devices: requests.map((r) => r.name) }, 'CDI is off; ignoring cdi.k8s.io annotations');
    return { devices: [], edits: emptyEdits() };
  }

  private unresolvable(request: CdiRequest, table: DeviceTable): InvalidArgumentError {
    const files = table.ambiguous.get(request.name);
    if (files) {
      return new InvalidArgumentError(`${request.field}: CDI device ${quote(request.name)} is ambiguous: conflicting definitions in ${files.join(' and ')}`, {
        hint: 'two spec files in one directory define the same device; remove one',
      });
    }
    return new InvalidArgumentError(`${request.field}: unknown CDI device ${quote(request.name)}`, {
      hint: `no valid spec file in ${this.options.specDirs.join(', ')} defines it`,
    });
  }

  private async reload(): Promise<void> {
    if (this.closed) return;
    this.stale = false;
    try {
      await this.syncWatches();
      const table = await scanSpecDirs(this.options.specDirs);
      if (this.closed) return;
      this.report(table);
      this.table = table;
    } catch (err) {
      this.options.log.warn({ err }, 'reading the CDI spec dirs failed; keeping the devices known before');
    }
  }

  /** Logged when something changed, not on every reload: a broken file would flood the log. */
  private report(table: DeviceTable): void {
    const problems = table.problems.map((p) => `${p.path}: ${p.reason}`).join('\n');
    if (problems !== this.lastProblems) {
      for (const p of table.problems) this.options.log.warn({ file: p.path, reason: p.reason }, 'CDI spec skipped');
      this.lastProblems = problems;
    }
    const before = [...this.table.devices.keys()].sort().join(',');
    const after = [...table.devices.keys()].sort();
    if (after.join(',') !== before) this.options.log.info({ specs: table.specCount, devices: after.slice(0, 50), count: after.length }, 'CDI devices loaded');
  }

  private scheduleReload(): void {
    if (this.closed) return;
    this.stale = true;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => void this.refresh(), this.options.debounceMs ?? DEFAULT_DEBOUNCE_MS);
    this.reloadTimer.unref();
  }

  /** In the reload chain, so two passes over the watches never interleave. */
  private recheck(): Promise<void> {
    this.reloads = this.reloads.then(async () => {
      if (!this.closed && (await this.syncWatches())) this.scheduleReload();
    });
    return this.reloads;
  }

  /**
   * Watch every directory that exists and is not watched yet; drop the watch of one that is
   * gone or was replaced. True when anything changed (so its files must be read again).
   */
  private async syncWatches(): Promise<boolean> {
    let changed = false;
    for (const dir of this.options.specDirs) {
      if (this.closed) return false;
      const stat = await fs.stat(dir).catch(() => undefined);
      const current = this.watched.get(dir);
      const present = stat?.isDirectory() ? stat.ino : undefined;
      if (current && current.ino === present) continue;
      if (current) {
        current.watcher.close();
        this.watched.delete(dir);
        changed = true;
      }
      if (present !== undefined && this.watchDir(dir, present)) changed = true;
    }
    return changed;
  }

  private watchDir(dir: string, ino: number): boolean {
    try {
      // Not persistent: watching must never be what keeps the process alive.
      const watcher = watch(dir, { persistent: false }, (_event, file) => {
        // The directory itself was removed or renamed: this watch is dead, even if a new
        // directory (perhaps with the same inode number) appears at the path.
        if (file === path.basename(dir)) this.dropWatch(dir, watcher);
        this.scheduleReload();
      });
      watcher.on('error', (err) => {
        this.options.log.warn({ dir, err }, 'watching a CDI spec dir failed; looking for it again later');
        this.dropWatch(dir, watcher);
        this.scheduleReload();
      });
      this.watched.set(dir, { watcher, ino });
      return true;
    } catch (err) {
      this.options.log.warn({ dir, err }, 'cannot watch a CDI spec dir; looking again later');
      return false;
    }
  }

  private dropWatch(dir: string, watcher: FSWatcher): void {
    watcher.close();
    if (this.watched.get(dir)?.watcher === watcher) this.watched.delete(dir);
  }
}

/**
 * netDevices and the newer Intel RDT fields need an OCI runtime newer than the runc tscri
 * drives (runtime-spec 1.0.2 has neither); passing them on would be silently ignored.
 */
function checkApplicable(collected: DeviceEdits[]): void {
  const unsupported = collected.find(({ edits: e }) => e.netDevices?.length || e.intelRdt?.schemata !== undefined || e.intelRdt?.enableMonitoring !== undefined);
  if (!unsupported) return;
  const what = unsupported.edits.netDevices?.length ? 'netDevices' : 'intelRdt.schemata or intelRdt.enableMonitoring';
  throw new FailedPreconditionError(`CDI device ${quote(unsupported.device)} needs ${what}, which tscri cannot apply with the OCI runtime it drives`);
}

/** Edits and the requested device they come with (spec-level ones with the first of the spec's). */
interface DeviceEdits {
  device: string;
  edits: CdiContainerEdits;
}

/** The edits concatenated in order, device nodes completed from the host. */
async function resolveEdits(collected: DeviceEdits[]): Promise<ResolvedEdits> {
  const edits = emptyEdits();
  for (const { device, edits: e } of collected) {
    edits.env.push(...(e.env ?? []));
    for (const node of e.deviceNodes ?? []) edits.deviceNodes.push(await resolveDeviceNode(node, device));
    edits.mounts.push(...(e.mounts ?? []));
    edits.hooks.push(...(e.hooks ?? []));
    edits.additionalGids.push(...(e.additionalGids ?? []));
    if (e.intelRdt) edits.intelRdt = e.intelRdt;
  }
  return edits;
}
