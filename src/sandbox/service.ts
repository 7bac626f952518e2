import type { Logger } from 'pino';
import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import type { ContainerEventType } from '../container/events.js';
import { FailedPreconditionError } from '../errors.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { NameRegistry } from '../persistence/names.js';
import { RecordStore, type SetAsideRecord } from '../persistence/records.js';
import { newId } from '../util/ids.js';
import { nowNanos } from '../util/time.js';
import { ParkedCreations } from '../util/parking.js';
import { checkResources } from '../validation/linux.js';
import type { PodMembers, SandboxParts, SandboxServiceDeps } from './deps.js';
import { linuxSandboxHost } from './host.js';
import { sandboxRecordSchema } from './record-schema.js';
import { checkFeatures, pauseProfiles, runPodSandbox, type RunRequest } from './run.js';
import { SANDBOX_RECORD_VERSION, criStateOf, type Sandbox, type SandboxRecord } from './sandbox.js';
import { listItemOf, statusOf, verboseInfoOf } from './status.js';
import { SandboxStore, type SandboxListFilter } from './store.js';
import { removePod, stopPod } from './teardown.js';
import { sandboxNameOf, validateSandboxConfig } from './validate.js';

export type { PodMembers, SandboxServiceDeps } from './deps.js';
export type { SandboxListFilter } from './store.js';
export { POD_IFNAME } from './network.js';
export { handlerNameOf, podSelinuxOf } from './sandbox.js';
export { statusOf } from './status.js';

/**
 * How long a pod whose RunPodSandbox client gave up waits for the retry before it is removed:
 * the kubelet retries at once, and gives a call 4 minutes.
 */
const UNCLAIMED_TTL_MS = 5 * 60_000;

/**
 * Pod sandboxes: RunPodSandbox as undoable steps (run.ts), the idempotent teardown that Stop,
 * Remove and a failed Run share (teardown.ts), status (status.ts), and recovery. The
 * sandboxes live in a store of the service's own; other modules read them through `get`,
 * `find` and `listSandboxes`, which give read-only views.
 */
export class SandboxService {
  private readonly parts: SandboxParts;
  private readonly store: SandboxStore;
  private readonly names = new NameRegistry('sandbox');
  /** One operation at a time per sandbox: a Stop racing a Remove must not interleave steps. */
  private readonly locks = new KeyedMutex();
  private members: PodMembers = { stopAllIn: async () => undefined, removeAllIn: async () => undefined, statusesIn: () => [] };
  private readonly parked = new ParkedCreations('RunPodSandbox', UNCLAIMED_TTL_MS, (id, log) => this.remove(id, log));

  constructor(private readonly deps: SandboxServiceDeps) {
    const records = new RecordStore(deps.layout.sandboxRecords, 'sandbox.json', SANDBOX_RECORD_VERSION, sandboxRecordSchema, 'sandbox');
    this.store = new SandboxStore(records);
    this.parts = { deps: { ...deps, host: deps.host ?? linuxSandboxHost }, store: this.store, names: this.names };
    deps.runtime.onExit((id, exit) => {
      const sandbox = this.store.find(id);
      if (sandbox?.record.id !== id || sandbox.pauseExit) return;
      this.store.observe(id, (s) => void (s.pauseExit = exit));
      deps.log.info({ podSandboxId: id, exitCode: exit.exitCode }, 'pause container exited');
      this.emitStopped(sandbox);
    });
  }

  /**
   * Rebuild the in-memory view from the records on disk. Assumptions: a record is written
   * before every side effect it describes, so anything made for a sandbox is named by its
   * record; a sandbox whose pause container is gone (reboot, kill) is NOTREADY and is cleaned
   * up by the kubelet's own Stop/Remove, which tolerate whatever is missing.
   */
  async recover(): Promise<void> {
    const sandboxes = await this.store.load(this.deps.log);
    await Promise.all(sandboxes.map(({ record }) => this.recoverOne(record)));
    this.deps.log.info({ sandboxes: sandboxes.length }, 'sandboxes recovered');
  }

