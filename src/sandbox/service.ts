import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import type { Config } from '../config/config.js';
import { FailedPreconditionError, InvalidArgumentError, logLevelOf, messageOf } from '../errors.js';
import { LEGACY_HANDLER, type RuntimeHandler, type RuntimeHandlers } from '../oci/handlers.js';
import type { ContainerEvents, ContainerEventType } from '../container/events.js';
import type { SandboxImage } from '../image/builtin-pause.js';
import { podCniArgs } from '../network/cni/args.js';
import type { Attachment, CapabilityArgs, NetworkManager, SetUpResult } from '../network/cni/types.js';
import { bringUpLoopback, createNetns, newNetnsName, removeNetns } from '../network/netns.js';
import type { ProcessConfinement, SecurityModules } from '../oci/lsm.js';
import type { PodSelinux } from '../oci/selinux.js';
import type { OciRuntime } from '../oci/runtime.js';
import { cgroupsPathFor } from '../oci/spec.js';
import { IdIndex } from '../store/id-index.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { NameRegistry } from '../store/names.js';
import { RecordStore, type SetAsideRecord } from '../store/records.js';
import { newId } from '../util/ids.js';
import { mountTmpfs, unmountAll } from '../util/mount.js';
import { allOrFirstError } from '../util/parallel.js';
import { nowNanos, stepTimer, timeStep } from '../util/time.js';
import { ParkedCreations } from '../util/parking.js';
import { UndoStack } from '../util/undo.js';
import { sandboxFilesIn, writeSandboxFiles } from './files.js';
import { applyLimits, podLimits } from '../cgroups/limits.js';
import { detectHierarchy, expandSlice, parentCgroupDirs } from '../cgroups/paths.js';
import { checkResources } from '../validation/linux.js';
import { resolveSeccomp } from '../oci/seccomp.js';
import type { OciSeccomp } from '../oci/spec-types.js';
import { pauseSeccompRequest, pauseSpec } from './pause-spec.js';
import { sandboxRecordSchema } from './record-schema.js';
import {
  SANDBOX_RECORD_VERSION,
  criStateOf,
  isHostNetwork,
  type Sandbox,
  type SandboxNetwork,
  type SandboxRecord,
} from './sandbox.js';
import { namespaceOptionsOf, sandboxNameOf, validateSandboxConfig } from './validate.js';
import { quote } from '../validation/fields.js';

/** The interface name of the pod's network inside its namespace. */
export const POD_IFNAME = 'eth0';

/**
 * How long a pod whose RunPodSandbox client gave up waits for the retry before it is removed:
 * the kubelet retries at once, and gives a call 4 minutes.
 */
const UNCLAIMED_TTL_MS = 5 * 60_000;
/** How long a stop waits for a SIGKILLed pause container to be reported gone. */
const PAUSE_EXIT_TIMEOUT_MS = 10_000;
/** The pod's shared memory, as Docker and containerd size it. */
const SHM_OPTIONS = 'nosuid,nodev,noexec,mode=1777,size=65536k';

/** The containers of pods, as StopPodSandbox, RemovePodSandbox and pod events need them. */
export interface PodMembers {
  stopAllIn(sandboxId: string, log: Logger): Promise<void>;
  removeAllIn(sandboxId: string, log: Logger): Promise<void>;
  statusesIn(sandboxId: string): wire.ContainerStatus[];
}

export interface SandboxServiceDeps {
  config: Config;
  /** Where the pod's own lifecycle events go, beside its containers' (evented PLEG). */
  events: ContainerEvents;
  /** What the OCI runtime and kernel can do (probed at start). */
  /** The OCI runtimes pods choose among (RunPodSandbox.runtime_handler). */
  handlers: RuntimeHandlers;
  network: NetworkManager;
  runtime: OciRuntime;
  /** The image pause containers run (built in, or pulled once the image service exists). */
  sandboxImage: () => Promise<SandboxImage>;
  /** The daemon's own oom_score_adj: the floor for every container's. */
  ownOomScoreAdj: number;
  /** AppArmor and SELinux as the host has them (detected at start). */
  lsm: SecurityModules;
  log: Logger;
}

