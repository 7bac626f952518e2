import type * as cri from '../../../src/api/cri.js';
import type { SandboxRecord } from '../../../src/sandbox/sandbox.js';

/**
 * A ready pod's record, `web-0` in namespace `ns`, as service tests need one without running
 * RunPodSandbox: its config's fields and the record's own replaced by what a test gives.
 */
export function readyPodRecord(
  id: string,
  fields: Pick<SandboxRecord, 'cgroupParent' | 'cgroupsPath' | 'pausePid'>,
  config: Record<string, unknown> = {},
): SandboxRecord {
  return {
    version: 1,
    id,
    name: 'web-0_ns_uid_0',
    config: {
      metadata: { name: 'web-0', namespace: 'ns', uid: 'uid', attempt: 0 },
      labels: {},
      annotations: {},
      linux: null,
      ...config,
    } as unknown as cri.PodSandboxConfig,
    runtimeHandler: '',
    createdAt: '1',
    phase: 'ready',
    namespaces: { network: 'POD', pid: 'POD', ipc: 'POD' } as cri.NamespaceOption,
    netnsPath: '/run/netns/cni-test',
    hostname: 'web-0',
    sandboxImage: 'tscri/pause:builtin',
    timings: {},
    ...fields,
  };
}