  private async recoverOne(record: SandboxRecord): Promise<void> {
    this.names.reserve(record.name, record.id);
    this.deps.lsm.selinux.hold(record.selinuxLevel);
    if (record.phase !== 'ready') return;
    const log = this.deps.log.child({ podSandboxId: record.id });
    const gone = { exitCode: 255, exitedAt: new Date(), oomKilled: false };
    try {
      const state = await this.deps.runtime.state(record.id);
      if (!state || state.status === 'stopped') {
        const exit = (await this.deps.runtime.exitOf(record.id)) ?? gone;
        this.store.observe(record.id, (s) => void (s.pauseExit = exit));
        log.warn('pause container is gone; sandbox is NOTREADY');
      }
    } catch (err) {
      log.error({ err }, 'cannot read pause container state; sandbox is NOTREADY');
      this.store.observe(record.id, (s) => void (s.pauseExit = gone));
    }
  }

  /** The sandbox whose id is, or uniquely starts with, `idOrPrefix`; NotFound otherwise. */
  get(idOrPrefix: string): Readonly<Sandbox> {
    return this.store.get(idOrPrefix);
  }

  /** Like get, but undefined when nothing matches. */
  find(idOrPrefix: string): Readonly<Sandbox> | undefined {
    return this.store.find(idOrPrefix);
  }

  /** The sandboxes matching every field of the filter (all of them without one). */
  listSandboxes(filter: SandboxListFilter = {}): Readonly<Sandbox>[] {
    return this.store.list(filter);
  }

  /**
   * A pod's own lifecycle event, as containerd and CRI-O send them for evented PLEG: the
   * sandbox id in container_id, with the pod's status and its containers'.
   */
  private emit(sandbox: Readonly<Sandbox>, type: ContainerEventType): void {
    this.deps.events.emit({
      container_id: sandbox.record.id,
      container_event_type: type,
      created_at: nowNanos(),
      pod_sandbox_status: statusOf(sandbox),
      containers_statuses: this.members.statusesIn(sandbox.record.id),
    });
  }

  /** The pod's STOPPED event, once, whether the pause exited or Stop ended it. */
  private emitStopped(sandbox: Readonly<Sandbox>): void {
    if (sandbox.stoppedEventSent) return;
    this.store.observe(sandbox.record.id, (s) => void (s.stoppedEventSent = true));
    this.emit(sandbox, 'CONTAINER_STOPPED_EVENT');
  }

  /** Records found invalid at recovery and moved aside, for the operator. */
  setAsideRecords(): readonly SetAsideRecord[] {
    return this.store.setAside;
  }

  /** Let Stop and Remove reach the pod's containers (set once the container service exists). */
  setMembers(members: PodMembers): void {
    this.members = members;
  }

  /** The directory of the sandbox's record and shared files (hosts, resolv.conf, hostname). */
  dirOf(id: string): string {
    return this.store.dirOf(id);
  }

  /**
   * RunPodSandbox. Everything the request can be refused for is checked before anything is
   * made. A call whose client gives up (the kubelet's deadline) is not cut short: the pod is
   * finished and handed to the kubelet's retry with the same metadata.
   */
  async run(config: cri.PodSandboxConfig | null, runtimeHandler: string, baseLog: Logger, signal?: AbortSignal): Promise<string> {
    validateSandboxConfig(config);
    const handler = this.deps.handlers.select(runtimeHandler);
    checkFeatures(config, handler, this.deps.config.cgroupDriver);
    const profiles = await pauseProfiles(config, this.deps);
    const start = (): Promise<string> => {
      const request: RunRequest = { id: newId(), config, handler: { asked: runtimeHandler, name: handler.name }, profiles };
      return this.locks.run(request.id, async () => {
        const sandbox = await runPodSandbox(this.parts, request, baseLog.child({ podSandboxId: request.id }));
        this.emit(sandbox, 'CONTAINER_CREATED_EVENT');
        this.emit(sandbox, 'CONTAINER_STARTED_EVENT');
        return request.id;
      });
    };
    return this.parked.create(sandboxNameOf(config.metadata!), start, baseLog, signal);
  }

