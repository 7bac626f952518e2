import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import { cdiRequestsOf } from '../cdi/requests.js';
import type { CdiInjection, CdiInjector } from '../cdi/types.js';
import type { Config } from '../config/config.js';
import { FailedPreconditionError, InvalidArgumentError, InternalError, DeadlineExceededError, logLevelOf, messageOf } from '../errors.js';
import type { ImageService } from '../image/service.js';
import type { ImageRecord } from '../image/store/images.js';
import { containerCapabilities } from '../oci/capabilities.js';
import { hostDevices, prepareDevices } from '../oci/devices.js';
import type { ContainerExit, OciRuntime } from '../oci/runtime.js';
import type { RuntimeHandlers } from '../oci/handlers.js';
import { handlerNameOf, podSelinuxOf } from '../sandbox/service.js';
import type { ProcessConfinement, SecurityModules } from '../oci/lsm.js';
import { resolveSeccomp } from '../oci/seccomp.js';
import { allCapabilities } from '../oci/capabilities.js';
import { resolveUser } from '../oci/user.js';
import { sandboxFilesIn } from '../sandbox/files.js';
import type { SandboxService } from '../sandbox/service.js';
import { criStateOf as sandboxStateOf, type Sandbox } from '../sandbox/sandbox.js';
import { IdIndex } from '../store/id-index.js';
import { NameRegistry } from '../store/names.js';
import { RecordStore, type SetAsideRecord } from '../store/records.js';
import { newId } from '../util/ids.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { mountOverlay, unmountAll, unmountBelow } from '../util/mount.js';
import { nanosFromDate, nowNanos, pollUntil, stepTimer, timeStep } from '../util/time.js';
import { ParkedCreations } from '../util/parking.js';
import { UndoStack } from '../util/undo.js';
import {
  CONTAINER_RECORD_VERSION,
  containerNameOf,
  criStateOf,
  exitReason,
  layersHeldBy,
  stopSignalEnum,
  type ContainerRecord,
} from './container.js';
import { ContainerEvents, type ContainerEventType } from './events.js';
import { containerRecordSchema } from './record-schema.js';
import { imageVolumeIndexes, mountImage, resolveSubPath, unmountImage } from './image-volumes.js';
import { prepareMounts } from './mounts.js';
import { ociResources } from './resources.js';
import { containerSpec, type PodContext } from './spec.js';
import { validateCreateContainer, validateExecCommand } from './validate.js';
import { checkResources } from '../validation/linux.js';
import { quote } from '../validation/fields.js';
import { createRegularFile, joinBelow, makeDirsBelow } from '../util/confined.js';

/** kubelet caps ExecSync output at 16 MiB per stream; so do we. */
const EXEC_OUTPUT_LIMIT = 16 * 1024 * 1024;
/**
 * What stdout and stderr together may carry in the reply: the 16 MiB gRPC message limit of
 * both ends (kubelet's and ours), less room for the rest of the message.
 */
const EXEC_REPLY_BUDGET = 16 * 1024 * 1024 - 64 * 1024;
/** How long a container whose CreateContainer client gave up waits for the retry before it is removed. */
const UNCLAIMED_TTL_MS = 5 * 60_000;
/** After SIGKILL, how long to wait for the exit to be recorded. */
const KILL_WAIT_MS = 10_000;
/** How long ReopenContainerLog waits for conmon to create the new log file. */
const LOG_REOPEN_TIMEOUT_MS = 5_000;

export interface ContainerServiceDeps {
  config: Config;
  /** What the OCI runtime and kernel can do (probed at start). */
  /** The OCI runtimes pods run on; a container runs on its pod's. */
  handlers: RuntimeHandlers;
  runtime: OciRuntime;
  images: ImageService;
  sandboxes: SandboxService;
  events: ContainerEvents;
  /** The node's CDI devices, resolved for CreateContainer's CDI_devices and cdi.k8s.io annotations. */
  cdi: CdiInjector;
  ownOomScoreAdj: number;
  /** AppArmor and SELinux as the host has them (detected at start). */
  lsm: SecurityModules;
  log: Logger;
}

/**
 * Containers in pods: CreateContainer as undoable steps (name, record, rootfs overlay, spec,
 * runc create under conmon), the lifecycle around it, and status for kubelet.
 */
