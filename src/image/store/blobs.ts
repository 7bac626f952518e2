import { promises as fs } from 'node:fs';
import { errnoCode } from '../../errors.js';
import { writeFileAtomic } from '../../persistence/atomic.js';
import type { StoreLayout } from './layout.js';

/**
 * Small verified blobs (manifests, indexes, configs) by digest. Callers verify the digest
 * before writing; the write is atomic, so a blob that exists is complete.
 */
export class BlobStore {
  constructor(private readonly layout: StoreLayout) {}

  async write(digest: string, bytes: Buffer): Promise<void> {
    await fs.mkdir(this.layout.blobsDir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.layout.blob(digest), bytes, { mode: 0o644 });
  }

  async read(digest: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.layout.blob(digest));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  async remove(digest: string): Promise<void> {
    await fs.rm(this.layout.blob(digest), { force: true });
  }

  /** Bytes and files in the blob store. */
  async usage(): Promise<{ bytes: number; inodes: number }> {
    let entries: string[];
    try {
      entries = await fs.readdir(this.layout.blobsDir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return { bytes: 0, inodes: 0 };
      throw err;
    }
    const sizes = await Promise.all(entries.map((e) => fs.stat(`${this.layout.blobsDir}/${e}`).then((s) => s.size, () => 0)));
    return { bytes: sizes.reduce((a, b) => a + b, 0), inodes: entries.length };
  }
}