  /**
   * StopPodSandbox: the pod's containers, then its own teardown (teardown.ts). An unknown id
   * is success: the API makes Stop idempotent, and a sandbox that is gone is as stopped as it gets.
   */
  async stop(idOrPrefix: string, log: Logger): Promise<void> {
    await this.underLock(idOrPrefix, log, 'sandbox already removed; nothing to stop', (sandbox) => this.stopLocked(sandbox, log));
  }

  private async stopLocked(sandbox: Readonly<Sandbox>, log: Logger): Promise<void> {
    await this.members.stopAllIn(sandbox.record.id, log);
    if (await stopPod(this.parts, sandbox, log)) this.emitStopped(sandbox);
  }

  /** Stop (if needed) and delete everything the sandbox owns; an unknown id is success. */
  async remove(idOrPrefix: string, log: Logger): Promise<void> {
    await this.underLock(idOrPrefix, log, 'sandbox already removed', async (sandbox) => {
      await this.stopLocked(sandbox, log);
      await this.members.removeAllIn(sandbox.record.id, log);
      await removePod(this.parts, sandbox.record);
      log.info('sandbox removed');
      this.emit(sandbox, 'CONTAINER_DELETED_EVENT');
    });
  }

  /**
   * Run `fn` on the sandbox under its lock. One that is gone, before or while waiting for the
   * lock (removed by a call that held it before us), is success: `gone` is logged.
   */
  private async underLock(idOrPrefix: string, log: Logger, gone: string, fn: (sandbox: Readonly<Sandbox>) => Promise<void>): Promise<void> {
    const id = this.store.find(idOrPrefix)?.record.id;
    if (!id) {
      log.info(gone);
      return;
    }
    await this.locks.run(id, async () => {
      const sandbox = this.store.find(id);
      if (sandbox) await fn(sandbox);
    });
  }

  criStatus(sandbox: Readonly<Sandbox>): wire.PodSandboxStatus {
    return statusOf(sandbox);
  }

  /**
   * UpdatePodSandboxResources (in-place resize): the pod's new limits, its containers' sum
   * plus its overhead, written to its own cgroup, the kubelet's cgroup parent, and recorded.
   * A pod under the daemon's shared default parent has no cgroup of its own to limit: the
   * values are recorded only (limiting the shared parent would limit every pod).
   */
  async updateResources(idOrPrefix: string, resources: cri.LinuxContainerResources | null, overhead: cri.LinuxContainerResources | null, log: Logger): Promise<void> {
    checkResources('resources', resources);
    checkResources('overhead', overhead);
    const id = this.store.get(idOrPrefix).record.id;
    await this.locks.run(id, async () => {
      const sandbox = this.store.get(id);
      if (criStateOf(sandbox) !== 'SANDBOX_READY') throw new FailedPreconditionError(`sandbox ${id} is not ready`);
      const ownParent = sandbox.record.config.linux?.cgroup_parent;
      await this.store.update(id, (record) => void (record.resources = { resources, overhead }));
      if (!ownParent) {
        log.info('pod has no cgroup of its own (the default parent); its new resources are recorded only');
        return;
      }
      const cgroup = await this.parts.deps.host.limitPod(this.deps.config.cgroupDriver, ownParent, resources, overhead);
      log.info({ cgroup }, 'pod resources updated');
    });
  }

  async status(idOrPrefix: string, verbose: boolean): Promise<wire.PodSandboxStatusResponse> {
    const sandbox = this.store.get(idOrPrefix);
    const response: wire.PodSandboxStatusResponse = { status: statusOf(sandbox), timestamp: nowNanos() };
    if (verbose) response.info = { info: JSON.stringify(await verboseInfoOf(sandbox, this.deps.runtime)) };
    return response;
  }

  /** ListPodSandbox. */
  list(filter: cri.PodSandboxFilter | null): wire.PodSandbox[] {
    const sandboxes = this.store.list({
      id: filter?.id || undefined,
      state: filter?.state?.state,
      labels: filter?.label_selector ?? undefined,
    });
    return sandboxes.map(listItemOf);
  }
}
