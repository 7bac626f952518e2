/**
 * RunPodSandbox as named steps that take and return values:
 *
 *   reserveName → holdSelinuxLevel → sandboxImage → saveRecord
 *     → makePod:  netns ──┬── loopback
 *                         ├── network (CNI ADD)
 *                 files ──┤
 *                 shm ────┴── pause
 *     → markReady
 *
 * The record is written (durably) before any side effect it names: the netns and shm paths
 * are chosen with it, so a crash at any later point leaves everything findable by the
 * record, and Stop/Remove finish it. Undos are registered in the order above, before the
 * overlap starts, and each is armed when its step starts (a step never tried has nothing to
 * undo; a half-made one is undone too), so a failure unwinds in one fixed order: pause,
 * CNI DEL, shm, netns, record, SELinux level, name.
 */
import type { Logger } from 'pino';
import type * as cri from '../api/cri.js';
import type { Config } from '../config/config.js';
import { FailedPreconditionError, InternalError, InvalidArgumentError, logLevelOf } from '../errors.js';
import { expandSlice } from '../cgroups/paths.js';
import type { SandboxImage } from '../image/builtin-pause.js';
import type { RuntimeHandler } from '../oci/handlers.js';
import type { ProcessConfinement } from '../oci/lsm.js';
import { resolveSeccomp } from '../oci/seccomp.js';
import { cgroupsPathFor } from '../oci/spec.js';
import type { OciSeccomp } from '../oci/spec-types.js';
import { allOrFirstError } from '../util/parallel.js';
import { nowNanos, stepTimer } from '../util/time.js';
import { UndoStack } from '../util/undo.js';
import { quote } from '../validation/fields.js';
import type { SandboxParts, SandboxServiceDeps } from './deps.js';
import { sandboxFilesIn, writeSandboxFiles } from './files.js';
import { attachmentOf, networkOf } from './network.js';
import { pauseSeccompRequest, pauseSpec } from './pause-spec.js';
import {
  SANDBOX_RECORD_VERSION,
  handlerNameOf,
  isHostNetwork,
  podSelinuxOf,
  type Sandbox,
  type SandboxNetwork,
  type SandboxRecord,
} from './sandbox.js';
import { removeRecord } from './teardown.js';
import { namespaceOptionsOf, sandboxNameOf } from './validate.js';

/** The handler a RunPodSandbox named ("" for the default), and the configured one that serves it. */
export interface HandlerChoice {
  asked: string;
  name: string;
}

/** What confines the pause process, worked out before the pod is made. */
export interface PauseProfiles {
  seccomp: OciSeccomp | undefined;
  apparmorProfile: string | undefined;
}

/** A RunPodSandbox as checked before anything is made. */
export interface RunRequest {
  id: string;
  config: cri.PodSandboxConfig;
  handler: HandlerChoice;
  profiles: PauseProfiles;
}

/** What makePod's overlapped steps made, written into the record as it becomes ready. */
interface PodMade {
  hostname: string;
  network: SandboxNetwork | undefined;
  pausePid: number;
}

type Step = ReturnType<typeof stepTimer>;

/**
 * A pod in a user namespace of its own cannot be made here without idmapped mounts: refuse
 * it clearly rather than run it in the host's user namespace, which is what it asked not to.
 */
