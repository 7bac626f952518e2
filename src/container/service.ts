import type { Logger } from 'pino';
import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import { FailedPreconditionError, InternalError, DeadlineExceededError } from '../errors.js';
import { RecordStore, type SetAsideRecord } from '../persistence/records.js';
import { NameRegistry } from '../persistence/names.js';
import { newId } from '../util/ids.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { nowNanos, pollUntil } from '../util/time.js';
import { fileExists } from '../util/files.js';
import { ParkedCreations } from '../util/parking.js';
import { quote } from '../validation/fields.js';
import { checkResources } from '../validation/linux.js';
import { CONTAINER_RECORD_VERSION, containerNameOf, criStateOf, layersHeldBy, type ContainerRecord } from './container.js';
import { createContainer, planCreate } from './create.js';
import type { ContainerParts, ContainerServiceDeps } from './deps.js';
import type { ContainerEventType } from './events.js';
import { hostMounts } from './host.js';
import { ContainerLifecycle } from './lifecycle.js';
import { containerRecordSchema } from './record-schema.js';
import { ociResources } from './resources.js';
import { containerCgroupsPath } from './spec.js';
import { criStatus, factsOf, listEntry, verboseInfo, type ContainerFacts } from './status.js';
import { ContainerStore } from './store.js';
import { validateExecCommand } from './validate.js';

export type { ContainerServiceDeps } from './deps.js';
export type { ContainerFacts } from './status.js';

/** kubelet caps ExecSync output at 16 MiB per stream; so do we. */
const EXEC_OUTPUT_LIMIT = 16 * 1024 * 1024;
/**
 * What stdout and stderr together may carry in the reply: the 16 MiB gRPC message limit of
 * both ends (kubelet's and ours), less room for the rest of the message.
 */
const EXEC_REPLY_BUDGET = 16 * 1024 * 1024 - 64 * 1024;
/** How long a container whose CreateContainer client gave up waits for the retry before it is removed. */
const UNCLAIMED_TTL_MS = 5 * 60_000;
/** How long ReopenContainerLog waits for conmon to create the new log file. */
const LOG_REOPEN_TIMEOUT_MS = 5_000;

/** Which containers stats are read for: an id or prefix, a pod id or prefix, labels. */
export interface ContainerFactsFilter {
  id?: string;
  podSandboxId?: string;
  labels?: Readonly<Record<string, string>>;
}

/** What container stats and metrics read of containers (see ContainerFacts). */
export interface ContainerFactsSource {
  facts(idOrPrefix: string): ContainerFacts;
  listFacts(filter?: ContainerFactsFilter): ContainerFacts[];
}

/**
 * Containers in pods: CreateContainer as undoable steps (create.ts), the lifecycle around it
 * (lifecycle.ts), and status for kubelet (status.ts). Records live in the service's store;
 * other modules read them through its methods and never change them.
 */
export class ContainerService implements ContainerFactsSource {
  private readonly store: ContainerStore;
  private readonly names = new NameRegistry('container');
  private readonly locks = new KeyedMutex();
  private readonly parts: ContainerParts;
  private readonly lifecycle: ContainerLifecycle;
  private readonly parked = new ParkedCreations('CreateContainer', UNCLAIMED_TTL_MS, (id, log) => this.remove(id, log));

  constructor(private readonly deps: ContainerServiceDeps) {
    const records = new RecordStore(deps.layout.containerRecords, 'container.json', CONTAINER_RECORD_VERSION, containerRecordSchema, 'container', (id, retired) =>
      this.lifecycle.finishRemoval(id, retired),
    );
    this.store = new ContainerStore(records);
    this.parts = {
      deps: { ...deps, mounts: deps.mounts ?? hostMounts },
      store: this.store,
      names: this.names,
      locks: this.locks,
      emit: (record, type) => this.emit(record, type),
    };
    this.lifecycle = new ContainerLifecycle(this.parts);
    // Under the container's lock: an exit that comes while StartContainer is still recording
    // the start is recorded after it, so STARTED always goes out before STOPPED.
    deps.runtime.onExit((id, exit) => void this.locks.run(id, () => this.lifecycle.recordExit(id, exit)));
  }

  /**
   * Rebuild from records. A container whose exit conmon recorded while the daemon was down
   * gets it now; one with neither a process nor an exit file (a reboot) is marked exited
   * with reason Unknown.
   */
  async recover(): Promise<void> {
    const records = await this.store.load(this.deps.log);
    for (const record of records) {
      this.names.reserve(record.name, record.id);
      this.deps.images.retainLayers(record.id, layersHeldBy(record));
    }
    await Promise.all(records.map((record) => this.reconcile(record)));
    // Exec sessions do not survive their daemon: their clients' connections died with it.
    await this.deps.runtime.endOrphanedExecSessions();
    this.deps.log.info({ containers: records.length }, 'containers recovered');
  }

