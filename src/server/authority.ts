import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import hpack from 'hpack.js';

/**
 * Why this module exists: gRPC-Go clients before 1.5x (crictl and critest 1.26, kubelets
 * before 1.27) send the Unix socket's path as the HTTP/2 `:authority`, e.g.
 * "/run/tscri/tscri.sock". nghttp2, under Node's http2, rejects a `/` in an authority and
 * resets every stream with PROTOCOL_ERROR before grpc-js sees it, and Node offers no switch.
 *
 * So each client connection passes through `AuthorityFilter` before it reaches grpc-js. The
 * filter reads the client's frames; on the first header block it decides:
 *   - authority valid: hand the rest of the connection through untouched;
 *   - authority invalid: for the whole connection, decode every header block (tracking the
 *     client's HPACK dynamic table), replace `:authority` by "localhost", and re-encode
 *     the block with literals that are never indexed, so nghttp2's dynamic table stays empty
 *     and cannot drift from ours.
 * Only client-to-server bytes are filtered; replies go to the socket as they are.
 */

const PREFACE_LENGTH = 24;
const FRAME_HEADER_LENGTH = 9;
const TYPE_HEADERS = 0x1;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** The smallest SETTINGS_MAX_FRAME_SIZE a peer may announce; safe for frames we emit. */
const MAX_EMITTED_FRAME = 16384;
/** Node's http2 announces the default header table size. */
const HEADER_TABLE_SIZE = 4096;

/** RFC 3986 authority characters: what nghttp2 accepts. */
const VALID_AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/;

export function isValidAuthority(value: string): boolean {
  return VALID_AUTHORITY.test(value);
}

type Mode = 'undecided' | 'passthrough' | 'rewrite';

interface PendingBlock {
  streamId: number;
  flags: number;
  priority: Buffer | undefined;
  fragments: Buffer[];
  /** The frames exactly as received, for the pass-through decision. */
  raw: Buffer[];
}

/** Incremental filter over the client's byte stream: bytes in, bytes out. */
export class AuthorityFilter {
  private mode: Mode = 'undecided';
  private buffered: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;
  private pending: PendingBlock | undefined;
  private readonly decoder = hpack.decompressor.create({ table: { size: HEADER_TABLE_SIZE } });

  /** Feed bytes from the client; returns the bytes to hand to the HTTP/2 server. */
  push(chunk: Buffer): Buffer {
    if (this.mode === 'passthrough') return chunk;
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const out: Buffer[] = [];
    if (!this.prefaceSeen) {
      if (this.buffered.length < PREFACE_LENGTH) return Buffer.alloc(0);
      out.push(this.buffered.subarray(0, PREFACE_LENGTH));
      this.buffered = this.buffered.subarray(PREFACE_LENGTH);
      this.prefaceSeen = true;
    }
    while (!this.passingThrough() && this.buffered.length >= FRAME_HEADER_LENGTH) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < FRAME_HEADER_LENGTH + length) break;
      const frame = this.buffered.subarray(0, FRAME_HEADER_LENGTH + length);
      this.buffered = this.buffered.subarray(FRAME_HEADER_LENGTH + length);
      out.push(...this.frame(frame));
    }
    if (this.passingThrough()) {
      out.push(this.buffered);
      this.buffered = Buffer.alloc(0);
    }
    return Buffer.concat(out);
  }

  /** A method, not a field read, because frame() may switch the mode midway through push(). */
  private passingThrough(): boolean {
    return this.mode === 'passthrough';
  }

  private frame(frame: Buffer): Buffer[] {
    const type = frame[3]!;
    const flags = frame[4]!;
    const streamId = frame.readUInt32BE(5) & 0x7fffffff;
    const payload = frame.subarray(FRAME_HEADER_LENGTH);
    if (type === TYPE_HEADERS) {
      const { fragment, priority } = headersFragment(payload, flags);
      this.pending = { streamId, flags, priority, fragments: [fragment], raw: [frame] };
    } else if (type === TYPE_CONTINUATION && this.pending && this.pending.streamId === streamId) {
      this.pending.fragments.push(payload);
      this.pending.raw.push(frame);
    } else {
      return [frame];
    }
    if (!(flags & FLAG_END_HEADERS)) return [];
    const block = this.pending!;
    this.pending = undefined;
    return this.completeBlock(block);
  }

  private completeBlock(block: PendingBlock): Buffer[] {
    const headers = this.decode(Buffer.concat(block.fragments));
    const authority = headers.find((h) => h.name === ':authority')?.value ?? '';
    if (this.mode === 'undecided') {
      if (isValidAuthority(authority)) {
        // The server's decoder has seen nothing yet, so it can take the client's encoding as is.
        this.mode = 'passthrough';
        return block.raw;
      }
      this.mode = 'rewrite';
    }
    const rewritten = headers.map((h) =>
      h.name === ':authority' && !isValidAuthority(h.value) ? { name: h.name, value: 'localhost' } : h,
    );
    return headerFrames(block, encodeLiterals(rewritten));
  }

  private decode(block: Buffer): Array<{ name: string; value: string }> {
    this.decoder.write(block);
    let failure: Error | null = null;
    this.decoder.execute((err) => (failure = err));
    if (failure) throw failure;
    const headers: Array<{ name: string; value: string }> = [];
    for (let field = this.decoder.read(); field !== null; field = this.decoder.read()) {
      headers.push({ name: field.name, value: field.value });
    }
    return headers;
  }
}

