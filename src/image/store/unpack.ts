/**
 * The layer unpacker: one image layer (an uncompressed tar stream) becomes one directory in
 * the layout overlayfs reads as a lower layer.
 *
 * - `dir/.wh.name` becomes a 0/0 character device `dir/name`, `dir/.wh..wh..opq` the xattr
 *   trusted.overlay.opaque=y on `dir`.
 * - Entry names and hard-link targets must stay inside the layer directory; relative symlink
 *   targets may not climb above it.
 * - Nothing is ever written through a symlink: every parent of an entry is a directory this
 *   unpack made, which the writer knows without asking the filesystem.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, type Header } from 'tar-stream';
import { run } from '../../util/run.js';
import {
  LAYER_ROOT,
  UnsafeLayerError,
  ancestorsOf,
  isWithin,
  layerPath,
  parentOf,
  symlinkEscapes,
  whiteoutMarkerOf,
  type WhiteoutMarker,
} from './layer-paths.js';
import { XattrTap, type Xattr } from './tar-xattrs.js';
import type { UnpackOptions, UnpackStats } from './unpack-types.js';

export { UnsafeLayerError } from './layer-paths.js';

/**
 * Unpack one layer into `options.target`, an empty directory. On any failure the promise
 * rejects (with the abort reason when `options.signal` fired), the input stream is destroyed,
 * and the directory holds a partial layer the caller must delete.
 */
