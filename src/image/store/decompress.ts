/**
 * The decompressing stage of a layer's pipeline, by the compression its media type names.
 * Each stage streams with bounded memory whatever the blob claims: gzip through zlib, zstd
 * through fzstd fed one block at a time (see zstd-frames.ts).
 */
import { Duplex } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { messageOf } from '../../errors.js';
import type { LayerCompression } from '../registry/manifest.js';
import { ZstdFormatError, ZstdFrameScanner } from './zstd-frames.js';

/** The stage that turns a blob of `compression` into its tar, or none for an uncompressed one. */
export function decompressorFor(compression: LayerCompression): NodeJS.ReadWriteStream | undefined {
  switch (compression) {
    case 'gzip':
      return createGunzip();
    case 'zstd':
      return zstdDecompressor();
    case 'none':
      return undefined;
  }
}

/**
 * A zstd decompressing stream. The decoder is pure JavaScript (no addon to build) and runs on
 * the daemon's thread, one block (at most 128 KiB of output) per step; the readable side
 * yields each block only as fast as the consumer reads, so a block that expands a thousandfold
 * costs 128 KiB of memory at a time, not its total.
 */
export function zstdDecompressor(): Duplex {
  return Duplex.from(async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const scanner = new ZstdFrameScanner();
    const decoded: Buffer[] = [];
    const decoder = new Decompress((data) => {
      if (data.length > 0) decoded.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    });
    const feed = (piece: Uint8Array, final = false): void => {
      try {
        decoder.push(piece, final);
      } catch (err) {
        throw new ZstdFormatError(messageOf(err));
      }
    };
    for await (const chunk of source) {
      let start = 0;
      // Cut where blocks end, so that one push decodes at most one block.
      for (const cut of [...scanner.scan(chunk), chunk.length]) {
        if (cut === start) continue;
        feed(chunk.subarray(start, cut));
        start = cut;
        while (decoded.length > 0) yield decoded.shift()!;
      }
    }
    scanner.end();
    feed(new Uint8Array(0), true);
    while (decoded.length > 0) yield decoded.shift()!;
  });
}
