import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, type Header } from 'tar-stream';
import { TscriError } from '../../errors.js';
import { run } from '../../util/run.js';
import type { UnpackOptions, UnpackStats } from './unpack-types.js';

/** A layer entry that would write outside its directory, or that cannot be represented. */
export class UnsafeLayerError extends TscriError {
  constructor(
    readonly entry: string,
    readonly reason: string,
  ) {
    super('Internal', `layer entry "${entry}" rejected: ${reason}`);
  }
}

/** An entry's content as tar-stream hands it over (a streamx readable). */
type EntryStream = AsyncIterable<unknown> & { resume(): unknown };

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const XATTR_PREFIX = 'SCHILY.xattr.';

/**
 * Unpack one layer tar into `options.target` in the layout overlayfs reads as a lower layer:
 * `.wh.<name>` becomes a 0/0 character device named <name>, `.wh..wh..opq` the xattr
 * trusted.overlay.opaque=y on its directory.
 *
 * Safety: entry names and hard-link targets must stay inside the target (no absolute paths,
 * no `..` above the root), nothing is ever written through a symlink (every parent must be a
 * directory this layer made), and relative symlink targets may not climb above the root.
 */
export async function unpackLayer(tar: Readable, options: UnpackOptions): Promise<UnpackStats> {
  const unpacker = new Unpacker(options.target);
  const extractor = extract();
  const done = new Promise<void>((resolve, reject) => {
    extractor.on('entry', (header, stream, next) => {
      if (options.signal?.aborted) {
        stream.resume();
        next(options.signal.reason instanceof Error ? options.signal.reason : new Error('aborted'));
        return;
      }
      unpacker.entry(header, stream).then(
        () => next(),
        (err: unknown) => {
          stream.resume();
          next(err as Error);
        },
      );
    });
    extractor.on('finish', resolve);
    extractor.on('error', reject);
  });
  // Both must settle: an entry error fails `done`, and the pipeline fails with it.
  await Promise.all([pipeline(tar, extractor, { signal: options.signal }), done]);
  await unpacker.finish();
  return unpacker.stats;
}

class Unpacker {
  readonly stats: UnpackStats = { bytes: 0, inodes: 0, whiteouts: 0, opaqueDirs: 0 };
  /** Directories this layer made (relative paths); only these may hold entries. */
  private readonly directories = new Set<string>(['']);
  /** Non-directory entries this layer made, for hard-link targets. */
  private readonly files = new Set<string>();
  /** Directory times, applied last: writing children would reset them. */
  private readonly directoryTimes = new Map<string, Date>();

  constructor(private readonly root: string) {}

