import type * as cri from '../api/cri.js';
import { NETNS_DIR } from '../network/netns.js';
import { ABSOLUTE_PATH, OBJECT_ID, anyObject, array, decimal, dictionary, integer, literal, nullable, object, optional, string, type Schema } from '../persistence/schema.js';
import { SANDBOX_RECORD_VERSION, type SandboxRecord } from './sandbox.js';

const MODE = literal('POD', 'CONTAINER', 'NODE', 'TARGET');
/** Only a netns tscri named: teardown deletes it. */
const NETNS_PATH = new RegExp(`^${NETNS_DIR}/cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`);

/** The parts of the stored CRI config the daemon reads after a restart; the rest is passed on. */
const storedConfig = object({
  metadata: object({ name: string(), namespace: string(), uid: string(), attempt: integer(0, 2 ** 32 - 1) }),
  hostname: string(),
  log_directory: string(),
  labels: dictionary(string()),
  annotations: dictionary(string()),
  port_mappings: array(anyObject),
});

const checkSandboxRecord = object({
  version: literal(SANDBOX_RECORD_VERSION),
  id: string(OBJECT_ID, 'a sandbox id'),
  name: string(),
  config: storedConfig,
  runtimeHandler: string(),
  ociRuntime: optional(string(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a runtime handler name')),
  createdAt: decimal,
  phase: literal('creating', 'ready', 'stopped'),
  namespaces: object({ network: MODE, pid: MODE, ipc: MODE, target_id: string() }),
  netnsPath: optional(string(NETNS_PATH, `a netns tscri made (${NETNS_DIR}/cni-<uuid>)`)),
  shmPath: optional(string(/^\/(?!.*(^|\/)\.\.(\/|$)).*\/sandboxes\/[0-9a-f]{64}\/shm$/, "the sandbox's own shm directory")),
  hostname: string(),
  cgroupParent: string(),
  cgroupsPath: string(),
  sandboxImage: string(),
  network: optional(object({ ip: string(), additionalIps: array(string()), networkName: string(), networkSource: string(), cniResult: optional(anyObject) })),
  pausePid: optional(integer(1, 2 ** 22)),
  selinuxLevel: optional(string(/^s\d+(-s\d+)?(:c\d+(\.c\d+)?(,c\d+(\.c\d+)?)*)?$/, 'an SELinux level')),
  resources: optional(object({ resources: nullable(anyObject), overhead: nullable(anyObject) })),
  timings: dictionary((v, f) => {
    if (typeof v !== 'number') throw new Error(`${f}: expected a number`);
    return v;
  }),
});

/** A sandbox record as read back from disk, checked before recovery acts on any of it. */
export const sandboxRecordSchema: Schema<SandboxRecord> = (value, field) => {
  const record = checkSandboxRecord(value, field);
  if (record.shmPath && !record.shmPath.includes(`/sandboxes/${record.id}/`)) {
    throw new Error('shmPath: belongs to another sandbox');
  }
  if (!ABSOLUTE_PATH.test(record.cgroupParent) && record.cgroupParent !== '' && !record.cgroupParent.endsWith('.slice')) {
    throw new Error('cgroupParent: is neither a path nor a systemd slice');
  }
  return record as unknown as SandboxRecord & { config: cri.PodSandboxConfig };
};
