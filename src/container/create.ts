/**
 * CreateContainer as named steps, each taking what the ones before made and returning what
 * it makes:
 *
 *   reserve name → record → rootfs → log file → image volumes → spec → runtime create → created
 *
 * Each step registers its undo right before (or, for what only exists once written, right
 * after) the resource it makes, so a failure anywhere unwinds exactly what was made, newest
 * first: delete container, unmount image volumes, remove log file, unmount rootfs, remove
 * record, release name. The record is written before every side effect it names.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type * as cri from '../api/cri.js';
import { cdiRequestsOf } from '../cdi/requests.js';
import type { CdiInjection } from '../cdi/types.js';
import { FailedPreconditionError, InvalidArgumentError, logLevelOf } from '../errors.js';
import type { ImageRecord } from '../image/store/images.js';
import type { OciSpec } from '../oci/spec-types.js';
import { criStateOf as sandboxStateOf, handlerNameOf, type Sandbox } from '../sandbox/sandbox.js';
import { createRegularFile, joinBelow, makeDirsBelow } from '../util/confined.js';
import { nowNanos, stepTimer } from '../util/time.js';
import { UndoStack } from '../util/undo.js';
import { quote } from '../validation/fields.js';
import { CONTAINER_RECORD_VERSION, containerNameOf, criStateOf, layersHeldBy, type ContainerRecord } from './container.js';
import type { ContainerParts } from './deps.js';
import { imageVolumeIndexes, resolveSubPath } from './image-volumes.js';
import { buildContainerSpec } from './spec-inputs.js';
import { validateCreateContainer } from './validate.js';

/** A CreateContainer request checked against the pod, the node and the images: nothing made yet. */
export interface CreatePlan {
  config: cri.ContainerConfig;
  sandbox: Sandbox;
  image: ImageRecord;
  /** The images of image volumes, by mount index. */
  volumeImages: Map<number, ImageRecord>;
  cdi: CdiInjection;
}

/**
 * Check the request before anything is made: a ready pod, a PID target in the same pod, the
 * features the pod's runtime has, known CDI devices and pulled images (NotFound now).
 */
export async function planCreate(parts: ContainerParts, request: cri.CreateContainerRequest): Promise<CreatePlan> {
  validateCreateContainer(request);
  const { config } = request;
  const { deps } = parts;
  const sandbox = deps.sandboxes.get(request.pod_sandbox_id);
  if (sandboxStateOf(sandbox) !== 'SANDBOX_READY') {
    throw new FailedPreconditionError(`sandbox ${sandbox.record.id} is not ready`);
  }
  checkPidTarget(parts, config, sandbox);
  checkFeatures(parts, config, sandbox);
  const cdi = await deps.cdi.resolve(cdiRequestsOf(config));
  const image = deps.images.get(config.image!.image);
  const volumeImages = new Map(imageVolumeIndexes(config.mounts).map((i) => [i, deps.images.get(config.mounts[i]!.image!.image)]));
  return { config, sandbox, image, volumeImages, cdi };
}

/** Refuse what this runtime and kernel cannot do, before anything is made. */
function checkFeatures(parts: ContainerParts, config: cri.ContainerConfig, sandbox: Sandbox): void {
  const rro = config.mounts.findIndex((m) => m.recursive_read_only);
  const handler = parts.deps.handlers.get(handlerNameOf(sandbox.record));
  if (!handler) throw new FailedPreconditionError(`pod ${sandbox.record.id} runs on runtime handler ${handlerNameOf(sandbox.record)}, which is no longer configured`);
  if (rro >= 0 && !handler.features.recursiveReadOnlyMounts) {
    throw new FailedPreconditionError(`config.mounts[${rro}].recursive_read_only cannot be honoured: ${handler.features.missing.recursiveReadOnlyMounts}`);
  }
}

/**
 * A container may share the PID namespace of another container of its own pod only: one
 * in another pod would see and signal that pod's processes.
 */