  async entry(header: Header, stream: EntryStream): Promise<void> {
    const rel = safeRelative(header.name);
    if (rel === '') {
      // The root itself ("./"): its metadata is the layer directory's.
      stream.resume();
      return;
    }
    const dirRel = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
    const base = path.posix.basename(rel);
    if (base === OPAQUE_MARKER) {
      stream.resume();
      await this.ensureDirectory(dirRel, rel);
      await setXattr(this.abs(dirRel), 'trusted.overlay.opaque', Buffer.from('y'));
      this.stats.opaqueDirs += 1;
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      stream.resume();
      if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return; // aufs bookkeeping
      const hidden = path.posix.join(dirRel, base.slice(WHITEOUT_PREFIX.length));
      await this.ensureDirectory(dirRel, rel);
      await this.clear(hidden);
      await run('mknod', ['-m', '0', this.abs(hidden), 'c', '0', '0']);
      this.files.add(hidden);
      this.stats.whiteouts += 1;
      this.stats.inodes += 1;
      return;
    }
    await this.ensureDirectory(dirRel, rel);
    await this.create(rel, header, stream);
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, rel);
  }

  /**
   * Make sure `dirRel` is a directory this layer owns, creating missing parents. A parent that
   * exists as anything else (a symlink above all) means the entry would escape.
   */
  private async ensureDirectory(dirRel: string, entry: string): Promise<void> {
    if (this.directories.has(dirRel)) return;
    const parts = dirRel.split('/');
    let current = '';
    for (const part of parts) {
      current = current ? `${current}/${part}` : part;
      if (this.directories.has(current)) continue;
      if (this.files.has(current)) throw new UnsafeLayerError(entry, `its parent "${current}" is not a directory`);
      await fs.mkdir(this.abs(current), { mode: 0o755 });
      this.directories.add(current);
      this.stats.inodes += 1;
    }
  }

  /** Remove what a path already holds (tar semantics: later entries replace earlier ones). */
  private async clear(rel: string): Promise<void> {
    if (this.directories.has(rel)) {
      await fs.rm(this.abs(rel), { recursive: true, force: true });
      for (const dir of [...this.directories]) if (dir === rel || dir.startsWith(`${rel}/`)) this.directories.delete(dir);
      for (const file of [...this.files]) if (file.startsWith(`${rel}/`)) this.files.delete(file);
    } else if (this.files.has(rel)) {
      await fs.rm(this.abs(rel), { force: true });
      this.files.delete(rel);
    }
  }

  private async create(rel: string, header: Header, stream: EntryStream): Promise<void> {
    const target = this.abs(rel);
    const mode = (header.mode ?? 0o644) & 0o7777;
    if (header.type === 'directory') {
      stream.resume();
      if (!this.directories.has(rel)) {
        await this.clear(rel);
        await fs.mkdir(target, { mode: 0o700 });
        this.directories.add(rel);
        this.stats.inodes += 1;
      }
      await this.finishMetadata(target, header, mode);
      this.directoryTimes.set(rel, header.mtime ?? new Date(0));
      await this.applyXattrs(target, header, rel);
      return;
    }
    await this.clear(rel);
    switch (header.type) {
      case 'file':
      case 'contiguous-file': {
        await pipeline(stream, createWriteStream(target, { mode: 0o600, flags: 'wx' }));
        this.stats.bytes += header.size ?? 0;
        this.stats.inodes += 1;
        break;
      }
      case 'link': {
        stream.resume();
        const linkTarget = safeRelative(header.linkname ?? '', rel);
        if (!this.files.has(linkTarget)) throw new UnsafeLayerError(rel, `hard link to "${header.linkname}", which this layer has no file for`);
        await fs.link(this.abs(linkTarget), target);
        this.files.add(rel);
        return; // a hard link shares its target's inode and metadata
      }
      case 'symlink': {
        stream.resume();
        const linkname = header.linkname ?? '';
        if (!linkname.startsWith('/') && escapes(path.posix.join(path.posix.dirname(rel), linkname))) {
          throw new UnsafeLayerError(rel, `symlink target "${linkname}" points outside the layer`);
        }
        await fs.symlink(linkname, target);
        this.files.add(rel);
        this.stats.inodes += 1;
        await fs.lchown(target, header.uid ?? 0, header.gid ?? 0);
        const time = header.mtime ?? new Date(0);
        await fs.lutimes(target, time, time);
        return;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        stream.resume();
        await makeNode(target, header);
        this.stats.inodes += 1;
        break;
      }
      default:
        stream.resume();
        throw new UnsafeLayerError(rel, `entry type "${header.type}" is not supported`);
    }
    this.files.add(rel);
    await this.finishMetadata(target, header, mode);
    const time = header.mtime ?? new Date(0);
    await fs.utimes(target, time, time);
    await this.applyXattrs(target, header, rel);
  }

  /** Owner first, then mode: chown clears setuid and setgid bits. */
  private async finishMetadata(target: string, header: Header, mode: number): Promise<void> {
    await fs.lchown(target, header.uid ?? 0, header.gid ?? 0);
    await fs.chmod(target, mode);
  }

  private async applyXattrs(target: string, header: Header, rel: string): Promise<void> {
    const pax = header.pax as Record<string, string> | null | undefined;
    if (!pax) return;
    for (const [key, value] of Object.entries(pax)) {
      if (!key.startsWith(XATTR_PREFIX)) continue;
      const name = key.slice(XATTR_PREFIX.length);
      // A layer must not forge overlay metadata (opaque dirs, redirects) of its own.
      if (name.startsWith('trusted.overlay.')) continue;
      try {
        await setXattr(target, name, Buffer.from(value, 'latin1'));
      } catch (err) {
        throw new UnsafeLayerError(rel, `cannot set xattr ${name}: ${(err as Error).message}`);
      }
    }
  }

  /** Directory times last, deepest first, once no more children will be written. */
  async finish(): Promise<void> {
    const dirs = [...this.directoryTimes.entries()].sort((a, b) => b[0].length - a[0].length);
    for (const [rel, time] of dirs) await fs.utimes(this.abs(rel), time, time);
  }
}

/**
 * An entry name as a clean relative path inside the layer; `relativeTo` only labels errors.
 * Absolute names and names climbing above the root are refused.
 */
function safeRelative(name: string, relativeTo?: string): string {
  const label = relativeTo ?? name;
  // Some tools (umoci among them) name the root entry "/": it is the layer directory itself.
  if (name === '/' && relativeTo === undefined) return '';
  if (name.startsWith('/')) throw new UnsafeLayerError(label, `absolute path "${name}"`);
  if (name.includes('\0')) throw new UnsafeLayerError(label, 'NUL byte in the name');
  const normalized = path.posix.normalize(name.replace(/^(\.\/)+/, ''));
  if (escapes(normalized)) throw new UnsafeLayerError(label, `"${name}" escapes the layer directory`);
  return normalized === '.' ? '' : normalized.replace(/\/+$/, '');
}

function escapes(normalizedOrJoined: string): boolean {
  const n = path.posix.normalize(normalizedOrJoined);
  return n === '..' || n.startsWith('../');
}

async function setXattr(target: string, name: string, value: Buffer): Promise<void> {
  await run('setfattr', ['-h', '-n', name, '-v', `0x${value.toString('hex')}`, target]);
}

async function makeNode(target: string, header: Header): Promise<void> {
  const mode = ((header.mode ?? 0o600) & 0o7777).toString(8);
  if (header.type === 'fifo') {
    await run('mkfifo', ['-m', mode, target]);
    return;
  }
  const kind = header.type === 'block-device' ? 'b' : 'c';
  await run('mknod', ['-m', mode, target, kind, String(header.devmajor ?? 0), String(header.devminor ?? 0)]);
}