export function checkFeatures(config: cri.PodSandboxConfig, handler: RuntimeHandler, driver: Config['cgroupDriver']): void {
  checkCgroupParentForDriver(config.linux?.cgroup_parent ?? '', driver);
  const userns = config.linux?.security_context?.namespace_options?.userns_options;
  if (userns?.mode === 'POD' && !handler.features.userNamespaces) {
    throw new FailedPreconditionError(
      `user namespaces for pods (userns_options mode POD) are not available here (runtime handler ${handler.name}): ${handler.features.missing.userNamespaces}`,
    );
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

/**
 * The pause process's seccomp filter and AppArmor profile, from the pod's security context.
 * Worked out before anything is made: a Localhost profile that is missing or not loaded is
 * the request's mistake, refused while there is nothing to undo.
 */
export async function pauseProfiles(config: cri.PodSandboxConfig, deps: Pick<SandboxServiceDeps, 'config' | 'lsm'>): Promise<PauseProfiles> {
  const security = config.linux?.security_context;
  const [seccomp, apparmorProfile] = await Promise.all([
    resolveSeccomp(pauseSeccompRequest(config, deps.config.seccompProfileRoot)),
    deps.lsm.apparmor.profileFor({
      profile: security?.apparmor ?? null,
      legacy: '',
      privileged: security?.privileged ?? false,
      field: 'config.linux.security_context.apparmor',
    }),
  ]);
  return { seccomp, apparmorProfile };
}

/** Make the pod; on failure undo what was made and rethrow. Resolves with the ready sandbox. */
export async function runPodSandbox(parts: SandboxParts, request: RunRequest, log: Logger): Promise<Readonly<Sandbox>> {
  const undo = new UndoStack();
  const timings: Record<string, number> = {};
  const step = stepTimer(timings, 'RunPodSandbox');
  try {
    const name = reserveName(parts, request, undo);
    const selinuxLevel = holdSelinuxLevel(parts, request.config, undo);
    const image = await step('sandboxImage', () => parts.deps.sandboxImage());
    const record = newRecord(parts, request, { name, selinuxLevel, sandboxImage: image.ref, timings });
    await step('record', () => saveRecord(parts, record, undo));
    const made = await makePod(parts, record, image, request.profiles, undo, step);
    const sandbox = await markReady(parts, record.id, made);
    undo.commit();
    log.info({ ip: made.network?.ip, timings }, 'sandbox ready');
    return sandbox;
  } catch (err) {
    log[logLevelOf(err)]({ err }, 'RunPodSandbox failed; undoing');
    const left = await undo.unwind(log);
    if (left.length > 0) {
      // What could not be undone (a CNI DEL that failed, say) stays named by the record:
      // the sandbox is NOTREADY, and the kubelet's Stop and Remove retry the teardown.
      log.error({ left }, 'RunPodSandbox could not undo everything; the sandbox stays NOTREADY for StopPodSandbox and RemovePodSandbox to finish');
    }
    throw err;
  }
}

/** `<name>_<namespace>_<uid>_<attempt>`, held until the record is forgotten. */
function reserveName(parts: SandboxParts, request: RunRequest, undo: UndoStack): string {
  const name = sandboxNameOf(request.config.metadata!);
  parts.names.reserve(name, request.id);
  undo.push('release name', async () => parts.names.release(name, request.id), { onlyIfClean: true });
  return name;
}

/** The pod's SELinux level, held from here until its record is forgotten. */
function holdSelinuxLevel(parts: SandboxParts, config: cri.PodSandboxConfig, undo: UndoStack): string | undefined {
  const { selinux } = parts.deps.lsm;
  const level = selinux.podLevel(config.linux?.security_context?.selinux_options ?? null, 'config.linux.security_context.selinux_options');
  undo.push('release SELinux level', async () => selinux.release(level), { onlyIfClean: true });
  return level;
}

function newRecord(
  parts: SandboxParts,
  { id, config, handler }: RunRequest,
  chosen: Pick<SandboxRecord, 'name' | 'selinuxLevel' | 'sandboxImage' | 'timings'>,
): SandboxRecord {
  const { config: daemon, layout, host } = parts.deps;
  const namespaces = namespaceOptionsOf(config);
  const cgroupParent = config.linux?.cgroup_parent || daemon.defaultCgroupParent;
  const record: SandboxRecord = {
    version: SANDBOX_RECORD_VERSION,
    id,
    name: chosen.name,
    config,
    runtimeHandler: handler.asked,
    ociRuntime: handler.name,
    createdAt: nowNanos(),
    phase: 'creating',
    namespaces,
    netnsPath: namespaces.network === 'NODE' ? undefined : host.newNetnsPath(),
    shmPath: namespaces.ipc === 'NODE' ? undefined : layout.sandboxShm(id),
    hostname: '',
    cgroupParent,
    cgroupsPath: cgroupsPathFor(daemon.cgroupDriver, cgroupParent, id),
    sandboxImage: chosen.sandboxImage,
    timings: chosen.timings,
  };
  if (chosen.selinuxLevel !== undefined) record.selinuxLevel = chosen.selinuxLevel;
  return record;
}

/**
 * Write the record and index the sandbox (NOTREADY while `creating`). Its undo removes the
 * record only: the name and the SELinux level have undos of their own, after it.
 */
async function saveRecord(parts: SandboxParts, record: SandboxRecord, undo: UndoStack): Promise<void> {
  await parts.store.add(record);
  undo.push('remove record', async () => void (await removeRecord(parts, record.id)), { onlyIfClean: true });
}

/**
 * The netns, the pod's files and its shm do not depend on one another; the network needs
 * only the netns, the pause container all three (pause only sleeps: it may start before its
 * network is attached). This is the one place where steps overlap.
 */
async function makePod(parts: SandboxParts, record: SandboxRecord, image: SandboxImage, profiles: PauseProfiles, undo: UndoStack, step: Step): Promise<PodMade> {
  const { host, network, runtime } = parts.deps;
  const { id, netnsPath, shmPath } = record;
  const started = new Set<'cni' | 'pause'>();
  if (netnsPath) undo.push('remove netns', () => host.removeNetns(netnsPath));
  if (shmPath) undo.push('unmount shm', () => host.unmountShm(shmPath));
  // Armed before the ADD: a chain that fails halfway leaves state only DEL can undo.
  if (netnsPath) {
    undo.push('CNI DEL', async () => {
      if (started.has('cni')) await network.tearDown(attachmentOf(record));
    });
  }
  undo.push('delete pause container', async () => {
    if (started.has('pause')) await runtime.delete(id);
  });

  const netns = netnsPath ? step('netns', () => host.createNetns(netnsPath)) : Promise.resolve();
  const files = step('files', () => writeSandboxFiles(sandboxFilesIn(parts.store.dirOf(id)), record.config, isHostNetwork(record)));
  const shm = shmPath ? step('shm', () => host.mountShm(shmPath)) : Promise.resolve();
  const loopback = netnsPath && netns.then(() => step('loopback', () => host.bringUpLoopback(netnsPath)));
  const attached = netns.then(() =>
    step('cni', async () => {
      started.add('cni');
      return attachNetwork(parts, record);
    }),
  );
  const pausePid = Promise.all([files, netns, shm]).then(([hostname]) =>
    step('pauseRun', async () => {
      const spec = pauseSpecOf(parts, record, hostname, image, profiles);
      started.add('pause');
      return (await runtime.run({ id, handler: handlerNameOf(record), spec })).pid;
    }),
  );
  await allOrFirstError([netns, files, shm, loopback, attached, pausePid]);
  return { hostname: await files, network: await attached, pausePid: await pausePid };
}

/** CNI ADD; undefined for a pod on the host's network. */
async function attachNetwork(parts: SandboxParts, record: SandboxRecord): Promise<SandboxNetwork | undefined> {
  if (!record.netnsPath) return undefined;
  return networkOf(await parts.deps.network.setUp(attachmentOf(record)));
}

/** The pause container's spec; it needs no monitor (see oci/unmonitored.ts). */
function pauseSpecOf(parts: SandboxParts, record: SandboxRecord, hostname: string, image: SandboxImage, profiles: PauseProfiles) {
  return pauseSpec({
    sandboxId: record.id,
    config: record.config,
    namespaces: record.namespaces,
    image,
    hostname,
    netnsPath: record.netnsPath,
    shmPath: record.shmPath,
    cgroupsPath: record.cgroupsPath,
    ownOomScoreAdj: parts.deps.ownOomScoreAdj,
    seccomp: profiles.seccomp,
    confinement: pauseConfinement(parts, record, profiles),
  });
}

/** The pause process's confinement: its profiles, and SELinux labels at the pod's level. */
function pauseConfinement(parts: SandboxParts, record: SandboxRecord, profiles: PauseProfiles): ProcessConfinement {
  const privileged = record.config.linux?.security_context?.privileged ?? false;
  const selinux = parts.deps.lsm.selinux.pauseLabels(podSelinuxOf(record), privileged);
  return { apparmorProfile: profiles.apparmorProfile, selinux };
}

/** Record what was made and the phase `ready` (a lifecycle write: a reboot ends the pod anyway). */
async function markReady(parts: SandboxParts, id: string, made: PodMade): Promise<Readonly<Sandbox>> {
  const sandbox = await parts.store.update(
    id,
    (record) => {
      record.hostname = made.hostname;
      record.network = made.network;
      record.pausePid = made.pausePid;
      record.phase = 'ready';
    },
    'lifecycle',
  );
  if (!sandbox) throw new InternalError(`sandbox ${id} went away while it was being made`);
  return sandbox;
}
