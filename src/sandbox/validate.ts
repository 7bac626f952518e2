import type * as cri from '../api/cri.js';
import { InvalidArgumentError } from '../errors.js';

/** The namespace options a sandbox asked for, with the defaults of an unset security context. */
export function namespaceOptionsOf(config: cri.PodSandboxConfig): cri.NamespaceOption {
  const options = config.linux?.security_context?.namespace_options;
  return {
    network: options?.network ?? 'POD',
    pid: options?.pid ?? 'POD',
    ipc: options?.ipc ?? 'POD',
    target_id: options?.target_id ?? '',
    userns_options: options?.userns_options ?? null,
  };
}

/** Reject what RunPodSandbox cannot serve, naming the missing or bad field. */
export function validateSandboxConfig(config: cri.PodSandboxConfig | null): asserts config is cri.PodSandboxConfig {
  if (!config) throw new InvalidArgumentError('sandbox config is required');
  const meta = config.metadata;
  if (!meta) throw new InvalidArgumentError('sandbox config must have metadata');
  for (const field of ['name', 'namespace', 'uid'] as const) {
    if (!meta[field]) throw new InvalidArgumentError(`sandbox metadata.${field} is required`);
  }
  // attempt is a proto3 uint32: an unset attempt and attempt 0 (kubelet's first) are the
  // same on the wire, so there is nothing further to check for it.
  for (const mapping of config.port_mappings) {
    if (mapping.container_port <= 0 || mapping.container_port > 65535) {
      throw new InvalidArgumentError(`port mapping container_port ${mapping.container_port} is out of range`);
    }
    if (mapping.host_port < 0 || mapping.host_port > 65535) {
      throw new InvalidArgumentError(`port mapping host_port ${mapping.host_port} is out of range`);
    }
  }
  const userns = config.linux?.security_context?.namespace_options?.userns_options;
  if (userns && userns.mode !== 'NODE' && userns.mode !== 'POD') {
    throw new InvalidArgumentError(`user namespace mode ${userns.mode} is not supported for sandboxes`);
  }
}

/** The reserved name of a pod: unique per name, namespace, uid and attempt. */
export function sandboxNameOf(meta: cri.PodSandboxMetadata): string {
  return [meta.name, meta.namespace, meta.uid, String(meta.attempt)].join('_');
}