export class ContainerService {
  private readonly store: RecordStore<ContainerRecord>;
  private readonly names = new NameRegistry('container');
  readonly containers = new IdIndex<ContainerRecord>('container');
  private readonly locks = new KeyedMutex();
  /** Removals answered whose host-side cleanup still runs, by container id. */
  private readonly finishing = new Map<string, { sandboxId: string; done: Promise<void> }>();
  private readonly parked = new ParkedCreations('CreateContainer', UNCLAIMED_TTL_MS, (id, log) => this.remove(id, log));

  constructor(private readonly deps: ContainerServiceDeps) {
    this.store = new RecordStore(path.join(deps.config.root, 'containers'), 'container.json', CONTAINER_RECORD_VERSION, containerRecordSchema, 'container', (id, retired) =>
      this.finishRemoval(id, retired),
    );
    // Under the container's lock: an exit that comes while StartContainer is still recording
    // the start is recorded after it, so STARTED always goes out before STOPPED.
    deps.runtime.onExit((id, exit) => void this.locks.run(id, () => this.recordExit(id, exit)));
  }

  private dirOf(id: string): string {
    return this.store.dirOf(id);
  }

  private rootfsOf(id: string): string {
    return path.join(this.dirOf(id), 'rootfs');
  }

  /**
   * Rebuild from records. A container whose exit conmon recorded while the daemon was down
   * gets it now; one with neither a process nor an exit file (a reboot) is marked exited
   * with reason Unknown.
   */
  async recover(): Promise<void> {
    const records = await this.store.loadAll(this.deps.log);
    for (const record of records) {
      this.containers.set(record.id, record);
      this.names.reserve(record.name, record.id);
      this.deps.images.retainLayers(record.id, layersHeldBy(record));
    }
    await Promise.all(records.map((record) => this.reconcile(record)));
    // Exec sessions do not survive their daemon: their clients' connections died with it.
    await this.deps.runtime.endOrphanedExecSessions();
    this.deps.log.info({ containers: records.length }, 'containers recovered');
  }

  private async reconcile(record: ContainerRecord): Promise<void> {
    if (record.exit || record.phase === 'creating') return;
    const exit = await this.deps.runtime.exitOf(record.id);
    if (exit) return this.recordExit(record.id, exit);
    const state = await this.deps.runtime.state(record.id).catch(() => undefined);
    if (!state || state.status === 'stopped') {
      await this.recordExit(record.id, { exitCode: 255, exitedAt: new Date(), oomKilled: false }, 'Unknown');
    }
  }

  get(idOrPrefix: string): ContainerRecord {
    return this.containers.get(idOrPrefix);
  }

  /** Records found invalid at recovery and moved aside, for the operator. */
  setAsideRecords(): readonly SetAsideRecord[] {
    return this.store.setAside;
  }

  inSandbox(sandboxId: string): ContainerRecord[] {
    return this.containers.values().filter((c) => c.sandboxId === sandboxId);
  }

  /**
   * CreateContainer. A call whose client gives up is not cut short: the container is
   * finished and handed to the kubelet's retry with the same metadata.
   */
  async create(request: cri.CreateContainerRequest, baseLog: Logger, signal?: AbortSignal): Promise<string> {
    validateCreateContainer(request);
    const config = request.config;
    const sandbox = this.deps.sandboxes.get(request.pod_sandbox_id);
    if (sandboxStateOf(sandbox) !== 'SANDBOX_READY') {
      throw new FailedPreconditionError(`sandbox ${sandbox.record.id} is not ready`);
    }
    this.checkPidTarget(config, sandbox);
    this.checkFeatures(config, sandbox);
    // Unknown or ambiguous devices are refused here, before anything is made.
    const cdi = await this.deps.cdi.resolve(cdiRequestsOf(config));
    const image = this.deps.images.get(config.image!.image);
    // Image volumes name images that must already be pulled: NotFound now, before anything.
    const volumeImages = new Map(imageVolumeIndexes(config.mounts).map((i) => [i, this.deps.images.get(config.mounts[i]!.image!.image)]));
    const start = (): Promise<string> => {
      const id = newId();
      const log = baseLog.child({ containerId: id, podSandboxId: sandbox.record.id });
      return this.locks.run(id, () => this.createLocked(id, config, sandbox, image, volumeImages, cdi, log));
    };
    const key = containerNameOf(config.metadata!, sandbox.record.config.metadata!);
    return this.parked.create(key, start, baseLog, signal);
  }

