/**
 * Walks the frame and block structure of a zstd stream (RFC 8878) without decoding it, to
 * tell the decoder where each block ends and to refuse what would make it allocate too much.
 *
 * The decoder (fzstd) allocates a frame's whole window as soon as it reads the frame header,
 * up to 2 GiB, and decodes every complete block of the input it is handed in one call. Fed
 * one block at a time, it produces at most one block (128 KiB) per call; with the window
 * checked first, it never holds more than MAX_WINDOW_BYTES.
 */
import { TscriError } from '../../errors.js';

/**
 * The largest window a frame may ask for: the reference decoder's default limit
 * (ZSTD_WINDOWLOG_LIMIT_DEFAULT, 2^27), which `zstd -d` also applies unless told otherwise,
 * so whatever it decompresses with default settings decompresses here.
 */
export const MAX_WINDOW_BYTES = 128 * 1024 * 1024;
/** A block never regenerates more than this, nor takes more than this compressed. */
const MAX_BLOCK_BYTES = 128 * 1024;

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

/** A zstd stream that is malformed or needs more memory than tscri gives a layer. */
export class ZstdFormatError extends TscriError {
  constructor(message: string) {
    super('Internal', `zstd layer: ${message}`);
  }
}

type State =
  /** Between frames: reading a magic number and, for a zstd frame, its header. */
  | { at: 'frame-start' }
  /** Inside a skippable frame: bytes left to pass over. */
  | { at: 'skip'; left: number }
  /** Reading a block header (3 bytes). */
  | { at: 'block-header'; blockMax: number; checksum: boolean }
  /** Inside a block's content. */
  | { at: 'block'; left: number; last: boolean; blockMax: number; checksum: boolean }
  /** The frame's content checksum (4 bytes) after its last block. */
  | { at: 'checksum'; left: number };

/**
 * Feed it the stream chunk by chunk; for each chunk it answers the offsets in that chunk at
 * which a block (or a skippable frame, or a checksum) ends. Throws ZstdFormatError for a frame
 * it refuses. `end()` throws when the stream stops inside a frame.
 */
export class ZstdFrameScanner {
  private state: State = { at: 'frame-start' };
  /** Header bytes of a frame or block split across chunks. */
  private pending = Buffer.alloc(0);
  private frames = 0;

  /** Offsets in `chunk` just after each unit (block, skippable frame, checksum) that ends there. */
  scan(chunk: Buffer): number[] {
    const cuts: number[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      const used = this.step(chunk, offset);
      offset += used.consumed;
      if (used.unitEnded) cuts.push(offset);
    }
    return cuts;
  }

  /** The stream ended: it must end between frames, after at least one. */
  end(): void {
    if (this.state.at !== 'frame-start' || this.pending.length > 0) throw new ZstdFormatError('the stream ends inside a frame');
    if (this.frames === 0) throw new ZstdFormatError('the stream holds no frame');
  }

  private step(chunk: Buffer, offset: number): Step {
    const state = this.state;
    switch (state.at) {
      case 'frame-start':
        return this.readFrameHeader(chunk, offset);
      case 'block-header':
        return this.readBlockHeader(chunk, offset, state);
      case 'skip':
      case 'block':
      case 'checksum': {
        const consumed = Math.min(state.left, chunk.length - offset);
        state.left -= consumed;
        if (state.left > 0) return { consumed, unitEnded: false };
        this.state = this.after(state);
        return { consumed, unitEnded: true };
      }
    }
  }

  /** What follows a unit whose last byte has been read. */
  private after(state: State): State {
    if (state.at === 'block' && !state.last) return { at: 'block-header', blockMax: state.blockMax, checksum: state.checksum };
    if (state.at === 'block' && state.checksum) return { at: 'checksum', left: 4 };
    return { at: 'frame-start' };
  }

  /** Add up to `size - pending` bytes of `chunk` to `pending`; how many it took. */
  private gather(chunk: Buffer, offset: number, size: number): number {
    const take = Math.min(size - this.pending.length, chunk.length - offset);
    this.pending = Buffer.concat([this.pending, chunk.subarray(offset, offset + take)]);
    return take;
  }

