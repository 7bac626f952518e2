import type { Logger } from 'pino';
import type * as wire from '../api/wire.js';
import type { Config } from '../config/config.js';
import type { ContainerEvents } from '../container/events.js';
import type { SandboxImage } from '../image/builtin-pause.js';
import type { DaemonLayout } from '../layout.js';
import type { NetworkManager } from '../network/cni/types.js';
import type { RuntimeHandlers } from '../oci/handlers.js';
import type { SecurityModules } from '../oci/lsm.js';
import type { OciRuntime } from '../oci/runtime.js';
import type { NameRegistry } from '../persistence/names.js';
import type { SandboxHost } from './host.js';
import type { SandboxStore } from './store.js';

/** The containers of pods, as StopPodSandbox, RemovePodSandbox and pod events need them. */
export interface PodMembers {
  stopAllIn(sandboxId: string, log: Logger): Promise<void>;
  removeAllIn(sandboxId: string, log: Logger): Promise<void>;
  statusesIn(sandboxId: string): wire.ContainerStatus[];
}

export interface SandboxServiceDeps {
  config: Config;
  /** Where a sandbox's record, files and volatile state (shm) live. */
  layout: DaemonLayout;
  /** Where the pod's own lifecycle events go, beside its containers' (evented PLEG). */
  events: ContainerEvents;
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
  /** Netns, shm and cgroup writes; the host's own by default (unit tests substitute a fake). */
  host?: SandboxHost;
}

/** What the sandbox service's parts (run, teardown) share. */
export interface SandboxParts {
  readonly deps: Readonly<SandboxServiceDeps> & { readonly host: SandboxHost };
  readonly store: SandboxStore;
  /** Reserved `<name>_<namespace>_<uid>_<attempt>` names. */
  readonly names: NameRegistry;
}