  private async reconcile(record: Readonly<ContainerRecord>): Promise<void> {
    if (record.exit || record.phase === 'creating') return;
    const exit = await this.deps.runtime.exitOf(record.id);
    if (exit) return this.lifecycle.recordExit(record.id, exit);
    const state = await this.deps.runtime.state(record.id).catch(() => undefined);
    if (!state || state.status === 'stopped') {
      await this.lifecycle.recordExit(record.id, { exitCode: 255, exitedAt: new Date(), oomKilled: false }, 'Unknown');
    }
  }

  /** The container whose id is, or uniquely starts with, `idOrPrefix`; NotFound otherwise. */
  get(idOrPrefix: string): Readonly<ContainerRecord> {
    return this.store.get(idOrPrefix);
  }

  /** Like get, but undefined when nothing matches. */
  find(idOrPrefix: string): Readonly<ContainerRecord> | undefined {
    return this.store.find(idOrPrefix);
  }

  /** Records found invalid at recovery and moved aside, for the operator. */
  setAsideRecords(): readonly SetAsideRecord[] {
    return this.store.setAside;
  }

  /**
   * CreateContainer. A call whose client gives up is not cut short: the container is
   * finished and handed to the kubelet's retry with the same metadata.
   */
  async create(request: cri.CreateContainerRequest, baseLog: Logger, signal?: AbortSignal): Promise<string> {
    const plan = await planCreate(this.parts, request);
    const podId = plan.sandbox.record.id;
    const start = (): Promise<string> => {
      const id = newId();
      const log = baseLog.child({ containerId: id, podSandboxId: podId });
      return this.locks.run(id, () => createContainer(this.parts, plan, id, log));
    };
    const key = containerNameOf(plan.config.metadata!, plan.sandbox.record.config.metadata!);
    return this.parked.create(key, start, baseLog, signal);
  }

  start(idOrPrefix: string, log: Logger): Promise<void> {
    return this.lifecycle.start(idOrPrefix, log);
  }

  /** Stop signal, grace, SIGKILL (see ContainerLifecycle.stop); an unknown id is success. */
  stop(idOrPrefix: string, graceMs: number, log: Logger): Promise<void> {
    return this.lifecycle.stop(idOrPrefix, graceMs, log);
  }

  /** Remove a container in any state; an unknown id is success. */
  remove(idOrPrefix: string, log: Logger): Promise<void> {
    return this.lifecycle.remove(idOrPrefix, log);
  }

  /** Wait for the cleanups of removed containers (of one sandbox, or all) to finish. */
  removalsFinished(sandboxId?: string): Promise<void> {
    return this.lifecycle.removalsFinished(sandboxId);
  }

  /** Stop every container of a sandbox (StopPodSandbox). */
  stopAllIn(sandboxId: string, log: Logger): Promise<void> {
    return this.lifecycle.stopAllIn(sandboxId, log);
  }

  /** Remove every container of a sandbox (RemovePodSandbox). */
  removeAllIn(sandboxId: string, log: Logger): Promise<void> {
    return this.lifecycle.removeAllIn(sandboxId, log);
  }

  /** The status of every container of a sandbox, for the pod's own events. */
  statusesIn(sandboxId: string): wire.ContainerStatus[] {
    return this.store.list({ sandboxId }).map(criStatus);
  }

  async status(idOrPrefix: string, verbose: boolean): Promise<wire.ContainerStatusResponse> {
    const record = this.get(idOrPrefix);
    const response: wire.ContainerStatusResponse = { status: criStatus(record) };
    if (verbose) response.info = verboseInfo(record, this.deps.layout.containerRootfs(record.id), await this.deps.runtime.specOf(record.id));
    return response;
  }

  list(filter: cri.ContainerFilter | null): wire.Container[] {
    const sandboxId = filter?.pod_sandbox_id ? this.podIdOf(filter.pod_sandbox_id) : undefined;
    if (sandboxId === null) return [];
    return this.store.list({ id: filter?.id, sandboxId, state: filter?.state?.state, labels: filter?.label_selector ?? {} }).map(listEntry);
  }

  facts(idOrPrefix: string): ContainerFacts {
    return this.factsOf(this.get(idOrPrefix));
  }

  listFacts(filter: ContainerFactsFilter = {}): ContainerFacts[] {
    const sandboxId = filter.podSandboxId ? this.podIdOf(filter.podSandboxId) : undefined;
    if (sandboxId === null) return [];
    return this.store.list({ id: filter.id, sandboxId, labels: filter.labels }).map((r) => this.factsOf(r));
  }

