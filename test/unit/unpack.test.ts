import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, pack, type Header } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { XattrTap } from '../../src/image/store/tar-xattrs.js';
import { UnsafeLayerError, unpackLayer } from '../../src/image/store/unpack.js';
import type { UnpackStats } from '../../src/image/store/unpack-types.js';
import { exec, run } from '../../src/util/run.js';

// A pass-through spy: which entries make the unpacker spawn a helper process.
vi.mock('../../src/util/run.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/util/run.js')>();
  return { ...actual, run: vi.fn(actual.run) };
});

const isRoot = process.getuid?.() === 0;
/**
 * Entries belong to whoever runs the tests unless a test says otherwise: the unpacker sets
 * every owner, which only root may set to someone else. Whiteouts, opaque directories, device
 * nodes, foreign owners and the overlay mount need root; those tests are skipped without it.
 */
const OWNER = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };

type EntryHeader = Partial<Header> & { name: string };

interface TarEntry {
  header: EntryHeader;
  content?: string | Buffer;
}

const file = (name: string, content: string, header: Partial<Header> = {}): TarEntry => ({
  header: { name, type: 'file', mode: 0o644, ...OWNER, ...header },
  content,
});
const dir = (name: string, header: Partial<Header> = {}): TarEntry => ({
  header: { name, type: 'directory', mode: 0o755, ...OWNER, ...header },
});
const symlink = (name: string, linkname: string): TarEntry => ({ header: { name, type: 'symlink', linkname, ...OWNER } });
const hardlink = (name: string, linkname: string): TarEntry => ({ header: { name, type: 'link', linkname, ...OWNER } });

/** The whole tar as bytes, end-of-archive blocks included. */
async function tarBytes(entries: readonly TarEntry[]): Promise<Buffer> {
  const packer = pack();
  for (const { header, content } of entries) packer.entry(header, content ?? '');
  packer.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of packer) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function tarStream(entries: readonly TarEntry[]): Promise<Readable> {
  return Readable.from([await tarBytes(entries)]);
}

let scratch: string;
let target: string;

beforeEach(async () => {
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-unpack-'));
  target = path.join(scratch, 'layer');
  await fs.mkdir(target);
});

afterEach(async () => {
  await fs.rm(scratch, { recursive: true, force: true });
});

async function unpack(entries: readonly TarEntry[], into = target): Promise<UnpackStats> {
  return unpackLayer(await tarStream(entries), { target: into });
}

const at = (rel: string): string => path.join(target, rel);

/** The value of an xattr as text, or undefined when unset. */
async function xattr(file: string, name: string): Promise<string | undefined> {
  const result = await exec('getfattr', ['-h', '--only-values', '-n', name, file]);
  return result.exitCode === 0 ? result.stdout : undefined;
}

/** The value of an xattr as hex ("0x…"), or undefined when unset. */
async function xattrHex(file: string, name: string): Promise<string | undefined> {
  const result = await exec('getfattr', ['-h', '-e', 'hex', '-n', name, file]);
  if (result.exitCode !== 0) return undefined;
  return /=(0x[0-9a-f]*)/.exec(result.stdout)?.[1];
}

