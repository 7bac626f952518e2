import type * as wire from '../api/wire.js';
import { nanosFromDate, nowNanos } from '../util/time.js';
import type { ImageRecord } from './store/images.js';

/** The CRI view of an image record. */
export function toCriImage(record: ImageRecord): wire.Image {
  const user = record.config.config?.User ?? '';
  const userPart = user.split(':')[0] ?? '';
  const image: wire.Image = {
    id: record.id,
    repo_tags: record.repoTags,
    repo_digests: record.repoDigests,
    size: record.size,
    spec: { image: record.id, annotations: {} },
    pinned: record.pinned,
  };
  if (/^\d+$/.test(userPart)) image.uid = { value: Number(userPart) };
  else if (userPart) image.username = userPart;
  return image;
}

/** ImageStatus's verbose `info` entry for an image: its config, manifests, layers and pull time. */
export function verboseInfoOf(record: ImageRecord): string {
  return JSON.stringify({
    imageSpec: record.config,
    manifestDigests: record.manifestDigests,
    layers: record.layers,
    pulledAt: nanosFromDate(new Date(record.pulledAt)),
  });
}

/** ImageFsInfo's usage of the image store: unpacked layers counted once, plus the blobs. */
export function imageFsUsage(records: ImageRecord[], blobs: { bytes: number; inodes: number }, mountpoint: string): wire.FilesystemUsage {
  const counted = new Set<string>();
  let bytes = 0;
  let inodes = 0;
  for (const record of records) {
    for (const layer of record.layers) {
      if (counted.has(layer.diffId)) continue;
      counted.add(layer.diffId);
      bytes += layer.bytes;
      inodes += layer.inodes;
    }
  }
  return {
    timestamp: nowNanos(),
    fs_id: { mountpoint },
    used_bytes: { value: bytes + blobs.bytes },
    inodes_used: { value: inodes + blobs.inodes },
  };
}