  /** The pod's full id; null when no pod has it (or a prefix of it). */
  private podIdOf(idOrPrefix: string): string | null {
    return this.deps.sandboxes.find(idOrPrefix)?.record.id ?? null;
  }

  private factsOf(record: Readonly<ContainerRecord>): ContainerFacts {
    const pod = this.deps.sandboxes.find(record.sandboxId);
    const cgroupsPath = pod ? containerCgroupsPath(this.deps.config.cgroupDriver, pod.record.cgroupParent, record.id) : undefined;
    return factsOf(record, cgroupsPath, this.deps.layout.containerUpper(record.id));
  }

  async updateResources(idOrPrefix: string, resources: cri.LinuxContainerResources | null, log: Logger): Promise<void> {
    checkResources('linux', resources);
    const { id } = this.get(idOrPrefix);
    if (!resources) return;
    await this.locks.run(id, async () => {
      if (criStateOf(this.get(id)) === 'CONTAINER_EXITED') throw new FailedPreconditionError(`container ${id} has exited`);
      await this.deps.runtime.update(id, ociResources(resources));
      // Fields left at zero are not changed (runc update leaves them alone), so the record
      // keeps their old values: an update of CPU alone must not report the memory limit as 0.
      await this.store.update(id, (r) => {
        r.resources = mergeResources(r.resources, resources);
      });
      log.info('container resources updated');
    });
  }

  async reopenLog(idOrPrefix: string): Promise<void> {
    const record = this.get(idOrPrefix);
    if (criStateOf(record) !== 'CONTAINER_RUNNING') throw new FailedPreconditionError(`container ${record.id} is not running`);
    await this.deps.runtime.reopenLog(record.id);
    // Log rotation renames the file, asks for a new one and reads it at once, so the reply
    // waits until conmon has made it.
    const reopened = !record.logPath || (await pollUntil(() => fileExists(record.logPath), LOG_REOPEN_TIMEOUT_MS));
    if (!reopened) throw new InternalError(`container ${record.id}: the monitor did not reopen ${record.logPath}`);
  }

  /** ExecSync: run a command to completion; a timeout kills it and is DeadlineExceeded. */
  async execSync(idOrPrefix: string, cmd: string[], timeoutMs: number): Promise<wire.ExecSyncResponse> {
    validateExecCommand('cmd', cmd);
    const record = this.get(idOrPrefix);
    if (criStateOf(record) !== 'CONTAINER_RUNNING') throw new FailedPreconditionError(`container ${record.id} is not running`);
    const outcome = await this.deps.runtime.exec(record.id, cmd, { maxOutputBytes: EXEC_OUTPUT_LIMIT, ...(timeoutMs > 0 ? { timeoutMs } : {}) });
    if (outcome.timedOut) throw new DeadlineExceededError(`command ${quote(cmd.join(' '))} timed out after ${timeoutMs / 1000}s`);
    const [stdout, stderr] = fitOutput(outcome.stdout, outcome.stderr, EXEC_REPLY_BUDGET);
    return { stdout, stderr, exit_code: outcome.exitCode };
  }

  private emit(record: Readonly<ContainerRecord>, type: ContainerEventType): void {
    const sandbox = this.deps.sandboxes.find(record.sandboxId);
    this.deps.events.emit({
      container_id: record.id,
      container_event_type: type,
      created_at: nowNanos(),
      pod_sandbox_status: sandbox ? this.deps.sandboxes.criStatus(sandbox) : null,
      containers_statuses: this.statusesIn(record.sandboxId),
    });
  }
}

/**
 * Both streams cut to fit `budget` together: each gets half, and what one leaves unused
 * goes to the other. The start of each stream is kept, as kubelet keeps it.
 */
export function fitOutput(stdout: Buffer, stderr: Buffer, budget: number): [Buffer, Buffer] {
  if (stdout.length + stderr.length <= budget) return [stdout, stderr];
  const half = Math.floor(budget / 2);
  const errRoom = Math.max(half, budget - stdout.length);
  const keptErr = stderr.subarray(0, Math.min(stderr.length, errRoom));
  return [stdout.subarray(0, budget - keptErr.length), keptErr];
}

/** `update` over `current`, where a zero, empty or absent field in `update` keeps the current value. */
export function mergeResources(current: cri.LinuxContainerResources | null, update: cri.LinuxContainerResources): cri.LinuxContainerResources {
  if (!current) return update;
  const merged: Record<string, unknown> = { ...current };
  for (const [key, value] of Object.entries(update)) {
    const unset = value === null || value === undefined || value === '' || value === '0' || value === 0 ||
      (Array.isArray(value) && value.length === 0) || (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0);
    if (!unset) merged[key] = value;
  }
  return merged as unknown as cri.LinuxContainerResources;
}