describe('unpackLayer: entry types and metadata', () => {
  it('writes files with their modes (setuid included) and mtimes', async () => {
    const mtime = new Date('2021-03-04T05:06:07Z');
    const stats = await unpack([
      file('bin/tool', 'binary', { mode: 0o4755, mtime }),
      file('./etc/conf', 'a=b\n', { mode: 0o640, mtime }),
      file('sticky', '', { mode: 0o1777 }),
    ]);

    const tool = await fs.stat(at('bin/tool'));
    expect(tool.mode & 0o7777).toBe(0o4755);
    expect(tool.mtime.getTime()).toBe(mtime.getTime());
    expect(await fs.readFile(at('bin/tool'), 'utf8')).toBe('binary');
    expect((await fs.stat(at('etc/conf'))).mode & 0o7777).toBe(0o640);
    expect((await fs.stat(at('sticky'))).mode & 0o7777).toBe(0o1777);
    // 3 files and the implicit bin/ and etc/.
    expect(stats).toEqual({ bytes: 10, inodes: 5, whiteouts: 0, opaqueDirs: 0 });
  });

  it.runIf(isRoot)('applies owners from the header, PAX records first, before setuid bits', async () => {
    await unpack([
      dir('home/', { uid: 1234, gid: 5678, mode: 0o700 }),
      file('home/note', 'x', { uid: 1234, gid: 5678 }),
      // ids beyond the 7 octal digits of a ustar field travel as PAX records
      file('big-ids', 'x', { uid: 0, gid: 0, pax: { uid: '3000000', gid: '3000001' } }),
      // chown clears setuid and setgid: they survive only when set after it
      file('tool', 'x', { uid: 1000, gid: 1000, mode: 0o6755 }),
    ]);
    const home = await fs.stat(at('home'));
    expect(home.mode & 0o7777).toBe(0o700);
    expect([home.uid, home.gid]).toEqual([1234, 5678]);
    const note = await fs.stat(at('home/note'));
    expect([note.uid, note.gid]).toEqual([1234, 5678]);
    const big = await fs.stat(at('big-ids'));
    expect([big.uid, big.gid]).toEqual([3000000, 3000001]);
    const tool = await fs.stat(at('tool'));
    expect([tool.uid, tool.gid, tool.mode & 0o7777]).toEqual([1000, 1000, 0o6755]);
  });

  it('gives the root entry ("./") to the layer directory', async () => {
    const mtime = new Date('2017-07-07T07:07:07Z');
    await unpack([dir('./', { mode: 0o711, mtime }), file('f', 'x')]);
    const root = await fs.stat(target);
    expect(root.mode & 0o7777).toBe(0o711);
    expect(root.mtime.getTime()).toBe(mtime.getTime());
  });

  it('spawns no helper process for a layer without whiteouts, devices or xattrs', async () => {
    vi.mocked(run).mockClear();
    await unpack([dir('d/'), file('d/f', 'x'), symlink('l', 'd/f'), hardlink('h', 'd/f'), file('g/h', 'y')]);
    expect(run).not.toHaveBeenCalled();
  });

  it('reads a regular file named "dir/" as a directory, the pre-POSIX way', async () => {
    await unpack([
      { header: { name: 'old-style/', type: 'file', mode: 0o750, ...OWNER } },
      file('old-style/f', 'x', { pax: { 'SCHILY.xattr.user.k': 'v' } }),
    ]);
    const info = await fs.stat(at('old-style'));
    expect(info.isDirectory()).toBe(true);
    expect(info.mode & 0o7777).toBe(0o750);
    expect(await xattr(at('old-style/f'), 'user.k')).toBe('v');
  });

  it('keeps directory mtimes although their children were written later', async () => {
    const outer = new Date('2020-01-01T00:00:00Z');
    const inner = new Date('2020-06-01T00:00:00Z');
    await unpack([
      dir('a/', { mtime: outer }),
      dir('a/b/', { mtime: inner, mode: 0o750 }),
      file('a/b/f', 'x'),
      file('a/g', 'y'),
      symlink('a/b/l', 'f'),
    ]);
    expect((await fs.stat(at('a'))).mtime.getTime()).toBe(outer.getTime());
    const b = await fs.stat(at('a/b'));
    expect(b.mtime.getTime()).toBe(inner.getTime());
    expect(b.mode & 0o7777).toBe(0o750);
  });

  it('creates missing parent directories with mode 0755', async () => {
    const stats = await unpack([file('x/y/z.txt', 'deep')]);
    for (const parent of ['x', 'x/y']) {
      const info = await fs.stat(at(parent));
      expect(info.isDirectory()).toBe(true);
      expect(info.mode & 0o7777).toBe(0o755);
    }
    expect(await fs.readFile(at('x/y/z.txt'), 'utf8')).toBe('deep');
    expect(stats.inodes).toBe(3);
  });

  it('takes a root entry named "/" (as umoci writes it) as the layer directory itself', async () => {
    await unpack([dir('/'), dir('bin'), file('bin/tool', 'x')]);
    expect(await fs.readFile(path.join(target, 'bin/tool'), 'utf8')).toBe('x');
  });

  it('writes absolute and relative symlinks with their own times', async () => {
    const mtime = new Date('2019-09-09T09:09:09Z');
    await unpack([
      file('d/target', 't'),
      symlink('d/relative', '../d/target'),
      symlink('abs', '/etc/passwd'),
      { header: { name: 'timed', type: 'symlink', linkname: 'd', mtime, ...OWNER } },
    ]);
    expect(await fs.readlink(at('d/relative'))).toBe('../d/target');
    expect(await fs.readlink(at('abs'))).toBe('/etc/passwd');
    expect(await fs.readFile(at('d/relative'), 'utf8')).toBe('t');
    expect((await fs.lstat(at('timed'))).mtime.getTime()).toBe(mtime.getTime());
  });

  it('links hard links to the same inode and counts their bytes once', async () => {
    const stats = await unpack([file('data', '12345'), hardlink('alias', 'data'), hardlink('./sub/alias', './data')]);
    const original = await fs.stat(at('data'));
    expect((await fs.stat(at('alias'))).ino).toBe(original.ino);
    expect((await fs.stat(at('sub/alias'))).ino).toBe(original.ino);
    expect(original.nlink).toBe(3);
    expect(stats).toEqual({ bytes: 5, inodes: 2, whiteouts: 0, opaqueDirs: 0 });
  });

  it.runIf(isRoot)('creates device nodes and fifos', async () => {
    await unpack([
      { header: { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 } },
      { header: { name: 'dev/loop', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660 } },
      { header: { name: 'pipe', type: 'fifo', mode: 0o620 } },
    ]);
    const nul = await fs.stat(at('dev/null'));
    expect(nul.isCharacterDevice()).toBe(true);
    expect(nul.rdev).toBe((1 << 8) | 3); // makedev(1, 3)
    expect(nul.mode & 0o7777).toBe(0o666);
    expect((await fs.stat(at('dev/loop'))).isBlockDevice()).toBe(true);
    const pipe = await fs.stat(at('pipe'));
    expect(pipe.isFIFO()).toBe(true);
    expect(pipe.mode & 0o7777).toBe(0o620);
  });
});