  /** Refuse what this runtime and kernel cannot do, before anything is made. */
  private checkFeatures(config: cri.ContainerConfig, sandbox: Sandbox): void {
    const rro = config.mounts.findIndex((m) => m.recursive_read_only);
    const handler = this.deps.handlers.get(handlerNameOf(sandbox.record));
    if (!handler) throw new FailedPreconditionError(`pod ${sandbox.record.id} runs on runtime handler ${handlerNameOf(sandbox.record)}, which is no longer configured`);
    if (rro >= 0 && !handler.features.recursiveReadOnlyMounts) {
      throw new FailedPreconditionError(`config.mounts[${rro}].recursive_read_only cannot be honoured: ${handler.features.missing.recursiveReadOnlyMounts}`);
    }
  }

  /**
   * A container may share the PID namespace of another container of its own pod only: one
   * in another pod would see and signal that pod's processes.
   */
  private checkPidTarget(config: cri.ContainerConfig, sandbox: Sandbox): void {
    const options = config.linux?.security_context?.namespace_options;
    if (options?.pid !== 'TARGET') return;
    const target = this.containers.find(options.target_id);
    if (!target || target.sandboxId !== sandbox.record.id) {
      throw new InvalidArgumentError(`config.linux.security_context.namespace_options.target_id ${quote(options.target_id)} names no container of pod ${sandbox.record.id}`);
    }
    if (criStateOf(target) !== 'CONTAINER_RUNNING' || !target.pid) {
      throw new FailedPreconditionError(`pid namespace target ${target.id} is not running`);
    }
  }

  private async createLocked(
    id: string,
    config: cri.ContainerConfig,
    sandbox: Sandbox,
    image: ImageRecord,
    volumeImages: Map<number, ImageRecord>,
    cdi: CdiInjection,
    log: Logger,
  ): Promise<string> {
    const undo = new UndoStack();
    const record = this.newRecord(id, config, sandbox, image);
    const timings: Record<string, number> = {};
    record.timings = timings;
    const step = stepTimer(timings, 'CreateContainer');
    try {
      this.names.reserve(record.name, id);
      undo.push('release name', async () => this.names.release(record.name, id), { onlyIfClean: true });
      await step('record', () => this.store.save(record));
      this.containers.set(id, record);
      this.deps.images.retainLayers(id, layersHeldBy(record));
      undo.push('remove record', () => this.forget(record, log), { onlyIfClean: true });

      const rootfs = this.rootfsOf(id);
      undo.push('unmount rootfs', () => unmountAll(rootfs));
      await step('rootfs', () => this.mountRootfs(id, image));

      if (record.logPath && (await step('logFile', () => prepareLogFile(sandbox.record.config.log_directory, config.log_path)))) {
        undo.push('remove log file', () => fs.rm(record.logPath, { force: true }));
      }
      const volumeSources = await step('imageVolumes', () => this.mountImageVolumes(record, config, volumeImages, undo));
      const spec = await step('spec', () => this.buildSpec(id, config, sandbox, image, rootfs, volumeSources, cdi));
      const { uid, gid, additionalGids = [] } = spec.process.user;
      record.user = { uid, gid, additionalGids };
      undo.push('delete container', () => this.deps.runtime.delete(id));
      const { pid } = await step('runtimeCreate', () =>
        this.deps.runtime.create({
          id,
          handler: handlerNameOf(sandbox.record),
          spec,
          io: { logPath: record.logPath || undefined, terminal: config.tty, stdin: config.stdin, stdinOnce: config.stdin_once },
          log,
        }),
      );
      record.pid = pid;
      record.phase = 'created';
      await this.store.save(record, 'lifecycle');
      undo.commit();
      log.info({ name: config.metadata?.name, image: image.id, timings }, 'container created');
      this.emit(record, 'CONTAINER_CREATED_EVENT');
      return id;
    } catch (err) {
      log[logLevelOf(err)]({ err: messageOf(err) }, 'CreateContainer failed; undoing');
      await undo.unwind(log);
      throw err;
    }
  }

