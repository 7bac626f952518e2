import path from 'node:path';
import type * as cri from '../api/cri.js';
import { applyCdiEdits } from '../cdi/apply.js';
import type { ResolvedEdits } from '../cdi/types.js';
import type { CgroupDriver } from '../config/config.js';
import { InvalidArgumentError } from '../errors.js';
import { MAX_PROGRAM_BYTES } from './validate.js';
import type { ImageConfig } from '../image/registry/manifest.js';
import type { PreparedDevices } from '../oci/devices.js';
import { applyConfinement, type ProcessConfinement } from '../oci/lsm.js';
import { baseSpec, cgroupsPathFor, clampOomScoreAdj, DEFAULT_PATH_ENV, putMount, setNamespace, useHostNamespace } from '../oci/spec.js';
import type { OciMount, OciSeccomp, OciSpec } from '../oci/spec-types.js';
import { TERMINAL_ENV } from '../oci/terminal-env.js';
import type { ResolvedUser } from '../oci/user.js';
import type { SandboxFiles } from '../sandbox/files.js';
import { rootfsPropagationFor, type PreparedMount } from './mounts.js';
import { ociResources } from './resources.js';

/** What a container takes from its pod. */
export interface PodContext {
  sandboxId: string;
  config: cri.PodSandboxConfig;
  namespaces: cri.NamespaceOption;
  netnsPath: string | undefined;
  /** The pause process, whose ipc, uts and pid namespaces containers join. */
  pausePid: number;
  shmPath: string | undefined;
  files: SandboxFiles;
  hostname: string;
  cgroupParent: string;
}

export interface ContainerSpecInput {
  containerId: string;
  config: cri.ContainerConfig;
  pod: PodContext;
  image: { ref: string; config: ImageConfig };
  rootfs: string;
  user: ResolvedUser;
  capabilities: string[];
  seccomp: OciSeccomp | undefined;
  devices: PreparedDevices;
  mounts: PreparedMount[];
  /** For pid namespace mode TARGET: the target container's init pid. */
  targetPid?: number;
  ownOomScoreAdj: number;
  cgroupDriver: CgroupDriver;
  /** The AppArmor profile and SELinux labels resolved for the container; absent: unconfined by either. */
  confinement?: ProcessConfinement;
  /** The requested CDI devices' edits, applied last so they win over what is above. */
  cdi?: ResolvedEdits;
}

/** The command line kubelet semantics give: command replaces ENTRYPOINT, args replace CMD. */
export function processArgs(config: cri.ContainerConfig, image: ImageConfig): string[] {
  const imageConfig = image.config ?? {};
  const command = config.command.length > 0 ? config.command : (imageConfig.Entrypoint ?? []);
  const args = config.args.length > 0 || config.command.length > 0 ? config.args : (imageConfig.Cmd ?? []);
  const all = [...command, ...args];
  if (all.length === 0) throw new InvalidArgumentError('no command specified: the container config and the image have none');
  // Checked here, where the program is known (config or image), as validation checks the
  // command's own first word; see MAX_PROGRAM_BYTES in validate.ts.
  const programBytes = Buffer.byteLength(all[0]!);
  if (programBytes > MAX_PROGRAM_BYTES) throw new InvalidArgumentError(`the program to run is ${programBytes} bytes, more than the ${MAX_PROGRAM_BYTES} the kernel takes for a path`);
  return all;
}

/**
 * Environment: HOSTNAME (and TERM=xterm for a terminal, as containerd and CRI-O give it),
 * then the image's, then the container's; a later value for a name wins.
 */
export function processEnv(config: cri.ContainerConfig, image: ImageConfig, hostname: string): string[] {
  const env = new Map<string, string>();
  const put = (entry: string): void => {
    const eq = entry.indexOf('=');
    env.set(eq < 0 ? entry : entry.slice(0, eq), entry);
  };
  put(`HOSTNAME=${hostname}`);
  if (config.tty) put(TERMINAL_ENV);
  const imageEnv = image.config?.Env ?? [];
  if (!imageEnv.some((e) => e.startsWith('PATH='))) put(DEFAULT_PATH_ENV);
  imageEnv.forEach(put);
  for (const kv of config.envs) put(`${kv.key}=${Buffer.isBuffer(kv.value) ? kv.value.toString('utf8') : String(kv.value)}`);
  return [...env.values()];
}

/**
 * The OCI spec of an application container. Everything that needs the host (users, devices,
 * mount sources, seccomp files) is resolved by the caller; this function only assembles.
 */