export async function unpackLayer(tar: Readable, options: UnpackOptions): Promise<UnpackStats> {
  const { signal } = options;
  const tap = new XattrTap();
  const extractor = extract();
  // The extractor reports every read-side failure (a broken source, a truncated tar) as an
  // 'error'; the entry loop may only see its echo ("Stream was destroyed") by then.
  let readError: unknown;
  extractor.on('error', (err) => void (readError ??= err));
  const feeding = pipeline(tar, tap, extractor);
  const fed = feeding.then(
    () => undefined,
    () => undefined,
  );
  const stop = (): void => void extractor.destroy(signal?.reason);
  signal?.addEventListener('abort', stop, { once: true });
  try {
    signal?.throwIfAborted();
    const writer = new LayerWriter(options.target);
    for await (const entry of extractor) {
      signal?.throwIfAborted();
      await writer.write(entry.header, entry, tap.xattrsOf(entry.offset));
      // Content the writer had no use for (a whiteout's, a link's) must be drained, or the
      // extractor stalls waiting for it to be read.
      entry.resume();
    }
    await feeding;
    writer.finish();
    signal?.throwIfAborted();
    return writer.stats;
  } catch (err) {
    tar.destroy();
    extractor.destroy();
    await fed; // settles once every stage closed, and with it every 'error' was emitted
    // A refused entry is the cause even if the caller aborted meanwhile (it aborts because
    // destroying the input broke its side of the pipeline).
    if (err instanceof UnsafeLayerError) throw err;
    throw signal?.aborted ? signal.reason : (readError ?? err);
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

/** An entry's content as tar-stream hands it over (a streamx readable). */
interface EntryContent extends AsyncIterable<unknown> {
  resume(): unknown;
}

/** What a layer path holds. A hard link takes the kind of its target. */
type EntryKind = 'directory' | 'file' | 'symlink' | 'device' | 'whiteout';

/** Owner, permission bits and times of an entry, PAX records taking precedence. */
interface Metadata {
  uid: number;
  gid: number;
  /** Permission bits including setuid, setgid and sticky. */
  mode: number;
  /** Seconds since the epoch, fractions allowed. */
  atime: number;
  mtime: number;
}

const OPAQUE_XATTR = 'trusted.overlay.opaque';
/** Overlay reads these (user.* in unprivileged mounts); a layer must not forge them. */
const FORGED_XATTR_PREFIXES = ['trusted.overlay.', 'user.overlay.'];
const IMPLICIT_DIR_MODE = 0o755;
/**
 * Content of files up to this size is written synchronously; larger files go chunk by chunk
 * through the thread pool, so that writeback throttling on a big file never stalls the
 * daemon's event loop.
 */
const SYNC_WRITE_LIMIT = 64 * 1024;

/**
 * Writes entries, in tar order, into one layer directory.
 *
 * Its filesystem calls are synchronous (but for big file content, see SYNC_WRITE_LIMIT): each
 * is a short inode update, while a thread-pool round trip costs 50-100 µs on a 2-vCPU VM, and
 * a layer needs half a dozen per file. Measured on tmpfs with 20 000 small files: 0.8 s
 * synchronous, 8 s with fs/promises (GNU tar: 0.25 s).
 */
class LayerWriter {
  readonly stats: UnpackStats = { bytes: 0, inodes: 0, whiteouts: 0, opaqueDirs: 0 };
  /** Every path this unpack made, by what it is now; parents are only ever looked up here. */
  private readonly kinds = new Map<string, EntryKind>([[LAYER_ROOT, 'directory']]);
  /** Applied last, because creating a directory's children resets its times. */
  private readonly directoryTimes = new Map<string, Metadata>();
  private readonly opaqueDirs = new Set<string>();

  constructor(private readonly root: string) {}

  async write(header: Header, content: EntryContent, xattrs: Xattr[]): Promise<void> {
    const entry = header.name;
    const rel = layerPath(entry, entry);
    const marker = whiteoutMarkerOf(rel, entry);
    if (marker) return this.writeMarker(marker, entry);
    const type = typeOf(header);
    if (rel === LAYER_ROOT && type !== 'directory') {
      throw new UnsafeLayerError(entry, `a ${String(type)} entry cannot replace the layer directory`);
    }
    await this.ensureDirectory(parentOf(rel), entry);
    const meta = metadataOf(header);
    switch (type) {
      case 'directory':
        return this.writeDirectory(rel, meta, xattrs);
      case 'file':
      case 'contiguous-file':
        return this.writeFile(rel, meta, xattrs, content, header.size);
      case 'link':
        return this.writeHardLink(rel, header.linkname ?? '', entry);
      case 'symlink':
        return this.writeSymlink(rel, header.linkname ?? '', meta, xattrs, entry);
      case 'character-device':
      case 'block-device':
      case 'fifo':
        return this.writeDevice(rel, header, meta, xattrs);
      default:
        throw new UnsafeLayerError(entry, `entry type ${String(type)} is not supported`);
    }
  }

  /** Directory times, once nothing more is written below them. */
  finish(): void {
    for (const [rel, meta] of this.directoryTimes) fs.utimesSync(this.abs(rel), meta.atime, meta.mtime);
  }

  private abs(rel: string): string {
    return path.join(this.root, rel);
  }

  private created(rel: string, kind: EntryKind): void {
    this.kinds.set(rel, kind);
    this.stats.inodes += 1;
  }

  /**
   * Make `dir` and its ancestors directories of this layer, creating missing ones (mode 0755).
   * Anything else in the way is refused: through a symlink the entry would land outside the
   * layer. A whiteout in the way becomes an opaque directory (see replaceWhiteoutWithDirectory).
   */
  private async ensureDirectory(dir: string, entry: string): Promise<void> {
    if (this.kinds.get(dir) === 'directory') return; // its ancestors are directories too
    for (const current of [...ancestorsOf(dir), dir]) {
      const kind = this.kinds.get(current);
      if (kind === 'directory') continue;
      if (kind === 'whiteout') {
        await this.replaceWhiteoutWithDirectory(current);
      } else if (kind === undefined) {
        this.makeImplicitDirectory(current);
      } else {
        throw new UnsafeLayerError(entry, `its parent "${current}" is a ${kind}, not a directory`);
      }
    }
  }

  private makeImplicitDirectory(rel: string): void {
    fs.mkdirSync(this.abs(rel));
    fs.chmodSync(this.abs(rel), IMPLICIT_DIR_MODE); // whatever the umask
    this.created(rel, 'directory');
  }

  /**
   * A whiteout and a directory of the same name in one layer mean "the lower directory is
   * gone, this one replaces it": a directory whose lower content must stay hidden.
   */
  private async replaceWhiteoutWithDirectory(rel: string): Promise<void> {
    await this.remove(rel);
    this.makeImplicitDirectory(rel);
    await this.markOpaque(rel);
  }

  /** Tar semantics: a later entry replaces whatever an earlier one left at its path. */
  private async remove(rel: string): Promise<void> {
    const kind = this.kinds.get(rel);
    if (kind === undefined) return;
    if (kind !== 'directory') {
      fs.unlinkSync(this.abs(rel));
      this.kinds.delete(rel);
      return;
    }
    await fs.promises.rm(this.abs(rel), { recursive: true });
    for (const known of [this.kinds, this.directoryTimes]) {
      for (const key of known.keys()) if (isWithin(key, rel)) known.delete(key);
    }
    for (const key of this.opaqueDirs) if (isWithin(key, rel)) this.opaqueDirs.delete(key);
  }

  private async writeMarker(marker: WhiteoutMarker, entry: string): Promise<void> {
    if (marker.kind === 'aufs-internal') return;
    await this.ensureDirectory(marker.dir, entry);
    if (marker.kind === 'opaque') return this.markOpaque(marker.dir);
    // Whiteouts only hide lower layers (OCI image-spec). What this layer itself puts at the
    // path already hides the lower entry, except a directory, which overlay would merge.
    const existing = this.kinds.get(marker.hidden);
    if (existing === 'directory') return this.markOpaque(marker.hidden);
    if (existing !== undefined) return;
    await run('mknod', ['-m', '000', this.abs(marker.hidden), 'c', '0', '0']);
    this.created(marker.hidden, 'whiteout');
    this.stats.whiteouts += 1;
  }

  private async markOpaque(dir: string): Promise<void> {
    if (this.opaqueDirs.has(dir)) return;
    await setXattr(this.abs(dir), OPAQUE_XATTR, Buffer.from('y'));
    this.opaqueDirs.add(dir);
    this.stats.opaqueDirs += 1;
  }

  private async writeDirectory(rel: string, meta: Metadata, xattrs: Xattr[]): Promise<void> {
    const existing = this.kinds.get(rel);
    if (existing === 'whiteout') {
      await this.replaceWhiteoutWithDirectory(rel);
    } else if (existing !== 'directory') {
      await this.remove(rel);
      fs.mkdirSync(this.abs(rel), { mode: 0o700 }); // opened up by setOwnerAndMode below
      this.created(rel, 'directory');
    }
    setOwnerAndMode(this.abs(rel), meta);
    await applyXattrs(this.abs(rel), xattrs);
    this.directoryTimes.set(rel, meta);
  }

  private async writeFile(rel: string, meta: Metadata, xattrs: Xattr[], content: EntryContent, size: number): Promise<void> {
    await this.remove(rel);
    // 'wx' (O_CREAT|O_EXCL) never opens something already there, a symlink least of all.
    const fd = fs.openSync(this.abs(rel), 'wx', 0o600);
    try {
      this.stats.bytes += await copyContent(content, fd, size <= SYNC_WRITE_LIMIT ? writeChunkSync : writeChunkAsync);
      // Owner before mode: chown clears setuid and setgid.
      fs.fchownSync(fd, meta.uid, meta.gid);
      fs.fchmodSync(fd, meta.mode);
      fs.futimesSync(fd, meta.atime, meta.mtime);
    } finally {
      fs.closeSync(fd);
    }
    this.created(rel, 'file');
    // After chown, which drops security.capability; setting xattrs keeps the times.
    await applyXattrs(this.abs(rel), xattrs);
  }

  /** A second name for a file of this layer: no new inode, no new bytes, no own metadata. */
  private async writeHardLink(rel: string, linkname: string, entry: string): Promise<void> {
    const target = layerPath(linkname, entry, 'hard link target');
    const kind = this.kinds.get(target);
    if (kind === undefined || kind === 'whiteout') {
      throw new UnsafeLayerError(entry, `hard link target "${linkname}" is not in this layer`);
    }
    if (kind === 'directory') throw new UnsafeLayerError(entry, `hard link target "${linkname}" is a directory`);
    if (target === rel) throw new UnsafeLayerError(entry, 'hard link to itself');
    await this.remove(rel);
    // link(2) does not follow a symlink target: the link names the symlink itself.
    fs.linkSync(this.abs(target), this.abs(rel));
    this.kinds.set(rel, kind);
  }

  private async writeSymlink(rel: string, target: string, meta: Metadata, xattrs: Xattr[], entry: string): Promise<void> {
    if (target === '') throw new UnsafeLayerError(entry, 'symlink without a target');
    if (symlinkEscapes(rel, target)) {
      throw new UnsafeLayerError(entry, `symlink target "${target}" points outside the layer`);
    }
    await this.remove(rel);
    const abs = this.abs(rel);
    fs.symlinkSync(target, abs);
    this.created(rel, 'symlink');
    // A symlink's own mode is meaningless (always 0777): owner and times only.
    fs.lchownSync(abs, meta.uid, meta.gid);
    await applyXattrs(abs, xattrs);
    fs.lutimesSync(abs, meta.atime, meta.mtime);
  }

  private async writeDevice(rel: string, header: Header, meta: Metadata, xattrs: Xattr[]): Promise<void> {
    await this.remove(rel);
    const abs = this.abs(rel);
    const node = header.type === 'fifo' ? ['p'] : [header.type === 'block-device' ? 'b' : 'c', String(header.devmajor), String(header.devminor)];
    // Node cannot mknod; private until owner and mode are set.
    await run('mknod', ['-m', '600', abs, ...node]);
    this.created(rel, 'device');
    setOwnerAndMode(abs, meta);
    await applyXattrs(abs, xattrs);
    fs.utimesSync(abs, meta.atime, meta.mtime);
  }
}

/** Owner before mode: chown clears setuid and setgid. Never for symlinks (chmod follows). */
function setOwnerAndMode(abs: string, meta: Metadata): void {
  fs.lchownSync(abs, meta.uid, meta.gid);
  fs.chmodSync(abs, meta.mode);
}

/** Writes `chunk` from `offset` on; resolves how many bytes it wrote. */
type ChunkWriter = (fd: number, chunk: Uint8Array, offset: number) => number | Promise<number>;

const writeChunkSync: ChunkWriter = (fd, chunk, offset) => fs.writeSync(fd, chunk, offset);

const writeChunkAsync: ChunkWriter = (fd, chunk, offset) =>
  new Promise((resolve, reject) => {
    fs.write(fd, chunk, offset, chunk.byteLength - offset, null, (err, written) => (err ? reject(err) : resolve(written)));
  });

/** Stream an entry's content into `fd`, one chunk at a time; returns the bytes written. */
async function copyContent(content: EntryContent, fd: number, write: ChunkWriter): Promise<number> {
  let total = 0;
  for await (const chunk of content) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('tar entry content is not binary');
    for (let written = 0; written < chunk.byteLength; ) written += await write(fd, chunk, written);
    total += chunk.byteLength;
  }
  return total;
}

async function applyXattrs(abs: string, xattrs: readonly Xattr[]): Promise<void> {
  for (const { name, value } of xattrs) {
    if (FORGED_XATTR_PREFIXES.some((prefix) => name.startsWith(prefix))) continue;
    await setXattr(abs, name, value);
  }
}

/** Node has no xattr API; setfattr with a hex value is binary-safe, -h never follows links. */
async function setXattr(abs: string, name: string, value: Buffer): Promise<void> {
  await run('setfattr', ['-h', '-n', name, '-v', `0x${value.toString('hex')}`, abs]);
}

/**
 * The entry's type, minding the pre-POSIX convention GNU tar and Go's archive/tar also follow:
 * a regular file whose name ends in '/' is a directory.
 */
function typeOf(header: Header): Header['type'] {
  return header.type === 'file' && header.name.endsWith('/') ? 'directory' : header.type;
}

function metadataOf(header: Header): Metadata {
  const mtime = paxNumber(header, 'mtime') ?? header.mtime.getTime() / 1000;
  const meta: Metadata = {
    uid: paxNumber(header, 'uid') ?? header.uid,
    gid: paxNumber(header, 'gid') ?? header.gid,
    // Some writers include the file type bits (0100644): keep permissions and special bits.
    mode: header.mode & 0o7777,
    atime: paxNumber(header, 'atime') ?? mtime,
    mtime,
  };
  const integers = { uid: meta.uid, gid: meta.gid, mode: header.mode };
  const unreadable = Object.entries(integers).find(([, value]) => !Number.isSafeInteger(value) || value < 0)?.[0];
  if (unreadable !== undefined || !Number.isFinite(mtime)) {
    throw new UnsafeLayerError(header.name, `unreadable ${unreadable ?? 'mtime'} in its header`);
  }
  return meta;
}

/** A numeric PAX record (uid, gid and times too large or too precise for the ustar fields). */
function paxNumber(header: Header, key: string): number | undefined {
  const pax: unknown = header.pax;
  if (typeof pax !== 'object' || pax === null) return undefined;
  const value: unknown = (pax as Record<string, unknown>)[key];
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const number = Number(value);
  return Number.isFinite(number) ? number : undefined;
}
