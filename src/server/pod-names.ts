import type { ContainerService } from '../container/service.js';
import type { SandboxService } from '../sandbox/service.js';
import type { CallIds, PodNames } from './wrap.js';

/**
 * The pod a call is about, named as an operator knows it: a container's own pod first (its
 * id is the more precise), else the sandbox id's. Prefixes resolve as the handlers resolve
 * them; unknown ids give nothing.
 */
export function podNamesLookup(sandboxes: SandboxService, containers: ContainerService): (ids: CallIds) => PodNames | undefined {
  return (ids) => {
    const sandboxId = (ids.containerId && containers.find(ids.containerId)?.sandboxId) || ids.podSandboxId;
    const metadata = sandboxId ? sandboxes.find(sandboxId)?.record.config.metadata : undefined;
    return metadata ? { podName: metadata.name, podNamespace: metadata.namespace } : undefined;
  };
}
