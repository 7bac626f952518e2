import type * as cri from '../api/cri.js';
import type { SandboxImage } from '../image/builtin-pause.js';
import { baseSpec, clampOomScoreAdj, putMount, setNamespace, useHostNamespace } from '../oci/spec.js';
import { applyConfinement, type ProcessConfinement } from '../oci/lsm.js';
import type { SeccompRequest } from '../oci/seccomp.js';
import type { OciSeccomp, OciSpec } from '../oci/spec-types.js';

/** The pause container asks to be among the last processes the OOM killer picks. */
const PAUSE_OOM_SCORE_ADJ = -998;
/** Pause needs almost no CPU; a minimal share keeps it from competing with the pod. */
const PAUSE_CPU_SHARES = 2;

export interface PauseSpecInput {
  sandboxId: string;
  config: cri.PodSandboxConfig;
  namespaces: cri.NamespaceOption;
  image: SandboxImage;
  hostname: string;
  /** The pod's network namespace; undefined for host-network pods. */
  netnsPath: string | undefined;
  /** The pod's shared /dev/shm on the host; undefined when the pod uses the host's IPC. */
  shmPath: string | undefined;
  cgroupsPath: string;
  /** The daemon's own oom_score_adj, below which the kernel refuses to go. */
  ownOomScoreAdj: number;
  /** The filter resolved from pauseSeccompRequest; undefined runs pause unconfined. */
  seccomp: OciSeccomp | undefined;
  /** The pod's AppArmor profile and SELinux labels; absent: unconfined by either. */
  confinement?: ProcessConfinement;
}

/**
 * Which seccomp filter the pause container gets, decided as containerd 2.x decides it: from
 * the pod's `seccomp` field, else its deprecated `seccomp_profile_path`, and a pod that names
 * neither runs pause unconfined (containerd's `unset_seccomp_profile` defaults to none). The
 * kubelet always asks for RuntimeDefault for the sandbox, so real pods get the filter. Pause
 * holds no capabilities, so no capability-conditional rule applies; a privileged pod stays
 * unconfined. A Localhost profile is read under the same confinement as a container's.
 */
export function pauseSeccompRequest(config: cri.PodSandboxConfig, profileRoot: string): SeccompRequest {
  const security = config.linux?.security_context;
  return {
    seccomp: security?.seccomp ?? null,
    seccompProfilePath: security?.seccomp_profile_path ?? '',
    privileged: security?.privileged ?? false,
    capabilities: [],
    profileRoot,
  };
}

/**
 * The OCI spec of a pod's pause container: it holds the pod's network, IPC, UTS and (in
 * POD mode) PID namespaces for the app containers to join, and does nothing else, so it
 * runs with no capabilities, no new privileges and a read-only root.
 */
export function pauseSpec(input: PauseSpecInput): OciSpec {
  const { config, namespaces, image } = input;
  const spec = baseSpec(image.rootfs);
  spec.root.readonly = true;
  spec.process = {
    user: image.user,
    args: image.args,
    env: image.env.length > 0 ? image.env : spec.process.env,
    cwd: image.cwd || '/',
    capabilities: { bounding: [], effective: [], permitted: [] },
    noNewPrivileges: true,
    oomScoreAdj: clampOomScoreAdj(PAUSE_OOM_SCORE_ADJ, input.ownOomScoreAdj),
  };

  const hostNetwork = namespaces.network === 'NODE';
  if (hostNetwork) {
    useHostNamespace(spec, 'network');
    useHostNamespace(spec, 'uts');
  } else {
    setNamespace(spec, 'network', input.netnsPath);
    spec.hostname = input.hostname;
  }
  if (namespaces.ipc === 'NODE') useHostNamespace(spec, 'ipc');
  if (namespaces.pid === 'NODE') useHostNamespace(spec, 'pid');

  putMount(spec, {
    destination: '/dev/shm',
    type: 'bind',
    source: input.shmPath ?? '/dev/shm',
    options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'],
  });

  spec.linux.cgroupsPath = input.cgroupsPath;
  if (input.seccomp) spec.linux.seccomp = input.seccomp;
  applyConfinement(spec, input.confinement);
  spec.linux.resources = { ...spec.linux.resources, cpu: { shares: PAUSE_CPU_SHARES } };
  const sysctls = config.linux?.sysctls ?? {};
  if (Object.keys(sysctls).length > 0) spec.linux.sysctl = { ...sysctls };
  spec.annotations = sandboxAnnotations(input.sandboxId, config);
  return spec;
}

/** Annotations that let OCI hooks and operators tell a pause container apart and find its pod. */
function sandboxAnnotations(sandboxId: string, config: cri.PodSandboxConfig): Record<string, string> {
  const meta = config.metadata!;
  return {
    'io.kubernetes.cri.container-type': 'sandbox',
    'io.kubernetes.cri.sandbox-id': sandboxId,
    'io.kubernetes.cri.sandbox-name': meta.name,
    'io.kubernetes.cri.sandbox-namespace': meta.namespace,
    'io.kubernetes.cri.sandbox-uid': meta.uid,
    'io.kubernetes.cri.sandbox-log-directory': config.log_directory,
  };
}