function checkPidTarget(parts: ContainerParts, config: cri.ContainerConfig, sandbox: Sandbox): void {
  const options = config.linux?.security_context?.namespace_options;
  if (options?.pid !== 'TARGET') return;
  const target = parts.store.find(options.target_id);
  if (!target || target.sandboxId !== sandbox.record.id) {
    throw new InvalidArgumentError(`config.linux.security_context.namespace_options.target_id ${quote(options.target_id)} names no container of pod ${sandbox.record.id}`);
  }
  if (criStateOf(target) !== 'CONTAINER_RUNNING' || !target.pid) {
    throw new FailedPreconditionError(`pid namespace target ${target.id} is not running`);
  }
}

type Step = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/** Run the steps under the container's lock; on failure, undo what was made and rethrow. */
export async function createContainer(parts: ContainerParts, plan: CreatePlan, id: string, log: Logger): Promise<string> {
  const undo = new UndoStack();
  const timings: Record<string, number> = {};
  const step: Step = stepTimer(timings, 'CreateContainer');
  const { config, sandbox, image } = plan;
  try {
    const record = reserveName(parts, newRecord(parts, id, plan, timings), undo);
    await step('record', () => addRecord(parts, record, undo, log));
    const rootfs = await step('rootfs', () => mountRootfs(parts, id, image, undo));
    await prepareLog(step, record, sandbox, config, undo);
    const volumeSources = await step('imageVolumes', () => mountImageVolumes(parts, record, plan, undo));
    const spec = await step('spec', () => buildContainerSpec(parts.deps, { id, config, sandbox, image, rootfs, volumeSources, cdi: plan.cdi, targetPid: targetPidOf(parts, config) }));
    const pid = await step('runtimeCreate', () => runtimeCreate(parts, record, spec, plan, undo, log));
    const created = await markCreated(parts, id, pid, spec);
    undo.commit();
    log.info({ name: config.metadata?.name, image: image.id, timings }, 'container created');
    parts.emit(created, 'CONTAINER_CREATED_EVENT');
    return id;
  } catch (err) {
    log[logLevelOf(err)]({ err }, 'CreateContainer failed; undoing');
    await undo.unwind(log);
    throw err;
  }
}

/** Step 1: the container's name, refused while another container holds it. */
function reserveName(parts: ContainerParts, record: ContainerRecord, undo: UndoStack): ContainerRecord {
  parts.names.reserve(record.name, record.id);
  undo.push('release name', async () => parts.names.release(record.name, record.id), { onlyIfClean: true });
  return record;
}

/** Step 2: the record written (phase creating) and indexed, its image's layers held. */
async function addRecord(parts: ContainerParts, record: ContainerRecord, undo: UndoStack, log: Logger): Promise<void> {
  await parts.store.add(record);
  parts.deps.images.retainLayers(record.id, layersHeldBy(record));
  undo.push(
    'remove record',
    async () => {
      await parts.store.remove(record.id);
      parts.names.release(record.name, record.id);
      await parts.deps.images.releaseLayers(record.id, log);
    },
    { onlyIfClean: true },
  );
}

/** Step 3: the image's layers under a writable layer of its own, mounted as the rootfs. */
async function mountRootfs(parts: ContainerParts, id: string, image: ImageRecord, undo: UndoStack): Promise<string> {
  const { layout, mounts, images } = parts.deps;
  const rootfs = layout.containerRootfs(id);
  undo.push('unmount rootfs', () => mounts.unmountAll(rootfs));
  const upperDir = layout.containerUpper(id);
  const workDir = layout.containerWork(id);
  await Promise.all([upperDir, workDir].map((dir) => fs.mkdir(dir, { recursive: true, mode: 0o755 })));
  await mounts.mountOverlay({ lowerDirs: images.layerDirs(image), upperDir, workDir, target: rootfs });
  return rootfs;
}

/** Step 4: the CRI log file, when the pod has a log directory; removed on failure only if it is new. */
async function prepareLog(step: Step, record: ContainerRecord, sandbox: Sandbox, config: cri.ContainerConfig, undo: UndoStack): Promise<void> {
  if (record.logPath && (await step('logFile', () => prepareLogFile(sandbox.record.config.log_directory, config.log_path)))) {
    undo.push('remove log file', () => fs.rm(record.logPath, { force: true }));
  }
}

