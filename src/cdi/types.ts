/**
 * The Container Device Interface as tscri sees it: a spec file's content after validation
 * (field names are CDI's own), what a container asks for, and what the container service
 * depends on (CdiInjector), so it never reaches into the registry.
 */

export type CdiHookName = 'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop';
export const CDI_HOOK_NAMES: readonly CdiHookName[] = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];

export type CdiDeviceType = 'b' | 'c' | 'u' | 'p';

export interface CdiDeviceNode {
  /** Path inside the container. */
  path: string;
  /** Node on the host; `path` when the spec gives none. */
  hostPath?: string;
  type?: CdiDeviceType;
  major?: number;
  minor?: number;
  fileMode?: number;
  /** r, w and m; 'none' grants no cgroup access at all. */
  permissions?: string;
  uid?: number;
  gid?: number;
}

export interface CdiMount {
  hostPath: string;
  containerPath: string;
  options?: string[];
  type?: string;
}

export interface CdiHook {
  hookName: CdiHookName;
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface CdiIntelRdt {
  closID?: string;
  l3CacheSchema?: string;
  memBwSchema?: string;
  schemata?: string[];
  enableMonitoring?: boolean;
}

export interface CdiNetDevice {
  hostInterfaceName: string;
  name: string;
}

export interface CdiContainerEdits {
  env?: string[];
  deviceNodes?: CdiDeviceNode[];
  mounts?: CdiMount[];
  hooks?: CdiHook[];
  additionalGids?: number[];
  intelRdt?: CdiIntelRdt;
  netDevices?: CdiNetDevice[];
}

export interface CdiDevice {
  name: string;
  annotations?: Record<string, string>;
  containerEdits: CdiContainerEdits;
}

export interface CdiSpec {
  cdiVersion: string;
  /** `vendor/class`; a device's qualified name is `kind=name`. */
  kind: string;
  annotations?: Record<string, string>;
  devices: CdiDevice[];
  containerEdits?: CdiContainerEdits;
}

/** One device a container asks for, with the request field that named it (for errors). */
export interface CdiRequest {
  /** Fully qualified: `vendor.com/class=name`. */
  name: string;
  /** `config.CDI_devices[0].name` or `config.annotations["cdi.k8s.io/x"]`. */
  field: string;
  source: 'config' | 'annotation';
}

/** A device node with what the host told about it: type and numbers are known. */
export interface ResolvedDeviceNode {
  path: string;
  hostPath: string;
  type: CdiDeviceType;
  major: number;
  minor: number;
  fileMode?: number;
  permissions?: string;
  uid?: number;
  gid?: number;
}

/** Every edit of the requested devices (spec-level ones once per spec), in application order. */
export interface ResolvedEdits {
  env: string[];
  deviceNodes: ResolvedDeviceNode[];
  mounts: CdiMount[];
  hooks: CdiHook[];
  additionalGids: number[];
  /** The last one given wins. */
  intelRdt?: CdiIntelRdt;
}

export interface CdiInjection {
  /** The qualified names applied, in order. */
  devices: string[];
  edits: ResolvedEdits;
}

/** What CreateContainer needs from CDI: the edits for its requests, or a typed error. */
export interface CdiInjector {
  resolve(requests: readonly CdiRequest[]): Promise<CdiInjection>;
}

export function emptyEdits(): ResolvedEdits {
  return { env: [], deviceNodes: [], mounts: [], hooks: [], additionalGids: [] };
}