  private newRecord(id: string, config: cri.ContainerConfig, sandbox: Sandbox, image: ImageRecord): ContainerRecord {
    const logDir = sandbox.record.config.log_directory;
    const stopSignal = signalName(config.stop_signal, image.config.config?.StopSignal);
    const pidMode = config.linux?.security_context?.namespace_options?.pid ?? sandbox.record.namespaces.pid;
    return {
      version: CONTAINER_RECORD_VERSION,
      id,
      sandboxId: sandbox.record.id,
      name: containerNameOf(config.metadata!, sandbox.record.config.metadata!),
      config: storableConfig(config),
      image: {
        requested: config.image!.image,
        id: image.id,
        name: image.repoTags[0] ?? image.repoDigests[0] ?? image.id,
        layers: image.layers.map((l) => l.diffId),
      },
      phase: 'creating',
      createdAt: nowNanos(),
      logPath: logDir && config.log_path ? joinBelow(logDir, config.log_path, 'config.log_path') : '',
      resources: config.linux?.resources ?? null,
      stopSignal,
      ownPidNamespace: pidMode === 'CONTAINER',
    };
  }

  /**
   * Mount each image volume's image read-only below the container's directory, recording it
   * (and holding its layers) first; the sources to bind into the container, by mount index.
   */
  private async mountImageVolumes(record: ContainerRecord, config: cri.ContainerConfig, images: Map<number, ImageRecord>, undo: UndoStack): Promise<Map<number, string>> {
    const sources = new Map<number, string>();
    if (images.size === 0) return sources;
    record.imageVolumes = [...images].map(([index, volume]) => ({
      index,
      imageId: volume.id,
      layers: volume.layers.map((l) => l.diffId),
      mountPoint: path.join(this.dirOf(record.id), 'image-volumes', String(index)),
    }));
    await this.store.save(record);
    this.deps.images.retainLayers(record.id, layersHeldBy(record));
    for (const volume of record.imageVolumes) {
      undo.push('unmount image volume', () => unmountImage(volume.mountPoint));
      await mountImage(this.deps.images.layerDirs(images.get(volume.index)!), volume.mountPoint);
      const subPath = config.mounts[volume.index]!.image_sub_path;
      sources.set(volume.index, subPath ? await resolveSubPath(volume.mountPoint, subPath, `config.mounts[${volume.index}].image_sub_path`) : volume.mountPoint);
    }
    return sources;
  }

  private async mountRootfs(id: string, image: ImageRecord): Promise<void> {
    const dir = this.dirOf(id);
    await Promise.all(['upper', 'work'].map((d) => fs.mkdir(path.join(dir, d), { recursive: true, mode: 0o755 })));
    await mountOverlay({
      lowerDirs: this.deps.images.layerDirs(image),
      upperDir: path.join(dir, 'upper'),
      workDir: path.join(dir, 'work'),
      target: this.rootfsOf(id),
    });
  }

  /** Resolve everything the spec needs from the host and the rootfs, then assemble it. */
  private async buildSpec(id: string, config: cri.ContainerConfig, sandbox: Sandbox, image: ImageRecord, rootfs: string, volumeSources: Map<number, string>, cdi: CdiInjection) {
    const security = config.linux?.security_context;
    const privileged = security?.privileged ?? false;
    if (privileged && !sandbox.record.config.linux?.security_context?.privileged) {
      throw new InvalidArgumentError('a privileged container needs a privileged sandbox');
    }
    const capabilities = privileged
      ? allCapabilities()
      : containerCapabilities({ add: security?.capabilities?.add_capabilities ?? [], drop: security?.capabilities?.drop_capabilities ?? [] });
    const [user, devices, mounts, seccomp] = await Promise.all([
      this.resolveContainerUser(config, image, rootfs),
      privileged ? hostDevices() : prepareDevices(config.devices),
      prepareMounts(config.mounts, volumeSources),
      resolveSeccomp({
        seccomp: security?.seccomp ?? null,
        seccompProfilePath: security?.seccomp_profile_path ?? '',
        privileged,
        capabilities,
        profileRoot: this.deps.config.seccompProfileRoot,
      }),
    ]);
    const confinement = await this.confinementOf(config, sandbox, privileged);
    const pod = this.podContext(sandbox);
    const namespaces = config.linux?.security_context?.namespace_options;
    const targetPid = namespaces?.pid === 'TARGET' ? this.get(namespaces.target_id).pid : undefined;
    return containerSpec({
      containerId: id,
      config,
      pod,
      image: { ref: image.repoTags[0] ?? image.id, config: image.config },
      rootfs,
      user,
      capabilities,
      seccomp,
      devices,
      mounts,
      targetPid,
      ownOomScoreAdj: this.deps.ownOomScoreAdj,
      cgroupDriver: this.deps.config.cgroupDriver,
      cdi: cdi.edits,
      confinement,
    });
  }