describe('unpackLayer: whiteouts and xattrs', () => {
  it.runIf(isRoot)('turns .wh.<name> into a 0/0 character device', async () => {
    const stats = await unpack([file('.wh.x', ''), file('dir/.wh.y', 'ignored content')]);
    for (const name of ['x', 'dir/y']) {
      const info = await fs.stat(at(name));
      expect(info.isCharacterDevice()).toBe(true);
      expect(info.rdev).toBe(0);
    }
    await expect(fs.access(at('.wh.x'))).rejects.toThrow();
    expect(stats).toEqual({ bytes: 0, inodes: 3, whiteouts: 2, opaqueDirs: 0 });
  });

  it.runIf(isRoot)('marks .wh..wh..opq directories opaque and skips other aufs names', async () => {
    const stats = await unpack([
      file('dir/.wh..wh..opq', ''),
      file('dir/kept', 'k'),
      file('.wh..wh.aufs', ''),
      dir('.wh..wh.plnk/'),
      file('.wh..wh.plnk/123.456', 'aufs'),
    ]);
    expect(await xattr(at('dir'), 'trusted.overlay.opaque')).toBe('y');
    expect(await fs.readdir(target)).toEqual(['dir']);
    expect(stats).toMatchObject({ whiteouts: 0, opaqueDirs: 1 });
  });

  it.runIf(isRoot)('keeps what the same layer puts at a whited-out path, making directories opaque', async () => {
    await unpack([file('.wh.f', ''), file('f', 'new'), dir('d/'), file('.wh.d', ''), file('.wh.e', ''), file('e/inner', 'i')]);
    expect(await fs.readFile(at('f'), 'utf8')).toBe('new');
    expect((await fs.stat(at('d'))).isDirectory()).toBe(true);
    expect(await xattr(at('d'), 'trusted.overlay.opaque')).toBe('y');
    expect(await fs.readFile(at('e/inner'), 'utf8')).toBe('i');
    expect(await xattr(at('e'), 'trusted.overlay.opaque')).toBe('y');
  });

  it('applies PAX xattrs, binary values intact, but never overlay ones', async () => {
    const tar = await tarBytes([
      file('plain', 'p', { pax: { 'SCHILY.xattr.user.tscri': 'hello' } }),
      file('binary', 'b', { pax: { 'SCHILY.xattr.user.bin': 'XYZ' } }),
      dir('forged/', { pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } }),
    ]);
    // tar-stream writes PAX values as UTF-8; put bytes that are not valid UTF-8 in place.
    const placeholder = tar.indexOf('user.bin=XYZ') + 'user.bin='.length;
    Buffer.from([0x80, 0xff, 0x00]).copy(tar, placeholder);

    await unpackLayer(Readable.from([tar]), { target });
    expect(await xattr(at('plain'), 'user.tscri')).toBe('hello');
    expect(await xattrHex(at('binary'), 'user.bin')).toBe('0x80ff00');
    expect(await xattr(at('forged'), 'trusted.overlay.opaque')).toBeUndefined();
  });

  it('gives each entry its own xattrs across long names and file data', async () => {
    const longName = `${'deep/'.repeat(30)}${'n'.repeat(120)}`;
    await unpack([
      file(longName, 'long', { pax: { 'SCHILY.xattr.user.which': 'long' } }),
      file('data', 'd'.repeat(3000)),
      file('after', 'a', { pax: { 'SCHILY.xattr.user.which': 'after', 'SCHILY.xattr.user.second': '2' } }),
      dir('dir/', { pax: { 'SCHILY.xattr.user.which': 'dir' } }),
      symlink('no-xattrs', 'after'),
    ]);
    expect(await xattr(at(longName), 'user.which')).toBe('long');
    expect(await xattr(at('data'), 'user.which')).toBeUndefined();
    expect(await xattr(at('after'), 'user.which')).toBe('after');
    expect(await xattr(at('after'), 'user.second')).toBe('2');
    expect(await xattr(at('dir'), 'user.which')).toBe('dir');
  });
});