/**
 * Pod sandboxes: RunPodSandbox as undoable steps (name, record, files, netns, shm, CNI ADD
 * and pause container in parallel, start), and the idempotent teardown that Stop, Remove
 * and a failed Run all share.
 */
export class SandboxService {
  private readonly store: RecordStore<SandboxRecord>;
  private readonly names = new NameRegistry('sandbox');
  readonly sandboxes = new IdIndex<Sandbox>('sandbox');
  /** One operation at a time per sandbox: a Stop racing a Remove must not interleave steps. */
  private readonly locks = new KeyedMutex();
  private members: PodMembers = { stopAllIn: async () => undefined, removeAllIn: async () => undefined, statusesIn: () => [] };
  private readonly parked = new ParkedCreations('RunPodSandbox', UNCLAIMED_TTL_MS, (id, log) => this.remove(id, log));

  constructor(private readonly deps: SandboxServiceDeps) {
    this.store = new RecordStore(path.join(deps.config.root, 'sandboxes'), 'sandbox.json', SANDBOX_RECORD_VERSION, sandboxRecordSchema, 'sandbox');
    deps.runtime.onExit((id, exit) => {
      const sandbox = this.sandboxes.find(id);
      if (sandbox?.record.id !== id || sandbox.pauseExit) return;
      sandbox.pauseExit = exit;
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
    const records = await this.store.loadAll(this.deps.log);
    await Promise.all(records.map((record) => this.recoverOne(record)));
    this.deps.log.info({ sandboxes: records.length }, 'sandboxes recovered');
  }

  private async recoverOne(record: SandboxRecord): Promise<void> {
    const sandbox: Sandbox = { record };
    this.sandboxes.set(record.id, sandbox);
    this.names.reserve(record.name, record.id);
    this.deps.lsm.selinux.hold(record.selinuxLevel);
    if (record.phase !== 'ready') return;
    const log = this.deps.log.child({ podSandboxId: record.id });
    try {
      const state = await this.deps.runtime.state(record.id);
      if (!state || state.status === 'stopped') {
        sandbox.pauseExit = (await this.deps.runtime.exitOf(record.id)) ?? {
          exitCode: 255,
          exitedAt: new Date(),
          oomKilled: false,
        };
        log.warn('pause container is gone; sandbox is NOTREADY');
      }
    } catch (err) {
      log.error({ err: messageOf(err) }, 'cannot read pause container state; sandbox is NOTREADY');
      sandbox.pauseExit = { exitCode: 255, exitedAt: new Date(), oomKilled: false };
    }
  }

  get(idOrPrefix: string): Sandbox {
    return this.sandboxes.get(idOrPrefix);
  }

  /**
   * A pod in a user namespace of its own cannot be made here without idmapped mounts: refuse
   * it clearly rather than run it in the host's user namespace, which is what it asked not to.
   */
  private checkFeatures(config: cri.PodSandboxConfig, handler: RuntimeHandler): void {
    checkCgroupParentForDriver(config.linux?.cgroup_parent ?? '', this.deps.config.cgroupDriver);
    const userns = config.linux?.security_context?.namespace_options?.userns_options;
    if (userns?.mode === 'POD' && !handler.features.userNamespaces) {
      throw new FailedPreconditionError(
        `user namespaces for pods (userns_options mode POD) are not available here (runtime handler ${handler.name}): ${handler.features.missing.userNamespaces}`,
      );
    }
  }

  /**
   * A pod's own lifecycle event, as containerd and CRI-O send them for evented PLEG: the
   * sandbox id in container_id, with the pod's status and its containers'.
   */
  private emit(sandbox: Sandbox, type: ContainerEventType): void {
    this.deps.events.emit({
      container_id: sandbox.record.id,
      container_event_type: type,
      created_at: nowNanos(),
      pod_sandbox_status: this.criStatus(sandbox),
      containers_statuses: this.members.statusesIn(sandbox.record.id),
    });
  }

  private emitStopped(sandbox: Sandbox): void {
    if (sandbox.stoppedEventSent) return;
    sandbox.stoppedEventSent = true;
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
   * RunPodSandbox. A call whose client gives up (the kubelet's deadline) is not cut short:
   * the pod is finished and handed to the kubelet's retry with the same metadata.
   */
  async run(config: cri.PodSandboxConfig | null, runtimeHandler: string, baseLog: Logger, signal?: AbortSignal): Promise<string> {
    validateSandboxConfig(config);
    const handler = this.deps.handlers.select(runtimeHandler);
    this.checkFeatures(config, handler);
    const profiles = await this.pauseProfiles(config);
    const start = (): Promise<string> => {
      const id = newId();
      return this.locks.run(id, () => this.runLocked(id, config, { asked: runtimeHandler, name: handler.name }, profiles, baseLog.child({ podSandboxId: id })));
    };
    return this.parked.create(sandboxNameOf(config.metadata!), start, baseLog, signal);
  }

  private async runLocked(id: string, config: cri.PodSandboxConfig, handler: HandlerChoice, profiles: PauseProfiles, log: Logger): Promise<string> {
    const record = this.newRecord(id, config, handler);
    const undo = new UndoStack();
    const timings = record.timings;
    const step = stepTimer(timings, 'RunPodSandbox');
    try {
      this.names.reserve(record.name, id);
      undo.push('release name', async () => this.names.release(record.name, id), { onlyIfClean: true });
      this.chooseSelinuxLevel(record, undo);

      const image = await step('sandboxImage', () => this.deps.sandboxImage());
      record.sandboxImage = image.ref;
      await step('record', () => this.store.save(record));
      this.sandboxes.set(id, { record });
      undo.push('remove record', () => this.forget(record), { onlyIfClean: true });

      // The netns, the pod's files and its shm do not depend on one another; the network needs
      // only the netns, the pause container all three. Each undo is registered before its
      // attempt: removal tolerates what is missing, and a half-made netns is undone too.
      const { netnsPath, shmPath } = record;
      if (netnsPath) undo.push('remove netns', () => removeNetns(netnsPath));
      if (shmPath) undo.push('unmount shm', () => unmountAll(shmPath));
      const netns = netnsPath ? step('netns', () => createNetns({ name: path.basename(netnsPath), path: netnsPath })) : Promise.resolve();
      const files = step('files', async () => {
        record.hostname = await writeSandboxFiles(sandboxFilesIn(this.store.dirOf(id)), config, isHostNetwork(record));
      });
      const shm = shmPath ? step('shm', () => mountTmpfs(shmPath, SHM_OPTIONS)) : Promise.resolve();
      await allOrFirstError([
        netns,
        files,
        shm,
        netnsPath && netns.then(() => step('loopback', () => bringUpLoopback(netnsPath))),
        netns.then(() => step('cni', async () => (record.network = await this.setUpNetwork(record, undo, log)))),
        // pause only sleeps: it may start before its network is attached.
        Promise.all([netns, files, shm]).then(async () => {
          record.pausePid = await step('pauseRun', () => this.runPause(record, image, profiles, undo));
        }),
      ]);

      record.phase = 'ready';
      await this.store.save(record, 'lifecycle');
      undo.commit();
      log.info({ ip: record.network?.ip, timings }, 'sandbox ready');
      const sandbox = this.sandboxes.get(id);
      this.emit(sandbox, 'CONTAINER_CREATED_EVENT');
      this.emit(sandbox, 'CONTAINER_STARTED_EVENT');
      return id;
    } catch (err) {
      log[logLevelOf(err)]({ err: messageOf(err) }, 'RunPodSandbox failed; undoing');
      const left = await undo.unwind(log);
      if (left.length > 0) {
        // What could not be undone (a CNI DEL that failed, say) stays named by the record:
        // the sandbox is NOTREADY, and the kubelet's Stop and Remove retry the teardown.
        log.error({ left }, 'RunPodSandbox could not undo everything; the sandbox stays NOTREADY for StopPodSandbox and RemovePodSandbox to finish');
      }
      throw err;
    }
  }

  private newRecord(id: string, config: cri.PodSandboxConfig, handler: HandlerChoice): SandboxRecord {
    const namespaces = namespaceOptionsOf(config);
    const cgroupParent = config.linux?.cgroup_parent || this.deps.config.defaultCgroupParent;
    return {
      version: SANDBOX_RECORD_VERSION,
      id,
      name: sandboxNameOf(config.metadata!),
      config,
      runtimeHandler: handler.asked,
      ociRuntime: handler.name,
      createdAt: nowNanos(),
      phase: 'creating',
      namespaces,
      netnsPath: namespaces.network === 'NODE' ? undefined : newNetnsName().path,
      shmPath: namespaces.ipc === 'NODE' ? undefined : path.join(this.stateDirOf(id), 'shm'),
      hostname: '',
      cgroupParent,
      cgroupsPath: cgroupsPathFor(this.deps.config.cgroupDriver, cgroupParent, id),
      sandboxImage: '',
      timings: {},
    };
  }

  /** The pod's SELinux level, held from here until its record is forgotten. */
  private chooseSelinuxLevel(record: SandboxRecord, undo: UndoStack): void {
    record.selinuxLevel = this.deps.lsm.selinux.podLevel(record.config.linux?.security_context?.selinux_options ?? null, 'config.linux.security_context.selinux_options');
    undo.push('release SELinux level', async () => this.releaseSelinuxLevel(record), { onlyIfClean: true });
  }

  /** Once per record: a failed run's undo and forget() may both come here. */
  private releaseSelinuxLevel(record: SandboxRecord): void {
    this.deps.lsm.selinux.release(record.selinuxLevel);
    delete record.selinuxLevel;
  }

  /** The pause process's AppArmor profile and SELinux labels, from the pod's security context. */
  /**
   * The pause process's seccomp filter and AppArmor profile, from the pod's security context.
   * Worked out before anything is made: a Localhost profile that is missing or not loaded is
   * the request's mistake, refused while there is nothing to undo.
   */
  private async pauseProfiles(config: cri.PodSandboxConfig): Promise<PauseProfiles> {
    const security = config.linux?.security_context;
    const [seccomp, apparmorProfile] = await Promise.all([
      resolveSeccomp(pauseSeccompRequest(config, this.deps.config.seccompProfileRoot)),
      this.deps.lsm.apparmor.profileFor({
        profile: security?.apparmor ?? null,
        legacy: '',
        privileged: security?.privileged ?? false,
        field: 'config.linux.security_context.apparmor',
      }),
    ]);
    return { seccomp, apparmorProfile };
  }

  /** The pause process's confinement: its profiles, and SELinux labels at the pod's level. */
  private pauseConfinement(record: SandboxRecord, profiles: PauseProfiles): ProcessConfinement {
    const privileged = record.config.linux?.security_context?.privileged ?? false;
    const selinux = this.deps.lsm.selinux.pauseLabels(podSelinuxOf(record), privileged);
    return { apparmorProfile: profiles.apparmorProfile, selinux };
  }

  private stateDirOf(id: string): string {
    return path.join(this.deps.config.state, 'sandboxes', id);
  }

  private async setUpNetwork(record: SandboxRecord, undo: UndoStack, log: Logger): Promise<SandboxNetwork | undefined> {
    if (!record.netnsPath) return undefined;
    const attachment = attachmentOf(record);
    // Registered before the ADD: a chain that fails halfway leaves state only DEL can undo.
    undo.push('CNI DEL', () => this.deps.network.tearDown(attachment));
    const setUp = await this.deps.network.setUp(attachment);
    log.debug({ network: setUp.networkName }, 'network attached');
    return networkOf(setUp);
  }

  /** Create and start the pause container; it needs no monitor (see oci/unmonitored.ts). */
  private async runPause(record: SandboxRecord, image: SandboxImage, profiles: PauseProfiles, undo: UndoStack): Promise<number> {
    const spec = pauseSpec({
      sandboxId: record.id,
      config: record.config,
      namespaces: record.namespaces,
      image,
      hostname: record.hostname,
      netnsPath: record.netnsPath,
      shmPath: record.shmPath,
      cgroupsPath: record.cgroupsPath,
      ownOomScoreAdj: this.deps.ownOomScoreAdj,
      seccomp: profiles.seccomp,
      confinement: this.pauseConfinement(record, profiles),
    });
    undo.push('delete pause container', () => this.deps.runtime.delete(record.id));
    const { pid } = await this.deps.runtime.run({ id: record.id, handler: handlerNameOf(record), spec });
    return pid;
  }

  /**
   * Stop a sandbox: kill the pause container, detach the network, remove the netns and
   * unmount shm. Every step tolerates what is already gone, so Stop is idempotent and also
   * finishes sandboxes a crash left half-made or half-stopped. An unknown id is success.
   */
  async stop(idOrPrefix: string, log: Logger): Promise<void> {
    // The API makes Stop idempotent: a sandbox that is gone is as stopped as it gets.
    const id = this.sandboxes.find(idOrPrefix)?.record.id;
    if (!id) {
      log.info('sandbox already removed; nothing to stop');
      return;
    }
    await this.locks.run(id, async () => {
      const sandbox = this.sandboxes.find(id);
      if (sandbox) await this.stopLocked(sandbox, log);
    });
  }

  private async stopLocked(sandbox: Sandbox, log: Logger): Promise<void> {
    const { record } = sandbox;
    await this.members.stopAllIn(record.id, log);
    // `stopped` is written only after every step below succeeded: nothing is left to do.
    if (record.phase === 'stopped') return;
    // CNI DEL needs the netns, not the pause process: the two halves run side by side.
    const { netnsPath, shmPath } = record;
    await allOrFirstError([
      timeStep('StopPodSandbox', 'pauseStop', () => this.stopPause(sandbox, log)).then(async () => {
        if (shmPath) await timeStep('StopPodSandbox', 'shm', () => unmountAll(shmPath));
      }),
      this.tearDownNetwork(record).then(async () => {
        if (netnsPath) await timeStep('StopPodSandbox', 'netns', () => removeNetns(netnsPath));
      }),
    ]);
    record.phase = 'stopped';
    await this.store.save(record);
    log.info('sandbox stopped');
    this.emitStopped(sandbox);
  }

  /** Stop (if needed) and delete everything the sandbox owns; an unknown id is success. */
  async remove(idOrPrefix: string, log: Logger): Promise<void> {
    const id = this.sandboxes.find(idOrPrefix)?.record.id;
    if (!id) {
      log.info('sandbox already removed');
      return;
    }
    await this.locks.run(id, async () => {
      const sandbox = this.sandboxes.find(id);
      if (!sandbox) return; // removed by a call that held the lock before us
      await this.stopLocked(sandbox, log);
      await this.members.removeAllIn(id, log);
      await timeStep('RemovePodSandbox', 'pauseDelete', () => this.deps.runtime.delete(id));
      await this.forget(sandbox.record);
      log.info('sandbox removed');
      this.emit(sandbox, 'CONTAINER_DELETED_EVENT');
    });
  }

  private async stopPause(sandbox: Sandbox, log: Logger): Promise<void> {
    const id = sandbox.record.id;
    if (sandbox.pauseExit) return;
    if (!(await this.deps.runtime.kill(id, 'KILL'))) return; // never created, or already gone
    const exit = await this.deps.runtime.waitExit(id, PAUSE_EXIT_TIMEOUT_MS);
    if (!exit) {
      log.warn('pause container did not report its exit in time');
      return;
    }
    sandbox.pauseExit ??= exit;
    // Stop waits for CNI DEL anyway: freeing runc's state now takes it off RemovePodSandbox.
    await this.deps.runtime.release(id);
  }

  private async tearDownNetwork(record: SandboxRecord): Promise<void> {
    if (!record.netnsPath) return;
    await timeStep('StopPodSandbox', 'cni', () => this.deps.network.tearDown(attachmentOf(record)));
  }

  /** Drop the record, its files, the state dir and the name: the sandbox no longer exists. */
  private async forget(record: SandboxRecord): Promise<void> {
    await fs.rm(this.stateDirOf(record.id), { recursive: true, force: true });
    await this.store.remove(record.id);
    this.sandboxes.delete(record.id);
    this.names.release(record.name, record.id);
    this.releaseSelinuxLevel(record);
  }

  criStatus(sandbox: Sandbox): wire.PodSandboxStatus {
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
    const id = this.sandboxes.get(idOrPrefix).record.id;
    await this.locks.run(id, async () => {
      const sandbox = this.sandboxes.get(id);
      if (criStateOf(sandbox) !== 'SANDBOX_READY') throw new FailedPreconditionError(`sandbox ${id} is not ready`);
      const { record } = sandbox;
      const ownParent = record.config.linux?.cgroup_parent;
      record.resources = { resources, overhead };
      await this.store.save(record);
      if (!ownParent) {
        log.info('pod has no cgroup of its own (the default parent); its new resources are recorded only');
        return;
      }
      const dirs = parentCgroupDirs(detectHierarchy(), this.deps.config.cgroupDriver, ownParent);
      await applyLimits(dirs, podLimits(resources, overhead));
      log.info({ cgroup: dirs.path }, 'pod resources updated');
    });
  }

  async status(idOrPrefix: string, verbose: boolean): Promise<wire.PodSandboxStatusResponse> {
    const sandbox = this.sandboxes.get(idOrPrefix);
    const response: wire.PodSandboxStatusResponse = { status: statusOf(sandbox), timestamp: nowNanos() };
    if (verbose) response.info = { info: JSON.stringify(await this.verboseInfo(sandbox)) };
    return response;
  }

  private async verboseInfo(sandbox: Sandbox): Promise<Record<string, unknown>> {
    const { record } = sandbox;
    return {
      phase: record.phase,
      pid: record.pausePid,
      image: record.sandboxImage,
      netnsPath: record.netnsPath ?? '',
      shmPath: record.shmPath ?? '',
      hostname: record.hostname,
      cgroupsPath: record.cgroupsPath,
      network: record.network
        ? { name: record.network.networkName, source: record.network.networkSource }
        : undefined,
      cniResult: record.network?.cniResult,
      pauseExit: sandbox.pauseExit,
      timingsMs: record.timings,
      resources: record.resources,
      runtimeSpec: await this.deps.runtime.specOf(record.id),
      config: record.config,
    };
  }

  list(filter: cri.PodSandboxFilter | null): wire.PodSandbox[] {
    return this.filtered(filter).map((sandbox) => {
      const { record } = sandbox;
      return {
        id: record.id,
        metadata: record.config.metadata,
        state: criStateOf(sandbox),
        created_at: record.createdAt,
        labels: record.config.labels,
        annotations: record.config.annotations,
        runtime_handler: record.runtimeHandler,
      };
    });
  }

  private filtered(filter: cri.PodSandboxFilter | null): Sandbox[] {
    let sandboxes = this.sandboxes.values();
    if (!filter) return sandboxes;
    if (filter.id) {
      const match = this.sandboxes.find(filter.id);
      sandboxes = match ? [match] : [];
    }
    if (filter.state) sandboxes = sandboxes.filter((s) => criStateOf(s) === filter.state!.state);
    const selector = Object.entries(filter.label_selector ?? {});
    return sandboxes.filter((s) => selector.every(([k, v]) => s.record.config.labels[k] === v));
  }
}

/** cgroupfs takes a path, systemd a slice name: the other form would land somewhere unexpected. */
function checkCgroupParentForDriver(parent: string, driver: Config['cgroupDriver']): void {
  if (parent === '') return;
  const isSlice = parent.endsWith('.slice') && !parent.includes('/');
  if (driver === 'systemd' && !isSlice) throw new InvalidArgumentError(`config.linux.cgroup_parent ${quote(parent)}: the systemd cgroup driver takes a slice name`);
  if (driver === 'cgroupfs' && isSlice) throw new InvalidArgumentError(`config.linux.cgroup_parent ${quote(parent)}: the cgroupfs driver takes a path, not a slice name`);
  if (driver === 'systemd') expandSlice(parent);
}

/** What confines the pause process, worked out before the pod is made. */
interface PauseProfiles {
  seccomp: OciSeccomp | undefined;
  apparmorProfile: string | undefined;
}

/** The handler a RunPodSandbox named ("" for the default), and the configured one that serves it. */
interface HandlerChoice {
  asked: string;
  name: string;
}

/** The configured handler that runs a pod's containers; runc for pods made before handlers existed. */
export function handlerNameOf(record: SandboxRecord): string {
  return record.ociRuntime ?? LEGACY_HANDLER;
}

/** The CNI attachment of a sandbox: CNI_ARGS with the pod's labels, port mappings, DNS. */
function attachmentOf(record: SandboxRecord): Attachment {
  const meta = record.config.metadata!;
  return {
    containerId: record.id,
    netnsPath: record.netnsPath!,
    ifName: POD_IFNAME,
    args: podCniArgs({ namespace: meta.namespace, name: meta.name, uid: meta.uid, sandboxId: record.id }),
    capabilityArgs: capabilityArgsOf(record.config),
  };
}

function capabilityArgsOf(config: cri.PodSandboxConfig): CapabilityArgs {
  const args: CapabilityArgs = {};
  const mappings = config.port_mappings.filter((m) => m.host_port > 0);
  if (mappings.length > 0) {
    args.portMappings = mappings.map((m) => ({
      hostPort: m.host_port,
      containerPort: m.container_port,
      protocol: m.protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp',
      ...(m.host_ip ? { hostIP: m.host_ip } : {}),
    }));
  }
  const dns = config.dns_config;
  if (dns && (dns.servers.length > 0 || dns.searches.length > 0 || dns.options.length > 0)) {
    args.dns = { servers: dns.servers, searches: dns.searches, options: dns.options };
  }
  return args;
}

/** The pod IPs of a CNI result: the first IPv4 is primary, as kubelet expects for dual stack. */
function networkOf(setUp: SetUpResult): SandboxNetwork {
  const ips = setUp.result.ips.map((ip) => ip.address.split('/')[0]!);
  const primary = ips.find((ip) => !ip.includes(':')) ?? ips[0] ?? '';
  return {
    ip: primary,
    additionalIps: ips.filter((ip) => ip !== primary),
    networkName: setUp.networkName,
    networkSource: setUp.networkSource,
    cniResult: setUp.rawResult,
  };
}

export function statusOf(sandbox: Sandbox): wire.PodSandboxStatus {
  const { record } = sandbox;
  return {
    id: record.id,
    metadata: record.config.metadata,
    state: criStateOf(sandbox),
    created_at: record.createdAt,
    network: {
      ip: record.network?.ip ?? '',
      additional_ips: (record.network?.additionalIps ?? []).map((ip) => ({ ip })),
    },
    linux: { namespaces: { options: record.namespaces } },
    labels: record.config.labels,
    annotations: record.config.annotations,
    runtime_handler: record.runtimeHandler,
  };
}

/** What SELinux labelling needs of a pod, for its pause process and its containers. */
export function podSelinuxOf(record: SandboxRecord): PodSelinux {
  return {
    options: record.config.linux?.security_context?.selinux_options ?? null,
    level: record.selinuxLevel,
    sharesHostProcesses: record.namespaces.pid === 'NODE' || record.namespaces.ipc === 'NODE',
  };
}