  /** The container's AppArmor profile, and SELinux labels at its pod's level. */
  private async confinementOf(config: cri.ContainerConfig, sandbox: Sandbox, privileged: boolean): Promise<ProcessConfinement> {
    const security = config.linux?.security_context;
    const field = 'config.linux.security_context';
    const apparmorProfile = await this.deps.lsm.apparmor.profileFor({
      profile: security?.apparmor ?? null,
      legacy: security?.apparmor_profile ?? '',
      privileged,
      field: `${field}.apparmor`,
    });
    const pod = podSelinuxOf(sandbox.record);
    if (security?.namespace_options?.pid === 'NODE') pod.sharesHostProcesses = true;
    const selinux = this.deps.lsm.selinux.containerLabels(pod, security?.selinux_options ?? null, privileged, `${field}.selinux_options`);
    return { apparmorProfile, selinux };
  }

  /**
   * RunAsUser (with RunAsGroup) or RunAsUsername, else the image's User; groups from the
   * image's /etc/group, then SupplementalGroups (unless the policy is Strict).
   */
  private async resolveContainerUser(config: cri.ContainerConfig, image: ImageRecord, rootfs: string) {
    const security = config.linux?.security_context;
    const extra = (security?.supplemental_groups ?? []).map(Number);
    let spec = image.config.config?.User ?? '';
    if (security?.run_as_user) spec = String(security.run_as_user.value);
    else if (security?.run_as_username) spec = security.run_as_username;
    if (security?.run_as_group) {
      if (!security.run_as_user && !security.run_as_username) {
        throw new InvalidArgumentError('run_as_group needs run_as_user or run_as_username');
      }
      spec = `${spec.split(':')[0]}:${security.run_as_group.value}`;
    }
    const user = await resolveUser(rootfs, spec, extra);
    if (security?.supplemental_groups_policy === 'Strict') {
      user.additionalGids = extra.filter((g) => g !== user.gid);
    }
    return user;
  }

  private podContext(sandbox: Sandbox): PodContext {
    const { record } = sandbox;
    if (!record.pausePid) throw new FailedPreconditionError(`sandbox ${record.id} has no running pause container`);
    return {
      sandboxId: record.id,
      config: record.config,
      namespaces: record.namespaces,
      netnsPath: record.netnsPath,
      pausePid: record.pausePid,
      shmPath: record.shmPath,
      files: sandboxFilesIn(this.deps.sandboxes.dirOf(record.id)),
      hostname: record.hostname,
      cgroupParent: record.cgroupParent,
    };
  }

  async start(idOrPrefix: string, log: Logger): Promise<void> {
    const id = this.get(idOrPrefix).id;
    await this.locks.run(id, async () => {
      const record = this.get(id);
      const state = criStateOf(record);
      if (state !== 'CONTAINER_CREATED') throw new FailedPreconditionError(`container ${id} is ${stateWord(state)}, not created`);
      const startedAt = nowNanos();
      await stepTimer((record.timings ??= {}), 'StartContainer')('runtimeStart', () => this.deps.runtime.start(id));
      record.startedAt = startedAt;
      await this.store.save(record, 'lifecycle');
      log.info('container started');
      this.emit(record, 'CONTAINER_STARTED_EVENT');
    });
  }

