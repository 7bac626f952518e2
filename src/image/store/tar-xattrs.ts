/**
 * Raw PAX xattr records of a tar stream.
 *
 * tar-stream hands PAX records over as UTF-8 decoded strings, so a binary value such as
 * security.capability (bytes like 0x80 or 0xc0 that are not valid UTF-8) arrives mangled.
 * XattrTap sits in front of the extractor, walks the same headers, and keeps the
 * `SCHILY.xattr.<name>` values as bytes, keyed by the offset of the header they belong to,
 * which tar-stream reports as each entry stream's `offset`.
 *
 * It follows tar-stream's reading rules where they matter for finding the next header: PAX
 * `size` overrides the header's size, and directory entries have no data. On a header it
 * cannot read it stops tracking: the extractor fails on such a stream anyway.
 */
import { Transform, type TransformCallback } from 'node:stream';

/** One extended attribute of an entry, its value as raw bytes. */
export interface Xattr {
  name: string;
  value: Buffer;
}

const BLOCK = 512;
/** tar-stream refuses larger PAX and GNU long-name bodies. */
const MAX_META_BODY = 4 * 1024 * 1024;
const XATTR_KEY_PREFIX = 'SCHILY.xattr.';

const TYPE_PAX = 0x78; // 'x': records for the next entry
const TYPE_PAX_GLOBAL = 0x67; // 'g': records for all following entries
const TYPE_GNU_LONG_LINK = 0x4b; // 'K'
const TYPE_GNU_LONG_NAME = 0x4c; // 'L'
const TYPE_GNU_LONG_NAME_OLD = 0x4e; // 'N'
const TYPE_DIRECTORY = 0x35; // '5'

type Phase = 'header' | 'pax-body' | 'global-pax-body' | 'skip' | 'lost';

interface PaxRecords {
  xattrs: Xattr[];
  size: number | undefined;
}

/** A pass-through stage that records raw xattrs for the extractor's entries. */
export class XattrTap extends Transform {
  private readonly byHeaderOffset = new Map<number, Xattr[]>();
  /** Stream offset of the next byte to read. */
  private position = 0;
  private phase: Phase = 'header';
  /** Bytes still to read in this phase. */
  private remaining = BLOCK;
  private collected: Buffer[] = [];
  /** Records of the last per-entry PAX header, for the next entry. */
  private pending: PaxRecords | undefined;
  /** A `size` from a global PAX header, which tar-stream merges into later per-entry ones. */
  private globalSize: number | undefined;

  /** The xattrs of the entry whose header starts at `headerOffset`, handed over once. */
  xattrsOf(headerOffset: number): Xattr[] {
    const xattrs = this.byHeaderOffset.get(headerOffset) ?? [];
    this.byHeaderOffset.delete(headerOffset);
    return xattrs;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.scan(chunk);
    callback(null, chunk);
  }

  private scan(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && this.phase !== 'lost') {
      const take = Math.min(this.remaining, chunk.length - at);
      if (this.phase !== 'skip') this.collected.push(chunk.subarray(at, at + take));
      at += take;
      this.position += take;
      this.remaining -= take;
      if (this.remaining === 0) this.phaseComplete();
    }
  }

  private expect(phase: Phase, bytes: number): void {
    this.phase = phase;
    this.remaining = bytes;
    if (bytes === 0) this.phaseComplete();
  }

  private phaseComplete(): void {
    const data = this.collected.length === 1 ? this.collected[0]! : Buffer.concat(this.collected);
    this.collected = [];
    switch (this.phase) {
      case 'header':
        this.readHeader(data, this.position - BLOCK);
        return;
      case 'pax-body':
        this.pending = parsePaxRecords(data);
        if (this.pending.size === undefined) this.pending.size = this.globalSize;
        this.expect('skip', padding(data.length));
        return;
      case 'global-pax-body':
        this.globalSize = parsePaxRecords(data).size;
        this.expect('skip', padding(data.length));
        return;
      case 'skip':
        this.expect('header', BLOCK);
        return;
      case 'lost':
        return;
    }
  }

  private readHeader(block: Buffer, offset: number): void {
    if (isEndOfArchiveBlock(block)) return this.expect('header', BLOCK);
    const size = readSize(block);
    if (size === undefined) return this.expect('lost', 0);
    const type = block[156];
    switch (type) {
      case TYPE_PAX:
      case TYPE_PAX_GLOBAL:
        if (size > MAX_META_BODY) return this.expect('lost', 0);
        return this.expect(type === TYPE_PAX ? 'pax-body' : 'global-pax-body', size);
      case TYPE_GNU_LONG_NAME:
      case TYPE_GNU_LONG_NAME_OLD:
      case TYPE_GNU_LONG_LINK:
        return this.expect('skip', size + padding(size));
      default:
        return this.readEntryHeader(block, offset, size);
    }
  }

  private readEntryHeader(block: Buffer, offset: number, headerSize: number): void {
    const records = this.pending;
    this.pending = undefined;
    if (records !== undefined && records.xattrs.length > 0) this.byHeaderOffset.set(offset, records.xattrs);
    // tar-stream reads no data after a directory header whatever its size field says (a
    // regular file named "dir/" is still a file to it, with data).
    const size = block[156] === TYPE_DIRECTORY ? 0 : (records?.size ?? headerSize);
    this.expect('skip', size + padding(size));
  }
}

function padding(size: number): number {
  const over = size % BLOCK;
  return over === 0 ? 0 : BLOCK - over;
}

/** A block of zeros (its checksum field aside) ends the archive; readers skip it. */
function isEndOfArchiveBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) {
    if (i >= 148 && i < 156) continue;
    if (block[i] !== 0) return false;
  }
  return true;
}

/** The size field: octal text, or base-256 when its first byte has the high bit set. */
function readSize(block: Buffer): number | undefined {
  const field = block.subarray(124, 136);
  const first = field[0]!;
  if (first & 0x80) {
    if (first !== 0x80) return undefined; // negative
    return field.subarray(1).reduce((sum, byte) => sum * 256 + byte, 0);
  }
  const digits = field.toString('latin1').replace(/^ +/, '').split(' ')[0]!.replace(/^\0+/, '');
  if (digits === '') return 0;
  const size = parseInt(digits, 8);
  return Number.isNaN(size) ? undefined : size;
}

/** PAX records are `<length> <key>=<value>\n`, the length counting the whole record. */
function parsePaxRecords(body: Buffer): PaxRecords {
  const records: PaxRecords = { xattrs: [], size: undefined };
  let rest = body;
  while (rest.length > 0) {
    const space = rest.indexOf(0x20);
    if (space <= 0) break;
    const length = parseInt(rest.toString('latin1', 0, space), 10);
    if (!length || length > rest.length) break;
    const record = rest.subarray(space + 1, length - 1);
    rest = rest.subarray(length);
    const equals = record.indexOf(0x3d);
    if (equals === -1) break;
    const key = record.toString('utf8', 0, equals);
    const value = record.subarray(equals + 1);
    if (key === 'size') {
      const size = parseInt(value.toString('latin1'), 10);
      if (!Number.isNaN(size)) records.size = size;
    } else if (key.startsWith(XATTR_KEY_PREFIX)) {
      records.xattrs.push({ name: key.slice(XATTR_KEY_PREFIX.length), value: Buffer.from(value) });
    }
  }
  return records;
}