describe('the raw PAX xattr tap', () => {
  it("finds every entry's xattrs where tar-stream finds them, across all kinds of headers", async () => {
    // A deterministic mix of types, sizes, long names and link names, half with xattrs.
    const entries: TarEntry[] = Array.from({ length: 300 }, (_, i) => {
      const dice = createHash('sha256').update(`entry ${i}`).digest();
      const roll = (at: number, sides: number): number => dice.readUInt16BE(at * 2) % sides;
      const name = `${'segment/'.repeat(roll(0, 40))}entry-${i}`;
      const pax = roll(1, 2) === 0 ? undefined : { [`SCHILY.xattr.user.n${i}`]: `value ${i} ✓` };
      const header: EntryHeader = { name, pax, ...OWNER };
      switch (roll(2, 4)) {
        case 0:
          return { header: { ...header, name: `${name}/`, type: 'directory' } };
        case 1:
          return { header: { ...header, type: 'symlink', linkname: 'x'.repeat(roll(3, 300) + 1) } };
        default:
          return { header: { ...header, type: 'file' }, content: Buffer.alloc(roll(4, 3000), i) };
      }
    });
    const tar = Buffer.concat([...(await Promise.all(entries.map(entryBytes))), Buffer.alloc(1024)]);
    const tap = new XattrTap();
    const extractor = extract();
    const feeding = pipeline(Readable.from([tar]), tap, extractor);
    let checked = 0;
    let withXattrs = 0;
    for await (const entry of extractor) {
      const expected = Object.entries((entry.header.pax ?? {}) as Record<string, string>)
        .filter(([key]) => key.startsWith('SCHILY.xattr.'))
        .map(([key, value]) => ({ name: key.slice('SCHILY.xattr.'.length), value: Buffer.from(value) }));
      expect(tap.xattrsOf(entry.offset)).toEqual(expected);
      withXattrs += expected.length;
      checked += 1;
      entry.resume();
    }
    await feeding;
    expect(checked).toBe(entries.length);
    expect(withXattrs).toBeGreaterThan(100);
  });
});

/**
 * One entry's headers and data. A directory gets a nonzero size field, which readers ignore:
 * what follows a directory header is the next header.
 */
