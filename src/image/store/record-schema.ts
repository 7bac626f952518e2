import { array, boolean, integer, literal, object, string, type Schema } from '../../persistence/schema.js';
import type { ImageRecord } from './images.js';

/** Defined here, not in images.ts, which imports this module: no cycle at load time. */
export const IMAGE_RECORD_VERSION = 1;

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const digest = string(DIGEST, 'a sha256 digest');

const checkImageRecord = object({
  version: literal(IMAGE_RECORD_VERSION),
  id: digest,
  repoTags: array(string()),
  repoDigests: array(string()),
  size: integer(0),
  manifestDigests: array(digest),
  config: object({ rootfs: object({ diff_ids: array(digest) }) }),
  layers: array(
    object({
      diffId: digest,
      digest: string(/^sha(256|512):[0-9a-f]{64,128}$/, 'a blob digest'),
      size: integer(0),
      mediaType: string(),
      bytes: integer(0),
      inodes: integer(0),
    }),
  ),
  pinned: boolean,
  pulledAt: integer(0),
});

/** An image record as read back: its layer ids become directory names, so they must be digests. */
export const imageRecordSchema: Schema<ImageRecord> = (value, field) => {
  const record = checkImageRecord(value, field) as unknown as ImageRecord;
  const diffIds = record.config.rootfs.diff_ids;
  if (diffIds.length !== record.layers.length || record.layers.some((l, i) => l.diffId !== diffIds[i])) {
    throw new Error('layers: do not match the config\'s rootfs.diff_ids');
  }
  return record;
};
