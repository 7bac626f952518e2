import { OBJECT_ID, anyObject, array, decimal, dictionary, integer, literal, nullable, object, optional, string, boolean, type Schema } from '../persistence/schema.js';
import { CONTAINER_RECORD_VERSION, type ContainerRecord } from './container.js';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** The parts of the stored CRI config the daemon reads after a restart; the rest is passed on. */
const storedConfig = object({
  metadata: object({ name: string(), attempt: integer(0, 2 ** 32 - 1) }),
  labels: dictionary(string()),
  annotations: dictionary(string()),
  tty: boolean,
  stdin: boolean,
  stdin_once: boolean,
});

const checkContainerRecord = object({
  version: literal(CONTAINER_RECORD_VERSION),
  id: string(OBJECT_ID, 'a container id'),
  sandboxId: string(OBJECT_ID, 'a sandbox id'),
  name: string(),
  config: storedConfig,
  image: object({ requested: string(), id: string(DIGEST, 'an image id'), name: string(), layers: array(string(DIGEST, 'a layer diff_id')) }),
  phase: literal('creating', 'created'),
  createdAt: decimal,
  startedAt: optional(decimal),
  exit: optional(
    object({
      exitCode: integer(-1, 255 + 128),
      finishedAt: decimal,
      reason: literal('Completed', 'Error', 'OOMKilled', 'Unknown'),
      message: string(),
    }),
  ),
  logPath: string(/^$|^\/(?!.*(^|\/)\.\.(\/|$))/, 'empty or an absolute path without ".."'),
  pid: optional(integer(1, 2 ** 22)),
  resources: nullable(anyObject),
  stopSignal: string(/^(SIG[A-Z0-9+-]+|\d{1,2})$/, 'a signal'),
  ownPidNamespace: boolean,
  imageVolumes: optional(
    array(
      object({
        index: integer(0, 511),
        imageId: string(DIGEST, 'an image id'),
        layers: array(string(DIGEST, 'a layer diff_id')),
        mountPoint: string(/^\/(?!.*(^|\/)\.\.(\/|$)).*\/image-volumes\/\d+$/, "the container's own image-volumes directory"),
      }),
      512,
    ),
  ),
  user: optional(object({ uid: integer(0, 2 ** 32 - 1), gid: integer(0, 2 ** 32 - 1), additionalGids: array(integer(0, 2 ** 32 - 1), 65536) })),
  timings: optional(
    dictionary((v, f) => {
      if (typeof v !== 'number') throw new Error(`${f}: expected a number`);
      return v;
    }),
  ),
});

/** A container record as read back from disk, checked before recovery acts on any of it. */
export const containerRecordSchema: Schema<ContainerRecord> = (value, field) => checkContainerRecord(value, field) as unknown as ContainerRecord;
