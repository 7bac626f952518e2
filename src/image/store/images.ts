import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode } from '../../errors.js';
import { writeJsonAtomic } from '../../persistence/atomic.js';
import type { ImageConfig } from '../registry/manifest.js';
import type { StoreLayout } from './layout.js';
import { IMAGE_RECORD_VERSION, imageRecordSchema } from './record-schema.js';

export { IMAGE_RECORD_VERSION };

export interface LayerRecord {
  diffId: string;
  /** The compressed blob it was pulled as. */
  digest: string;
  size: number;
  mediaType: string;
  /** Unpacked size and inode count (for ImageFsInfo). */
  bytes: number;
  inodes: number;
}

/** One image: content (config, layers) plus the names it is known by. */
export interface ImageRecord {
  version: typeof IMAGE_RECORD_VERSION;
  /** The config digest, `sha256:<hex>`: what CRI calls the image id and image_ref. */
  id: string;
  /** `domain/path:tag` names pointing at this image. */
  repoTags: string[];
  /** `domain/path@digest` names, digest of the manifest (or index) that was pulled. */
  repoDigests: string[];
  /** Compressed size: config plus layer blobs, as the registry reports it. */
  size: number;
  /** Manifests and indexes this image was pulled through (kept in the blob store). */
  manifestDigests: string[];
  config: ImageConfig;
  layers: LayerRecord[];
  pinned: boolean;
  /** Milliseconds since the epoch. */
  pulledAt: number;
}

/**
 * The image records and the indexes to find them by id, tag or repo digest. Every change is
 * written to disk (atomically) before the in-memory indexes change.
 */
export class ImageRecords {
  private readonly byId = new Map<string, ImageRecord>();

  constructor(
    private readonly layout: StoreLayout,
    private readonly log: Logger,
  ) {}

  async load(): Promise<void> {
    let files: string[];
    try {
      files = await fs.readdir(this.layout.recordsDir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    for (const file of files.filter((f) => f.endsWith('.json'))) {
      try {
        const record = imageRecordSchema(JSON.parse(await fs.readFile(path.join(this.layout.recordsDir, file), 'utf8')), '');
        if (this.layout.record(record.id) !== path.join(this.layout.recordsDir, file)) throw new Error(`id ${record.id} does not match the file name`);
        this.byId.set(record.id, record);
      } catch (err) {
        // Skipped, never acted on: its layers are not counted as used, so GC may take them.
        this.log.error({ file, err }, 'invalid image record; skipped');
      }
    }
  }

  all(): ImageRecord[] {
    return [...this.byId.values()];
  }

  get(id: string): ImageRecord | undefined {
    return this.byId.get(id);
  }

  /** Images whose id (hex, with or without `sha256:`) starts with `prefix`. */
  byIdPrefix(prefix: string): ImageRecord[] {
    const hex = prefix.replace(/^sha256:/, '');
    return this.all().filter((r) => r.id.slice('sha256:'.length).startsWith(hex));
  }

  byTag(tag: string): ImageRecord | undefined {
    return this.all().find((r) => r.repoTags.includes(tag));
  }

  byRepoDigest(repoDigest: string): ImageRecord | undefined {
    return this.all().find((r) => r.repoDigests.includes(repoDigest));
  }

  async save(record: ImageRecord): Promise<void> {
    await fs.mkdir(this.layout.recordsDir, { recursive: true, mode: 0o700 });
    await writeJsonAtomic(this.layout.record(record.id), record);
    this.byId.set(record.id, record);
  }

  async delete(id: string): Promise<void> {
    await fs.rm(this.layout.record(id), { force: true });
    this.byId.delete(id);
  }
}