  /**
   * Send the stop signal, wait up to `graceMs`, then SIGKILL. The grace period is waited out
   * without the container's lock, so the kubelet's force-kill (StopContainer with timeout 0)
   * or a RemoveContainer acts at once instead of queueing behind it. Processes of a container
   * sharing the pod's PID namespace are signalled too. An unknown id is success: the
   * container is stopped as far as anyone can tell.
   */
  async stop(idOrPrefix: string, graceMs: number, log: Logger): Promise<void> {
    const id = this.containers.find(idOrPrefix)?.id;
    if (!id) {
      log.info('container already removed; nothing to stop');
      return;
    }
    if (graceMs > 0) {
      const signalled = await this.locks.run(id, () => this.sendStopSignal(id));
      if (signalled && (await this.waitForExit(id, graceMs))) {
        log.info({ signal: this.containers.find(id)?.stopSignal }, 'container stopped');
        return;
      }
    }
    await this.locks.run(id, async () => {
      const record = this.containers.find(id);
      if (record) await this.stopLocked(record, log);
    });
  }

  /** The container's own stop signal, if it runs and has not exited; true when it was sent. */
  private async sendStopSignal(id: string): Promise<boolean> {
    const record = this.containers.find(id);
    if (!record || record.exit || !record.startedAt) return false;
    return this.deps.runtime.kill(record.id, record.stopSignal, !record.ownPidNamespace);
  }

  /** SIGKILL and wait for the exit to be recorded: the end of every stop. Holds the lock. */
  private async stopLocked(record: ContainerRecord, log: Logger): Promise<void> {
    if (record.exit) return;
    // In a PID namespace of its own, the kernel kills every process when init dies.
    const signalled = await this.deps.runtime.kill(record.id, 'SIGKILL', !record.ownPidNamespace);
    if (signalled && (await this.waitForExit(record.id, KILL_WAIT_MS))) {
      log.info('container killed');
      return;
    }
    // Never started, or already gone without a recorded exit: what runc says is the truth.
    const state = await this.deps.runtime.state(record.id);
    if (!state || state.status === 'stopped' || state.status === 'created') {
      await this.recordExit(record.id, (await this.deps.runtime.exitOf(record.id)) ?? { exitCode: 137, exitedAt: new Date(), oomKilled: false });
      return;
    }
    throw new DeadlineExceededError(`container ${record.id} did not exit after SIGKILL`);
  }

  private async waitForExit(id: string, ms: number): Promise<boolean> {
    const exit = await this.deps.runtime.waitExit(id, ms);
    if (exit) await this.recordExit(id, exit);
    return exit !== undefined;
  }

  /** Remove a container in any state; an unknown id is success. */
  async remove(idOrPrefix: string, log: Logger): Promise<void> {
    const id = this.containers.find(idOrPrefix)?.id;
    if (!id) {
      log.info('container already removed');
      return;
    }
    await this.locks.run(id, async () => {
      const record = this.containers.find(id);
      if (!record) return;
      await this.stopLocked(record, log);
      // One rename takes the record, the rootfs and the writable layer out of the store: the
      // container no longer exists, and deleting what it left on the host (runc state,
      // bundle, mounts, files; tens of milliseconds) goes on after the answer. A restart
      // finishes a removal a crash interrupted (the store's finishRemoval).
      const retired = await this.store.retire(id);
      this.containers.delete(id);
      this.names.release(record.name, id);
      log.info('container removed');
      this.emit(record, 'CONTAINER_DELETED_EVENT');
      this.finishInBackground(record, retired, log);
    });
  }

  private finishInBackground(record: ContainerRecord, retired: string | undefined, log: Logger): void {
    const done = timeStep('RemoveContainer', 'cleanup', () => this.finishRemoval(record.id, retired))
      .catch((err: unknown) => log.error({ err: messageOf(err) }, 'cannot finish removing the container; the next start of tscri will'))
      .finally(() => this.finishing.delete(record.id));
    this.finishing.set(record.id, { sandboxId: record.sandboxId, done });
  }

  /** Delete what a removed container left: its runc state and bundle, its mounts and its directory. */
  private async finishRemoval(id: string, retired: string | undefined): Promise<void> {
    await this.deps.runtime.delete(id);
    if (retired) {
      await unmountBelow(retired);
      await fs.rm(retired, { recursive: true, force: true });
    }
    await this.deps.images.releaseLayers(id, this.deps.log.child({ containerId: id }));
  }