export function containerSpec(input: ContainerSpecInput): OciSpec {
  const { config, pod, image, user } = input;
  const security = config.linux?.security_context;
  const privileged = security?.privileged ?? false;
  const spec = baseSpec(input.rootfs);

  spec.process.args = processArgs(config, image.config);
  spec.process.env = processEnv(config, image.config, pod.hostname);
  spec.process.cwd = config.working_dir || image.config.config?.WorkingDir || '/';
  spec.process.terminal = config.tty;
  spec.process.user = { uid: user.uid, gid: user.gid, ...(user.additionalGids.length > 0 ? { additionalGids: user.additionalGids } : {}) };
  const caps = input.capabilities;
  const ambient = (security?.capabilities?.add_ambient_capabilities ?? []).map((c) => (c.toUpperCase().startsWith('CAP_') ? c.toUpperCase() : `CAP_${c.toUpperCase()}`));
  spec.process.capabilities = {
    bounding: caps,
    effective: [...caps],
    permitted: [...caps],
    ...(ambient.length > 0 ? { inheritable: ambient, ambient } : {}),
  };
  spec.process.noNewPrivileges = security?.no_new_privs ?? false;
  const oomScoreAdj = Number(config.linux?.resources?.oom_score_adj ?? 0);
  spec.process.oomScoreAdj = clampOomScoreAdj(oomScoreAdj, input.ownOomScoreAdj);

  spec.root.readonly = security?.readonly_rootfs ?? false;
  joinPodNamespaces(spec, input);
  spec.mounts = containerMounts(spec.mounts, input, privileged);
  const propagation = rootfsPropagationFor(input.mounts);
  if (propagation) spec.linux.rootfsPropagation = propagation;

  spec.linux.cgroupsPath = containerCgroupsPath(input.cgroupDriver, pod.cgroupParent, input.containerId);
  spec.linux.resources = {
    ...ociResources(config.linux?.resources ?? null),
    devices: [{ allow: false, access: 'rwm' }, ...input.devices.rules],
  };
  if (input.devices.devices.length > 0) spec.linux.devices = input.devices.devices;
  if (input.seccomp) spec.linux.seccomp = input.seccomp;
  applyConfinement(spec, input.confinement);

  if (privileged) {
    spec.linux.maskedPaths = [];
    spec.linux.readonlyPaths = [];
  } else {
    if (security?.masked_paths.length) spec.linux.maskedPaths = [...security.masked_paths];
    if (security?.readonly_paths.length) spec.linux.readonlyPaths = [...security.readonly_paths];
  }
  spec.annotations = containerAnnotations(input);
  if (input.cdi) applyCdiEdits(spec, input.cdi);
  return spec;
}

/**
 * The container's cgroupsPath below its pod's cgroup parent: what its spec gives runc, and
 * where its stats are read (the one place that works it out).
 */
export function containerCgroupsPath(driver: CgroupDriver, podCgroupParent: string, containerId: string): string {
  return cgroupsPathFor(driver, podCgroupParent, containerId);
}

/**
 * Network and IPC of the pod, its UTS (so the hostname is the pod's), and its PID namespace
 * unless the container asks for its own, the node's, or another container's.
 */
function joinPodNamespaces(spec: OciSpec, input: ContainerSpecInput): void {
  const { pod } = input;
  const own = input.config.linux?.security_context?.namespace_options;
  const pidMode = own?.pid ?? pod.namespaces.pid;
  const pauseNs = (type: string): string => `/proc/${pod.pausePid}/ns/${type}`;

  if (pod.namespaces.network === 'NODE') {
    useHostNamespace(spec, 'network');
    useHostNamespace(spec, 'uts');
  } else {
    setNamespace(spec, 'network', pod.netnsPath);
    setNamespace(spec, 'uts', pauseNs('uts'));
  }
  if (pod.namespaces.ipc === 'NODE') useHostNamespace(spec, 'ipc');
  else setNamespace(spec, 'ipc', pauseNs('ipc'));

  switch (pidMode) {
    case 'NODE':
      useHostNamespace(spec, 'pid');
      break;
    case 'CONTAINER':
      break;
    case 'TARGET':
      if (!input.targetPid) throw new InvalidArgumentError('pid namespace TARGET needs a running target container');
      setNamespace(spec, 'pid', `/proc/${input.targetPid}/ns/pid`);
      break;
    default:
      setNamespace(spec, 'pid', pauseNs('pid'));
  }
}

/**
 * The default mounts, the pod's /dev/shm and its hostname, hosts and resolv.conf (unless the
 * container mounts its own), then the container's mounts, parents before children.
 */
function containerMounts(defaults: OciMount[], input: ContainerSpecInput, privileged: boolean): OciMount[] {
  const { pod } = input;
  const readonly = input.config.linux?.security_context?.readonly_rootfs ?? false;
  const requested = new Set(input.mounts.map((m) => m.mount.destination));
  const spec = { mounts: defaults } as OciSpec;
  if (privileged) {
    // Privileged containers see /sys and cgroups writable, as on the host.
    spec.mounts = spec.mounts.map((m) =>
      m.destination === '/sys' || m.destination === '/sys/fs/cgroup' ? { ...m, options: (m.options ?? []).filter((o) => o !== 'ro').concat('rw') } : m,
    );
  }
  putMount(spec, {
    destination: '/dev/shm',
    type: 'bind',
    source: pod.shmPath ?? '/dev/shm',
    options: ['rbind', 'rprivate', 'rw'],
  });
  const files: Array<[string, string]> = [
    ['/etc/hostname', pod.files.hostname],
    ['/etc/hosts', pod.files.hosts],
    ['/etc/resolv.conf', pod.files.resolvConf],
  ];
  for (const [destination, source] of files) {
    if (requested.has(destination)) continue;
    putMount(spec, { destination, type: 'bind', source, options: ['rbind', 'rprivate', readonly ? 'ro' : 'rw'] });
  }
  for (const { mount } of input.mounts) putMount(spec, mount);
  return [...spec.mounts].sort((a, b) => depth(a.destination) - depth(b.destination));
}

function depth(destination: string): number {
  return path.posix.normalize(destination).split('/').filter(Boolean).length;
}

function containerAnnotations(input: ContainerSpecInput): Record<string, string> {
  const meta = input.pod.config.metadata!;
  return {
    ...input.config.annotations,
    'io.kubernetes.cri.container-type': 'container',
    'io.kubernetes.cri.container-name': input.config.metadata?.name ?? '',
    'io.kubernetes.cri.sandbox-id': input.pod.sandboxId,
    'io.kubernetes.cri.sandbox-name': meta.name,
    'io.kubernetes.cri.sandbox-namespace': meta.namespace,
    'io.kubernetes.cri.sandbox-uid': meta.uid,
    'io.kubernetes.cri.image-name': input.image.ref,
  };
}
