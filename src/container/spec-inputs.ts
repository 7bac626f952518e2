/**
 * Everything a container's spec needs from the host, the rootfs and its pod, resolved before
 * spec.ts assembles it: capabilities, user, devices, mount sources, seccomp, AppArmor and
 * SELinux, and the pod's namespaces and files.
 */
import type * as cri from '../api/cri.js';
import type { CdiInjection } from '../cdi/types.js';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import type { ImageRecord } from '../image/store/images.js';
import { allCapabilities, containerCapabilities } from '../oci/capabilities.js';
import { hostDevices, prepareDevices } from '../oci/devices.js';
import type { ProcessConfinement } from '../oci/lsm.js';
import { resolveSeccomp } from '../oci/seccomp.js';
import type { OciSpec } from '../oci/spec-types.js';
import { resolveUser, type ResolvedUser } from '../oci/user.js';
import { sandboxFilesIn } from '../sandbox/files.js';
import { podSelinuxOf, type Sandbox } from '../sandbox/sandbox.js';
import type { ContainerServiceDeps } from './deps.js';
import { prepareMounts } from './mounts.js';
import { containerSpec, type PodContext } from './spec.js';

/** What CreateContainer has made or found by the time the spec is built. */
export interface SpecRequest {
  id: string;
  config: cri.ContainerConfig;
  sandbox: Sandbox;
  image: ImageRecord;
  /** The mounted rootfs (its /etc/passwd and /etc/group name the user). */
  rootfs: string;
  /** Image volumes' host sources, by mount index. */
  volumeSources: Map<number, string>;
  cdi: CdiInjection;
  /** For pid namespace mode TARGET: the target container's init pid. */
  targetPid: number | undefined;
}

type SpecDeps = Pick<ContainerServiceDeps, 'config' | 'lsm' | 'ownOomScoreAdj' | 'sandboxes'>;

/** Resolve everything the spec needs from the host and the rootfs, then assemble it. */
export async function buildContainerSpec(deps: SpecDeps, request: SpecRequest): Promise<OciSpec> {
  const { id, config, sandbox, image, rootfs } = request;
  const security = config.linux?.security_context;
  const privileged = security?.privileged ?? false;
  if (privileged && !sandbox.record.config.linux?.security_context?.privileged) {
    throw new InvalidArgumentError('a privileged container needs a privileged sandbox');
  }
  const capabilities = privileged
    ? allCapabilities()
    : containerCapabilities({ add: security?.capabilities?.add_capabilities ?? [], drop: security?.capabilities?.drop_capabilities ?? [] });
  const [user, devices, mounts, seccomp] = await Promise.all([
    resolveContainerUser(config, image, rootfs),
    privileged ? hostDevices() : prepareDevices(config.devices),
    prepareMounts(config.mounts, request.volumeSources),
    resolveSeccomp({
      seccomp: security?.seccomp ?? null,
      seccompProfilePath: security?.seccomp_profile_path ?? '',
      privileged,
      capabilities,
      profileRoot: deps.config.seccompProfileRoot,
    }),
  ]);
  const confinement = await confinementOf(deps, config, sandbox, privileged);
  return containerSpec({
    containerId: id,
    config,
    pod: podContext(deps, sandbox),
    image: { ref: image.repoTags[0] ?? image.id, config: image.config },
    rootfs,
    user,
    capabilities,
    seccomp,
    devices,
    mounts,
    targetPid: request.targetPid,
    ownOomScoreAdj: deps.ownOomScoreAdj,
    cgroupDriver: deps.config.cgroupDriver,
    cdi: request.cdi.edits,
    confinement,
  });
}

/** The container's AppArmor profile, and SELinux labels at its pod's level. */
async function confinementOf(deps: SpecDeps, config: cri.ContainerConfig, sandbox: Sandbox, privileged: boolean): Promise<ProcessConfinement> {
  const security = config.linux?.security_context;
  const field = 'config.linux.security_context';
  const apparmorProfile = await deps.lsm.apparmor.profileFor({
    profile: security?.apparmor ?? null,
    legacy: security?.apparmor_profile ?? '',
    privileged,
    field: `${field}.apparmor`,
  });
  const pod = podSelinuxOf(sandbox.record);
  if (security?.namespace_options?.pid === 'NODE') pod.sharesHostProcesses = true;
  const selinux = deps.lsm.selinux.containerLabels(pod, security?.selinux_options ?? null, privileged, `${field}.selinux_options`);
  return { apparmorProfile, selinux };
}

/**
 * RunAsUser (with RunAsGroup) or RunAsUsername, else the image's User; groups from the
 * image's /etc/group, then SupplementalGroups (unless the policy is Strict).
 */
async function resolveContainerUser(config: cri.ContainerConfig, image: ImageRecord, rootfs: string): Promise<ResolvedUser> {
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

function podContext(deps: SpecDeps, sandbox: Sandbox): PodContext {
  const { record } = sandbox;
  if (!record.pausePid) throw new FailedPreconditionError(`sandbox ${record.id} has no running pause container`);
  return {
    sandboxId: record.id,
    config: record.config,
    namespaces: record.namespaces,
    netnsPath: record.netnsPath,
    pausePid: record.pausePid,
    shmPath: record.shmPath,
    files: sandboxFilesIn(deps.sandboxes.dirOf(record.id)),
    hostname: record.hostname,
    cgroupParent: record.cgroupParent,
  };
}