  /** Wait for the cleanups of removed containers (of one sandbox, or all) to finish. */
  async removalsFinished(sandboxId?: string): Promise<void> {
    const pending = [...this.finishing.values()].filter((f) => sandboxId === undefined || f.sandboxId === sandboxId);
    await Promise.all(pending.map((f) => f.done));
  }

  private async forget(record: ContainerRecord, log: Logger): Promise<void> {
    await this.store.remove(record.id);
    this.containers.delete(record.id);
    this.names.release(record.name, record.id);
    await this.deps.images.releaseLayers(record.id, log);
  }

  /** Record an exit reported by conmon (or deduced); idempotent. */
  private async recordExit(id: string, exit: ContainerExit, reason?: 'Unknown'): Promise<void> {
    const record = this.containers.find(id);
    if (!record || record.id !== id || record.exit) return;
    record.exit = {
      exitCode: exit.exitCode,
      finishedAt: nanosFromDate(exit.exitedAt),
      reason: reason ?? exitReason(exit.exitCode, exit.oomKilled),
      message: reason === 'Unknown' ? 'the container was gone when tscri looked for it' : '',
    };
    await this.store.save(record, 'lifecycle').catch((err: unknown) => this.deps.log.error({ containerId: id, err: messageOf(err) }, 'cannot save exit'));
    this.deps.log.info({ containerId: id, exitCode: exit.exitCode, reason: record.exit.reason }, 'container exited');
    this.emit(record, 'CONTAINER_STOPPED_EVENT');
  }

  /** Stop every container of a sandbox (StopPodSandbox). */
  async stopAllIn(sandboxId: string, log: Logger): Promise<void> {
    await Promise.all(this.inSandbox(sandboxId).map((c) => this.locks.run(c.id, () => this.stopLocked(c, log.child({ containerId: c.id })))));
  }

  /** The status of every container of a sandbox, for the pod's own events. */
  statusesIn(sandboxId: string): wire.ContainerStatus[] {
    return this.inSandbox(sandboxId).map((c) => this.criStatus(c));
  }

  /** Remove every container of a sandbox (RemovePodSandbox). */
  async removeAllIn(sandboxId: string, log: Logger): Promise<void> {
    await Promise.all(this.inSandbox(sandboxId).map((c) => this.remove(c.id, log.child({ containerId: c.id }))));
    // A removed pod leaves nothing of its containers behind when its removal returns.
    await this.removalsFinished(sandboxId);
  }

  status(idOrPrefix: string, verbose: boolean): Promise<wire.ContainerStatusResponse> {
    const record = this.get(idOrPrefix);
    return this.statusOf(record, verbose);
  }

  async statusOf(record: ContainerRecord, verbose: boolean): Promise<wire.ContainerStatusResponse> {
    const response: wire.ContainerStatusResponse = { status: this.criStatus(record) };
    if (verbose) {
      response.info = {
        info: JSON.stringify({
          sandboxID: record.sandboxId,
          pid: record.pid,
          phase: record.phase,
          image: record.image,
          rootfs: this.rootfsOf(record.id),
          timingsMs: record.timings ?? {},
          runtimeSpec: await this.deps.runtime.specOf(record.id),
        }),
      };
    }
    return response;
  }

  criStatus(record: ContainerRecord): wire.ContainerStatus {
    return {
      id: record.id,
      metadata: record.config.metadata,
      state: criStateOf(record),
      created_at: record.createdAt,
      started_at: record.startedAt ?? '0',
      finished_at: record.exit?.finishedAt ?? '0',
      exit_code: record.exit?.exitCode ?? 0,
      image: { image: record.image.name, annotations: record.config.image?.annotations ?? {} },
      image_ref: record.image.id,
      image_id: record.image.id,
      reason: record.exit?.reason ?? '',
      message: record.exit?.message ?? '',
      labels: record.config.labels,
      annotations: record.config.annotations,
      mounts: record.config.mounts,
      log_path: record.logPath,
      resources: record.resources ? { linux: record.resources } : null,
      // What runc applied from the spec: kubelet shows it in the pod's status (the
      // SupplementalGroupsPolicy feature), so that Merge and Strict can be told apart.
      user: record.user ? { linux: { uid: record.user.uid, gid: record.user.gid, supplemental_groups: record.user.additionalGids } } : null,
      stop_signal: stopSignalEnum(record.stopSignal) as wire.ContainerStatus['stop_signal'],
    };
  }

