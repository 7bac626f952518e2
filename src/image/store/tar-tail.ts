import { Transform, type TransformCallback } from 'node:stream';

const BLOCK = 512;
const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/**
 * Pass a tar stream through and, at its end, pad it to a whole block and add the two zero
 * blocks that mark the end of an archive. Some image builders (umoci 0.4 among them) stop
 * right after the last file's data, and their digests cover exactly those bytes, so such a
 * layer is legitimate; Go's tar reader accepts it, tar-stream needs the tail. A complete
 * archive already has its end marker, after which readers ignore the extra zeros.
 */
export class TarTail extends Transform {
  private length = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.length += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const padding = (BLOCK - (this.length % BLOCK)) % BLOCK;
    if (padding > 0) this.push(Buffer.alloc(padding));
    this.push(END_OF_ARCHIVE);
    callback();
  }
}