async function entryBytes(entry: TarEntry): Promise<Buffer> {
  const bytes = (await tarBytes([entry])).subarray(0, -1024);
  if (entry.header.type !== 'directory') return bytes;
  const header = bytes.subarray(-512);
  header.write('00000001000\0', 124, 'latin1'); // size 512
  header.fill(' ', 148, 156);
  const checksum = header.reduce((sum, byte) => sum + byte, 0);
  header.write(`${checksum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return bytes;
}

describe('unpackLayer: later entries replace earlier ones', () => {
  it('replaces a file by a file and a directory tree by a file', async () => {
    await unpack([file('f', 'old'), file('f', 'new', { mode: 0o600 }), dir('d/'), file('d/sub/x', 'x'), file('d', 'now a file')]);
    expect(await fs.readFile(at('f'), 'utf8')).toBe('new');
    expect((await fs.stat(at('f'))).mode & 0o7777).toBe(0o600);
    expect(await fs.readFile(at('d'), 'utf8')).toBe('now a file');
  });

  it('keeps a directory given twice, with the later metadata', async () => {
    const mtime = new Date('2018-01-01T00:00:00Z');
    await unpack([dir('d/', { mode: 0o755 }), file('d/x', 'x'), dir('d/', { mode: 0o700, mtime })]);
    const d = await fs.stat(at('d'));
    expect(d.mode & 0o7777).toBe(0o700);
    expect(d.mtime.getTime()).toBe(mtime.getTime());
    expect(await fs.readFile(at('d/x'), 'utf8')).toBe('x');
  });

  it('replaces a symlink by a directory, which then holds entries', async () => {
    await unpack([symlink('lib', '/etc'), dir('lib/'), file('lib/x', 'x')]);
    expect((await fs.lstat(at('lib'))).isDirectory()).toBe(true);
    expect(await fs.readFile(at('lib/x'), 'utf8')).toBe('x');
  });
});

describe('unpackLayer: unsafe layers', () => {
  const unsafe: [string, TarEntry[], string][] = [
    ['a parent escape', [file('../evil', 'x')], '../evil'],
    ['an escape through a folded path', [dir('a/'), file('a/../../evil', 'x')], 'a/../../evil'],
    ['an absolute name', [file('/abs/path', 'x')], '/abs/path'],
    ['a write through a symlink parent', [symlink('dir', '/tmp'), file('dir/x', 'x')], 'dir/x'],
    ['a write through a relative symlink parent', [symlink('lib', 'usr/lib'), dir('usr/lib/'), file('lib/x', 'x')], 'lib/x'],
    ['a hard link out of the layer', [hardlink('h', '../outside')], 'h'],
    ['a hard link to a missing entry', [file('present', 'x'), hardlink('h', 'missing')], 'h'],
    ['a hard link to a directory', [dir('d/'), hardlink('h', 'd')], 'h'],
    ['a hard link through a symlink', [symlink('lib', '/etc'), hardlink('h', 'lib/passwd')], 'h'],
    ['a whiteout through a symlink parent', [symlink('d', '/etc'), file('d/.wh.passwd', '')], 'd/.wh.passwd'],
    ['an opaque marker through a symlink parent', [symlink('d', '/etc'), file('d/.wh..wh..opq', '')], 'd/.wh..wh..opq'],
    ['an entry below a file', [file('f', 'x'), file('f/x', 'x')], 'f/x'],
    ['a symlink pointing out', [symlink('up', '../../..')], 'up'],
    ['a nested symlink pointing out', [symlink('a/b/up', '../../../etc')], 'a/b/up'],
    ['a whiteout of the parent directory', [file('d/.wh..', '')], 'd/.wh..'],
    ['a symlink replacing the layer root', [symlink('.', '/')], '.'],
  ];

  it.each(unsafe)('rejects %s promptly, destroying the input', async (_what, entries, entry) => {
    const tar = await tarBytes(entries);
    // No end-of-archive and no end of stream: the rejection must not wait for either.
    const source = new PassThrough();
    source.write(tar.subarray(0, tar.length - 1024));
    const error = await unpackLayer(source, { target }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(UnsafeLayerError);
    expect((error as UnsafeLayerError).entry).toBe(entry);
    expect((error as UnsafeLayerError).message).toContain(`layer entry "${entry}" rejected: `);
    expect(source.destroyed).toBe(true);
  });

  it('names the reason for an escape', async () => {
    await expect(unpack([file('../etc/passwd', 'x')])).rejects.toThrow('layer entry "../etc/passwd" rejected: escapes the layer directory');
  });

  it('wrote nothing outside the target', async () => {
    await unpack([symlink('dir', scratch), file('dir/x', 'x')]).catch(() => undefined);
    await unpack([file('../evil', 'x')]).catch(() => undefined);
    expect((await fs.readdir(scratch)).sort()).toEqual(['layer']);
  });
});

describe('unpackLayer: streams and cancellation', () => {
  it('rejects with the error of a failing source', async () => {
    const tar = await tarBytes([file('f', 'x'.repeat(5000))]);
    const source = new PassThrough();
    source.write(tar.subarray(0, 2048));
    const unpacking = unpackLayer(source, { target });
    await waitFor(() => fs.access(at('f')));
    source.destroy(new Error('connection reset'));
    await expect(unpacking).rejects.toThrow('connection reset');
  });

  it('rejects a truncated tar', async () => {
    const tar = await tarBytes([file('f', 'x'.repeat(2000))]);
    await expect(unpackLayer(Readable.from([tar.subarray(0, 1024)]), { target })).rejects.toThrow(/Unexpected end/);
  });

  it('aborts promptly with the abort reason, destroying the input', async () => {
    const tar = await tarBytes([file('first', 'done'), file('big', 'x'.repeat(1 << 20))]);
    const source = new PassThrough();
    source.write(tar.subarray(0, 1536 + 64 * 1024)); // "first" and the start of "big"
    const controller = new AbortController();
    const unpacking = unpackLayer(source, { target, signal: controller.signal });
    await waitFor(() => fs.access(at('big')));
    const reason = new Error('pull cancelled');
    controller.abort(reason);
    await expect(unpacking).rejects.toBe(reason);
    expect(source.destroyed).toBe(true);
  });

  it('rejects at once for an already aborted signal', async () => {
    const source = await tarStream([file('f', 'x')]);
    const reason = new Error('too late');
    await expect(unpackLayer(source, { target, signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(source.destroyed).toBe(true);
    expect(await fs.readdir(target)).toEqual([]);
  });

  it('streams a 20 MB file to disk instead of buffering it', async () => {
    const size = 20 * 1024 * 1024;
    const chunkSize = 64 * 1024;
    const sourceHash = createHash('sha256');
    let writtenBeforeLastChunk = 0;
    async function* content(): AsyncGenerator<Buffer> {
      for (let offset = 0; offset < size; offset += chunkSize) {
        if (offset + chunkSize >= size) writtenBeforeLastChunk = (await fs.stat(at('big'))).size;
        const chunk = Buffer.alloc(chunkSize, offset / chunkSize);
        sourceHash.update(chunk);
        yield chunk;
      }
    }
    const packer = pack();
    const sink = packer.entry({ name: 'big', size, mode: 0o644, ...OWNER });
    const feeding = pipeline(Readable.from(content()), sink as unknown as NodeJS.WritableStream).then(() => packer.finalize());

    const stats = await unpackLayer(Readable.from(packer), { target });
    await feeding;
    expect(stats.bytes).toBe(size);
    const diskHash = createHash('sha256');
    await pipeline(createReadStream(at('big')), diskHash);
    expect(diskHash.digest('hex')).toBe(sourceHash.digest('hex'));
    // With back-pressure only a few buffers are in flight between the source and the disk.
    expect(writtenBeforeLastChunk).toBeGreaterThan(size - 4 * 1024 * 1024);
  });
});

describe.runIf(isRoot)('unpackLayer: the layout overlayfs reads', () => {
  it('hides whited-out files and the lower content of opaque directories', async () => {
    const lower = path.join(scratch, 'lower');
    const upper = path.join(scratch, 'upper');
    const merged = path.join(scratch, 'merged');
    await Promise.all([lower, upper, merged].map((p) => fs.mkdir(p)));
    await unpack([file('a', 'a'), file('dir/x', 'x'), file('dir/y', 'y'), file('kept', 'k'), file('again/old', 'o')], lower);
    // `again` is deleted and recreated in one layer: a whiteout and a directory of one name.
    await unpack([file('.wh.a', ''), file('dir/.wh..wh..opq', ''), file('dir/z', 'z'), file('.wh.again', ''), file('again/new', 'n')], upper);

    await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${upper}:${lower}`, merged]);
    try {
      expect((await fs.readdir(merged)).sort()).toEqual(['again', 'dir', 'kept']);
      expect(await fs.readdir(path.join(merged, 'again'))).toEqual(['new']);
      await expect(fs.access(path.join(merged, 'a'))).rejects.toThrow(/ENOENT/);
      expect(await fs.readdir(path.join(merged, 'dir'))).toEqual(['z']);
      expect(await fs.readFile(path.join(merged, 'dir/z'), 'utf8')).toBe('z');
    } finally {
      await run('umount', [merged]);
    }
  });
});

async function waitFor(check: () => Promise<unknown>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}