  list(filter: cri.ContainerFilter | null): wire.Container[] {
    let records = this.containers.values();
    if (filter?.id) {
      const match = this.containers.find(filter.id);
      records = match ? [match] : [];
    }
    if (filter?.pod_sandbox_id) {
      const sandbox = this.deps.sandboxes.sandboxes.find(filter.pod_sandbox_id);
      records = records.filter((r) => r.sandboxId === sandbox?.record.id);
    }
    if (filter?.state) records = records.filter((r) => criStateOf(r) === filter.state!.state);
    const selector = Object.entries(filter?.label_selector ?? {});
    records = records.filter((r) => selector.every(([k, v]) => r.config.labels[k] === v));
    return records.map((r) => ({
      id: r.id,
      pod_sandbox_id: r.sandboxId,
      metadata: r.config.metadata,
      image: { image: r.image.name, annotations: {} },
      image_ref: r.image.id,
      image_id: r.image.id,
      state: criStateOf(r),
      created_at: r.createdAt,
      labels: r.config.labels,
      annotations: r.config.annotations,
    }));
  }

  async updateResources(idOrPrefix: string, resources: cri.LinuxContainerResources | null, log: Logger): Promise<void> {
    checkResources('linux', resources);
    const record = this.get(idOrPrefix);
    if (!resources) return;
    await this.locks.run(record.id, async () => {
      if (criStateOf(record) === 'CONTAINER_EXITED') throw new FailedPreconditionError(`container ${record.id} has exited`);
      await this.deps.runtime.update(record.id, ociResources(resources));
      // Fields left at zero are not changed (runc update leaves them alone), so the record
      // keeps their old values: an update of CPU alone must not report the memory limit as 0.
      record.resources = mergeResources(record.resources, resources);
      await this.store.save(record);
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

  private emit(record: ContainerRecord, type: ContainerEventType): void {
    const sandbox = this.deps.sandboxes.sandboxes.find(record.sandboxId);
    this.deps.events.emit({
      container_id: record.id,
      container_event_type: type,
      created_at: nowNanos(),
      pod_sandbox_status: sandbox ? this.deps.sandboxes.criStatus(sandbox) : null,
      containers_statuses: this.inSandbox(record.sandboxId).map((c) => this.criStatus(c)),
    });
  }
}

/** CRI's Signal enum names are signal names; RUNTIME_DEFAULT means the image's, or SIGTERM. */
/**
 * The log file's directories made below the pod's log directory and the file created, none
 * of them through a symlink: conmon then opens (and on rotation reopens) a regular file that
 * the log directory's owner put there, never a link to elsewhere on the host. True when the
 * file is new.
 */
async function prepareLogFile(logDirectory: string, logPath: string): Promise<boolean> {
  const dir = await makeDirsBelow(logDirectory, path.dirname(logPath), 'config.log_path');
  return createRegularFile(path.join(dir, path.basename(logPath)), 'config.log_path');
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

function signalName(requested: string, imageStopSignal: string | undefined): string {
  if (requested && requested !== 'RUNTIME_DEFAULT') return requested;
  const image = (imageStopSignal ?? '').trim().toUpperCase();
  if (!image) return 'SIGTERM';
  if (/^\d+$/.test(image)) return image;
  return image.startsWith('SIG') ? image : `SIG${image}`;
}

function stateWord(state: string): string {
  return state.replace('CONTAINER_', '').toLowerCase();
}

/** The config with env values as text, so the record is plain JSON. */
function storableConfig(config: cri.ContainerConfig): cri.ContainerConfig {
  return {
    ...config,
    envs: config.envs.map((kv) => ({ key: kv.key, value: (Buffer.isBuffer(kv.value) ? kv.value.toString('utf8') : String(kv.value)) as unknown as Buffer })),
  };
}

function fileExists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}