function headersFragment(payload: Buffer, flags: number): { fragment: Buffer; priority: Buffer | undefined } {
  let start = 0;
  let end = payload.length;
  if (flags & FLAG_PADDED) {
    end -= payload[0]!;
    start = 1;
  }
  let priority: Buffer | undefined;
  if (flags & FLAG_PRIORITY) {
    priority = payload.subarray(start, start + 5);
    start += 5;
  }
  return { fragment: payload.subarray(start, end), priority };
}

/** A header block of "literal header field never indexed, new name" entries, without Huffman. */
export function encodeLiterals(headers: Array<{ name: string; value: string }>): Buffer {
  const parts: Buffer[] = [];
  for (const { name, value } of headers) {
    parts.push(Buffer.from([0x10]), encodeString(name), encodeString(value));
  }
  return Buffer.concat(parts);
}

function encodeString(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  return Buffer.concat([encodeInteger(bytes.length, 7, 0x00), bytes]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 section 5.1). */
function encodeInteger(value: number, prefixBits: number, firstByteFlags: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const bytes = [firstByteFlags | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** A HEADERS frame (plus CONTINUATION frames when the block is large) carrying `block`. */
function headerFrames(original: PendingBlock, block: Buffer): Buffer[] {
  const prefix = original.priority ?? Buffer.alloc(0);
  const firstRoom = MAX_EMITTED_FRAME - prefix.length;
  const chunks: Buffer[] = [block.subarray(0, firstRoom)];
  for (let offset = firstRoom; offset < block.length; offset += MAX_EMITTED_FRAME) {
    chunks.push(block.subarray(offset, offset + MAX_EMITTED_FRAME));
  }
  return chunks.map((chunk, i) => {
    const last = i === chunks.length - 1;
    const endFlag = last ? FLAG_END_HEADERS : 0;
    if (i === 0) {
      const flags = (original.flags & (FLAG_END_STREAM | FLAG_PRIORITY)) | endFlag;
      return frameOf(TYPE_HEADERS, flags, original.streamId, Buffer.concat([prefix, chunk]));
    }
    return frameOf(TYPE_CONTINUATION, endFlag, original.streamId, chunk);
  });
}

function frameOf(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_LENGTH);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/**
 * The client's socket as grpc-js sees it: reads come through an AuthorityFilter, writes go
 * straight to the socket. Back-pressure is passed on both ways.
 */
export function filteredConnection(socket: Socket): Duplex {
  const filter = new AuthorityFilter();
  const duplex: Duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    let out: Buffer;
    try {
      out = filter.push(chunk);
    } catch (err) {
      duplex.destroy(err as Error);
      return;
    }
    if (out.length > 0 && !duplex.push(out)) socket.pause();
  });
  socket.on('end', () => duplex.push(null));
  socket.on('error', (err) => duplex.destroy(err));
  socket.on('close', () => duplex.destroy());
  return duplex;
}
