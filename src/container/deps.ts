import type { Logger } from 'pino';
import type * as wire from '../api/wire.js';
import type { CdiInjector } from '../cdi/types.js';
import type { Config } from '../config/config.js';
import type { ImageService } from '../image/service.js';
import type { DaemonLayout } from '../layout.js';
import type { RuntimeHandlers } from '../oci/handlers.js';
import type { SecurityModules } from '../oci/lsm.js';
import type { OciRuntime } from '../oci/runtime.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { NameRegistry } from '../persistence/names.js';
import type { KeyedMutex } from '../util/keyed-mutex.js';
import type { ContainerRecord } from './container.js';
import type { ContainerEvents, ContainerEventType } from './events.js';
import type { ContainerMounts } from './host.js';
import type { ContainerStore } from './store.js';

/** What containers need of the image service: an image by name, and its layers held for them. */
export type ContainerImages = Pick<ImageService, 'get' | 'layerDirs' | 'retainLayers' | 'releaseLayers'>;

/** What containers need of their pods (the sandbox service). */
export interface PodLookup {
  /** The pod whose id is, or uniquely starts with, `idOrPrefix`; NotFound otherwise. */
  get(idOrPrefix: string): Readonly<Sandbox>;
  /** Like get, but undefined when nothing matches. */
  find(idOrPrefix: string): Readonly<Sandbox> | undefined;
  criStatus(sandbox: Readonly<Sandbox>): wire.PodSandboxStatus;
  /** The directory of the pod's shared files (hosts, resolv.conf, hostname). */
  dirOf(id: string): string;
}

export interface ContainerServiceDeps {
  config: Config;
  /** Where a container's directories are (its record, rootfs, writable layer, image volumes). */
  layout: DaemonLayout;
  /** The OCI runtimes pods run on; a container runs on its pod's. */
  handlers: RuntimeHandlers;
  runtime: OciRuntime;
  images: ContainerImages;
  sandboxes: PodLookup;
  events: ContainerEvents;
  /** The node's CDI devices, resolved for CreateContainer's CDI_devices and cdi.k8s.io annotations. */
  cdi: CdiInjector;
  ownOomScoreAdj: number;
  /** AppArmor and SELinux as the host has them (detected at start). */
  lsm: SecurityModules;
  log: Logger;
  /** Overlay and image mounts; the host's own by default (tests substitute a fake). */
  mounts?: ContainerMounts;
}

/** What the container service's parts (create, lifecycle, status) share. */
export interface ContainerParts {
  readonly deps: Readonly<ContainerServiceDeps> & { readonly mounts: ContainerMounts };
  readonly store: ContainerStore;
  /** Reserved `<name>_<pod name>_<pod namespace>_<pod uid>_<attempt>` names. */
  readonly names: NameRegistry;
  /** One lock per container id: its lifecycle steps run one at a time. */
  readonly locks: KeyedMutex;
  /** Send a container event, with the pod's status and its containers'. */
  emit(record: Readonly<ContainerRecord>, type: ContainerEventType): void;
}
