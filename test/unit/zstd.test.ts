import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { zstdDecompressor } from '../../src/image/store/decompress.js';
import { MAX_WINDOW_BYTES, ZstdFormatError, ZstdFrameScanner } from '../../src/image/store/zstd-frames.js';

const zstd = (input: Buffer, ...args: string[]): Buffer => execFileSync('zstd', ['-q', '-c', ...args], { input, maxBuffer: 1 << 30 });

/** Decompress `input` fed in pieces of `piece` bytes; the chunks that came out. */
async function decompress(input: Buffer, piece = 64 * 1024): Promise<Buffer[]> {
  const pieces = Array.from({ length: Math.ceil(input.length / piece) }, (_, i) => input.subarray(i * piece, (i + 1) * piece));
  const out: Buffer[] = [];
  await pipeline(Readable.from(pieces), zstdDecompressor(), new Writable({ write: (chunk: Buffer, _e, cb) => (out.push(chunk), cb()) }));
  return out;
}

const skippable = (payload: Buffer): Buffer => {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0x184d2a5e, 0);
  header.writeUInt32LE(payload.length, 4);
  return Buffer.concat([header, payload]);
};

describe('zstd layers', () => {
  const text = Buffer.from('tscri layer content '.repeat(20_000));
  const noise = randomBytes(300_000);

  it('decompresses frames of every kind, whatever the pieces they arrive in', async () => {
    // Known size with a checksum, unknown size (streamed), raw blocks (noise), a skippable frame between.
    const stream = Buffer.concat([zstd(text), zstd(noise, '--no-check'), skippable(Buffer.from('ignored')), zstd(text, '-19')]);
    const expected = Buffer.concat([text, noise, text]);
    for (const piece of [1, 7, 4096, 1 << 20]) expect(Buffer.concat(await decompress(stream, piece)).equals(expected)).toBe(true);
  });

  it('hands over a bomb one block at a time', async () => {
    const zeros = zstd(Buffer.alloc(256 * 1024 * 1024));
    expect(zeros.length).toBeLessThan(64 * 1024);
    const chunks = await decompress(zeros);
    expect(chunks.reduce((n, c) => n + c.length, 0)).toBe(256 * 1024 * 1024);
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(128 * 1024);
  });

  it('refuses a frame that asks for a window above the limit before decoding it', async () => {
    // Magic, descriptor (no single segment), window descriptor 2^(10+20) = 1 GiB.
    const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3, 0x01, 0x00, 0x00]);
    expect(() => new ZstdFrameScanner().scan(header)).toThrow(ZstdFormatError);
    await expect(decompress(header)).rejects.toThrow(/window, more than the 134217728 bytes/);
    expect(MAX_WINDOW_BYTES).toBe(128 * 1024 * 1024);
  });

  it('refuses a truncated stream, garbage and an empty one', async () => {
    const whole = zstd(text);
    await expect(decompress(whole.subarray(0, whole.length - 10))).rejects.toThrow(ZstdFormatError);
    await expect(decompress(Buffer.from('not zstd at all'))).rejects.toThrow(/not a zstd frame/);
    await expect(decompress(Buffer.alloc(0))).rejects.toThrow(/no frame/);
  });

  it('names the block that breaks a frame\'s limits', () => {
    // A single-segment frame of 16 bytes, then a raw block claiming 1000 bytes.
    const frame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, 16, (1000 << 3) & 0xff, (1000 << 3) >> 8, 0]);
    expect(() => new ZstdFrameScanner().scan(frame)).toThrow(/a block of 1000 bytes exceeds the frame's maximum of 16/);
  });
});
