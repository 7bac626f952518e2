import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { TscriError } from '../../errors.js';

/** Content whose digest or size differs from its descriptor. */
export class DigestMismatchError extends TscriError {
  constructor(
    readonly expected: string,
    readonly actual: string,
    detail: string,
  ) {
    super('Internal', `content verification failed for ${expected}: ${detail}`);
  }
}

/**
 * A pass-through stream that hashes and counts what flows through it and fails at the end
 * unless both match the expected digest and size. A stream that runs past the expected size
 * fails at once instead of downloading an unbounded body.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private received = 0;

  constructor(
    private readonly expectedDigest: string,
    private readonly expectedSize: number | undefined,
    private readonly onBytes?: (n: number) => void,
  ) {
    super();
    const [algorithm] = expectedDigest.split(':');
    if (algorithm !== 'sha256' && algorithm !== 'sha512') {
      throw new DigestMismatchError(expectedDigest, '', `unsupported digest algorithm "${algorithm}"`);
    }
    this.hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    if (this.expectedSize !== undefined && this.received > this.expectedSize) {
      callback(new DigestMismatchError(this.expectedDigest, '', `more than the expected ${this.expectedSize} bytes`));
      return;
    }
    this.hash.update(chunk);
    this.onBytes?.(chunk.length);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = `${this.expectedDigest.split(':')[0]}:${this.hash.digest('hex')}`;
    if (this.expectedSize !== undefined && this.received !== this.expectedSize) {
      callback(new DigestMismatchError(this.expectedDigest, actual, `got ${this.received} bytes, expected ${this.expectedSize}`));
    } else if (actual !== this.expectedDigest) {
      callback(new DigestMismatchError(this.expectedDigest, actual, `content hashes to ${actual}`));
    } else {
      callback();
    }
  }
}

/** sha256 digest of a buffer, as `sha256:<hex>`. */
export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
