/**
 * Reading an image archive (`docker save`, an OCI archive) from a stream: every regular file
 * is copied to a scratch directory under a generated name and hashed on the way, so the
 * archive is read once, in whatever order its writer chose (`docker save` puts manifest.json
 * last), and nothing in it ever names a path on the host.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { InvalidArgumentError } from '../../errors.js';
import { decompressorFor } from '../store/decompress.js';
import type { LayerCompression } from '../registry/manifest.js';

const MiB = 1024 * 1024;

/**
 * What one archive may hold. Documents are read whole, so they are capped as a registry's are;
 * layers are streamed to disk, so only a runaway size is refused.
 */
export const ARCHIVE_LIMITS = {
  /** Tar entries of any kind: an image with 128 layers and a few names needs ~300. */
  entries: 10_000,
  /** manifest.json, index.json, oci-layout, manifests and indexes (a registry's limit). */
  documentBytes: 4 * MiB,
  /** An image config (as for pulls). */
  configBytes: 8 * MiB,
  /** Any one file: far above a real layer, below what would fill a disk by surprise. */
  entryBytes: 64 * 1024 * MiB,
  /** Layers of one image: overlayfs stacks at most ~128 lower directories. */
  layers: 128,
  /** Images in one archive. */
  images: 1000,
  /** Symlinks and hard links followed to reach one file. */
  linkHops: 8,
} as const;

/** An archive that is malformed, unsafe, or refers to content it lacks. */
export class ArchiveError extends InvalidArgumentError {
  constructor(message: string) {
    super(`image archive: ${message}`, { hint: 'make the archive again with docker save, podman save or skopeo copy' });
  }
}

/** A regular file of the archive, copied out. */
export interface ArchiveFile {
  /** Where its bytes are now. */
  file: string;
  size: number;
  /** sha256 of its bytes. */
  digest: string;
}

/** The archive's files by their sanitized path, and its links. */
export class ArchiveFiles {
  readonly files = new Map<string, ArchiveFile>();
  readonly links = new Map<string, string>();

  /** The file at `name`, following links inside the archive. */
  get(name: string): ArchiveFile | undefined {
    let current = archivePath(name);
    for (let hop = 0; hop <= ARCHIVE_LIMITS.linkHops; hop++) {
      const file = this.files.get(current);
      if (file) return file;
      const next = this.links.get(current);
      if (next === undefined) return undefined;
      current = next;
    }
    throw new ArchiveError(`too many links to follow from "${name}"`);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** A file read whole, refused past `limit` bytes. */
  async read(name: string, limit: number, what: string): Promise<Buffer> {
    const entry = this.get(name);
    if (!entry) throw new ArchiveError(`${what} "${name}" is not in the archive`);
    if (entry.size > limit) throw new ArchiveError(`${what} "${name}" has ${entry.size} bytes, more than the ${limit} allowed`);
    return fs.readFile(entry.file);
  }
}

/**
 * The normalized path of an archive member: relative, `/`-separated, no `.` or `..` parts.
 * A name that is absolute or climbs out of the archive is refused, never clamped: a writer
 * that produced it is broken or hostile.
 */
export function archivePath(name: string): string {
  if (name.includes('\0')) throw new ArchiveError('an entry name contains a NUL byte');
  if (name.startsWith('/')) throw new ArchiveError(`entry "${name}" has an absolute path`);
  const normalized = path.posix.normalize(name.replace(/^(\.\/)+/, ''));
  if (normalized === '..' || normalized.startsWith('../')) throw new ArchiveError(`entry "${name}" points outside the archive`);
  return normalized.replace(/\/+$/, '').replace(/^\.$/, '');
}

/**
 * Copy every regular file of the archive `source` (a tar, or a tar compressed with gzip or
 * zstd) into `scratch`, an empty directory the caller removes.
 */
export async function readArchive(source: Readable, scratch: string, signal?: AbortSignal): Promise<ArchiveFiles> {
  const archive = new ArchiveFiles();
  // Also while the first bytes are awaited: a client that gave up may never send or close.
  const stop = (): void => void source.destroy();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    return await readEntries(archive, source, scratch, signal);
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

async function readEntries(archive: ArchiveFiles, source: Readable, scratch: string, signal?: AbortSignal): Promise<ArchiveFiles> {
  signal?.throwIfAborted();
  const extractor = extract();
  const feeding = pipeline([await decompressed(source), extractor], { signal });
  feeding.catch(() => undefined); // reported by the loop below, or awaited after it
  let entries = 0;
  try {
    for await (const entry of extractor) {
      if (++entries > ARCHIVE_LIMITS.entries) throw new ArchiveError(`more than ${ARCHIVE_LIMITS.entries} entries`);
      await readEntry(archive, entry.header, entry, scratch, entries);
      entry.resume();
    }
    await feeding;
  } catch (err) {
    source.destroy();
    extractor.destroy();
    await feeding.catch(() => undefined);
    throw err;
  }
  return archive;
}

interface TarHeader {
  name: string;
  type: string | null;
  size?: number | null;
  linkname?: string | null;
}

async function readEntry(archive: ArchiveFiles, header: TarHeader, content: AsyncIterable<unknown>, scratch: string, n: number): Promise<void> {
  const name = archivePath(header.name);
  if (archive.files.has(name) || archive.links.has(name)) throw new ArchiveError(`entry "${header.name}" appears twice`);
  switch (header.type) {
    case 'directory':
      return;
    case 'file':
    case 'contiguous-file':
      if ((header.size ?? 0) > ARCHIVE_LIMITS.entryBytes) throw new ArchiveError(`entry "${header.name}" is larger than ${ARCHIVE_LIMITS.entryBytes} bytes`);
      archive.files.set(name, await copyOut(content, path.join(scratch, `file-${n}`)));
      return;
    case 'symlink': {
      const target = header.linkname ?? '';
      if (target.startsWith('/')) throw new ArchiveError(`symlink "${header.name}" points outside the archive`);
      archive.links.set(name, archivePath(path.posix.join(path.posix.dirname(name), target)));
      return;
    }
    case 'link':
      archive.links.set(name, archivePath(header.linkname ?? ''));
      return;
    default:
      throw new ArchiveError(`entry "${header.name}" is a ${String(header.type)}, which no image archive holds`);
  }
}

/** Write an entry's bytes to `file`, hashing them on the way. */
async function copyOut(content: AsyncIterable<unknown>, file: string): Promise<ArchiveFile> {
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  await pipeline(content, tap, createWriteStream(file, { mode: 0o600 }));
  return { file, size, digest: `sha256:${hash.digest('hex')}` };
}

/** The archive stream as a tar: gzip and zstd (`.tar.gz`, `.tar.zst`) are recognised by their magic. */
async function decompressed(source: Readable): Promise<Readable> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await iterator.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : first.value;
  const rest = Readable.from(
    (async function* () {
      if (head.length > 0) yield head;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    })(),
    { objectMode: false },
  );
  const decompressor = decompressorFor(compressionByMagic(head));
  if (!decompressor) return rest;
  const out = rest.pipe(decompressor as unknown as Writable) as unknown as Readable;
  rest.on('error', (err) => out.destroy(err));
  return out;
}

/** gzip, zstd or (anything else) uncompressed, from a stream's first bytes. */
export function compressionByMagic(head: Buffer): LayerCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}