/**
 * Step 5: each image volume's image mounted read-only below the container's directory,
 * recorded (and its layers held) first; the sources to bind into the container, by mount index.
 */
async function mountImageVolumes(parts: ContainerParts, record: ContainerRecord, plan: CreatePlan, undo: UndoStack): Promise<Map<number, string>> {
  const { layout, images, mounts } = parts.deps;
  const sources = new Map<number, string>();
  if (plan.volumeImages.size === 0) return sources;
  const volumes = [...plan.volumeImages].map(([index, volume]) => ({
    index,
    imageId: volume.id,
    layers: volume.layers.map((l) => l.diffId),
    mountPoint: layout.imageVolume(record.id, index),
  }));
  await parts.store.update(record.id, (r) => {
    r.imageVolumes = volumes;
  });
  images.retainLayers(record.id, layersHeldBy(record));
  for (const volume of volumes) {
    undo.push('unmount image volume', () => mounts.unmountImage(volume.mountPoint));
    await mounts.mountImage(images.layerDirs(plan.volumeImages.get(volume.index)!), volume.mountPoint);
    const subPath = plan.config.mounts[volume.index]!.image_sub_path;
    sources.set(volume.index, subPath ? await resolveSubPath(volume.mountPoint, subPath, `config.mounts[${volume.index}].image_sub_path`) : volume.mountPoint);
  }
  return sources;
}

/** For pid namespace mode TARGET (checked by planCreate): the target's init pid. */
function targetPidOf(parts: ContainerParts, config: cri.ContainerConfig): number | undefined {
  const namespaces = config.linux?.security_context?.namespace_options;
  return namespaces?.pid === 'TARGET' ? parts.store.get(namespaces.target_id).pid : undefined;
}

/** Step 7: runc create under the pod's runtime and a monitor; the init's pid. */
async function runtimeCreate(parts: ContainerParts, record: ContainerRecord, spec: OciSpec, plan: CreatePlan, undo: UndoStack, log: Logger): Promise<number> {
  const { runtime } = parts.deps;
  const { config } = plan;
  undo.push('delete container', () => runtime.delete(record.id));
  const { pid } = await runtime.create({
    id: record.id,
    handler: handlerNameOf(plan.sandbox.record),
    spec,
    io: { logPath: record.logPath || undefined, terminal: config.tty, stdin: config.stdin, stdinOnce: config.stdin_once },
    log,
  });
  return pid;
}

/** Step 8: the record says created, with the init's pid and the user runc applied. */
async function markCreated(parts: ContainerParts, id: string, pid: number, spec: OciSpec): Promise<ContainerRecord> {
  const { uid, gid, additionalGids = [] } = spec.process.user;
  const created = await parts.store.update(
    id,
    (r) => {
      r.user = { uid, gid, additionalGids };
      r.pid = pid;
      r.phase = 'created';
    },
    'lifecycle',
  );
  return created!;
}

function newRecord(parts: ContainerParts, id: string, plan: CreatePlan, timings: Record<string, number>): ContainerRecord {
  const { config, sandbox, image } = plan;
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
    // Filled in as the steps run; written with the record's next save.
    timings,
  };
}

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

/** CRI's Signal enum names are signal names; RUNTIME_DEFAULT means the image's, or SIGTERM. */
function signalName(requested: string, imageStopSignal: string | undefined): string {
  if (requested && requested !== 'RUNTIME_DEFAULT') return requested;
  const image = (imageStopSignal ?? '').trim().toUpperCase();
  if (!image) return 'SIGTERM';
  if (/^\d+$/.test(image)) return image;
  return image.startsWith('SIG') ? image : `SIG${image}`;
}

/** The config with env values as text, so the record is plain JSON. */
function storableConfig(config: cri.ContainerConfig): cri.ContainerConfig {
  return {
    ...config,
    envs: config.envs.map((kv) => ({ key: kv.key, value: (Buffer.isBuffer(kv.value) ? kv.value.toString('utf8') : String(kv.value)) as unknown as Buffer })),
  };
}