  /** The header is read in two goes: magic and descriptor (5 bytes) tell its length. */
  private readFrameHeader(chunk: Buffer, offset: number): Step {
    const need = this.pending.length < 5 ? 5 : frameHeaderLength(this.pending);
    const consumed = this.gather(chunk, offset, need);
    if (this.pending.length < need) return { consumed, unitEnded: false };
    const magic = this.pending.readUInt32LE(0);
    const skippable = ((magic & SKIPPABLE_MAGIC_MASK) >>> 0) === SKIPPABLE_MAGIC;
    if (!skippable && magic !== ZSTD_MAGIC) throw new ZstdFormatError(`not a zstd frame (magic 0x${magic.toString(16)})`);
    if (need === 5) return { consumed, unitEnded: false }; // every header is longer: read the rest
    const header = this.pending;
    this.pending = Buffer.alloc(0);
    this.frames++;
    if (skippable) {
      const left = header.readUInt32LE(4);
      this.state = left > 0 ? { at: 'skip', left } : { at: 'frame-start' };
      return { consumed, unitEnded: left === 0 };
    } else {
      const { windowSize, checksum } = parseFrameHeader(header);
      this.state = { at: 'block-header', blockMax: Math.min(windowSize, MAX_BLOCK_BYTES), checksum };
    }
    return { consumed, unitEnded: false };
  }

  private readBlockHeader(chunk: Buffer, offset: number, state: Extract<State, { at: 'block-header' }>): Step {
    const consumed = this.gather(chunk, offset, 3);
    if (this.pending.length < 3) return { consumed, unitEnded: false };
    const header = this.pending.readUIntLE(0, 3);
    this.pending = Buffer.alloc(0);
    const last = (header & 1) === 1;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw new ZstdFormatError('reserved block type');
    if (size > state.blockMax) throw new ZstdFormatError(`a block of ${size} bytes exceeds the frame's maximum of ${state.blockMax}`);
    // A raw block's content is its size; an RLE block's one byte repeated size times.
    const left = type === 1 ? 1 : size;
    this.state = { at: 'block', left, last, blockMax: state.blockMax, checksum: state.checksum };
    if (left > 0) return { consumed, unitEnded: false };
    this.state = this.after(this.state);
    return { consumed, unitEnded: true };
  }
}

interface Step {
  consumed: number;
  /** A block, skippable frame or checksum ended at the last byte consumed. */
  unitEnded: boolean;
}

/**
 * Length of a frame header (magic included) from its first 5 bytes. Skippable frames have
 * an 8-byte header (magic and length).
 */
function frameHeaderLength(bytes: Buffer): number {
  if (((bytes.readUInt32LE(0) & SKIPPABLE_MAGIC_MASK) >>> 0) === SKIPPABLE_MAGIC) return 8;
  const descriptor = bytes[4]!;
  const singleSegment = (descriptor >> 5) & 1;
  const contentSizeBytes = [singleSegment, 2, 4, 8][descriptor >> 6]!;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]!;
  return 5 + (singleSegment ? 0 : 1) + dictionaryBytes + contentSizeBytes;
}

interface FrameHeader {
  windowSize: number;
  checksum: boolean;
}

function parseFrameHeader(bytes: Buffer): FrameHeader {
  const descriptor = bytes[4]!;
  if (descriptor & 0x08) throw new ZstdFormatError('reserved bit set in a frame header');
  const singleSegment = ((descriptor >> 5) & 1) === 1;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]!;
  let at = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const windowDescriptor = bytes[at++]!;
    const base = 2 ** (10 + (windowDescriptor >> 3));
    windowSize = base + (base / 8) * (windowDescriptor & 7);
  }
  const dictionaryId = dictionaryBytes === 0 ? 0 : bytes.readUIntLE(at, dictionaryBytes);
  at += dictionaryBytes;
  // Layers are compressed without a dictionary; a decoder cannot fetch one.
  if (dictionaryId !== 0) throw new ZstdFormatError(`the frame needs dictionary ${dictionaryId}`);
  // A single-segment frame's window is its whole content.
  if (singleSegment) windowSize = contentSize(bytes, at, descriptor >> 6);
  if (windowSize > MAX_WINDOW_BYTES) {
    throw new ZstdFormatError(`the frame needs a ${windowSize}-byte window, more than the ${MAX_WINDOW_BYTES} bytes allowed (zstd --long=28 or higher?)`);
  }
  return { windowSize, checksum: ((descriptor >> 2) & 1) === 1 };
}

function contentSize(bytes: Buffer, at: number, flag: number): number {
  switch (flag) {
    case 0:
      return bytes[at]!;
    case 1:
      return bytes.readUInt16LE(at) + 256;
    case 2:
      return bytes.readUInt32LE(at);
    default:
      return Number(bytes.readBigUInt64LE(at));
  }
}
