import { Readable, Transform, type TransformCallback } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { TscriError, UnavailableError, messageOf } from '../../errors.js';
import { oneLine } from '../../util/text.js';
import { IdleTimer } from '../idle-timer.js';

/**
 * Reading what a registry sends without trusting it: every body read whole has a cap, every
 * body an idle timeout, and error messages carry only a short, quoted piece of its text.
 */

const KiB = 1024;
const MiB = 1024 * KiB;

export interface BodyLimit {
  bytes: number;
  /** What the limit is for, as messages name it ("the 4 MiB limit for manifests"). */
  of: string;
}

/**
 * The most tscri reads whole from a registry. Manifests and indexes: containerd's limit, which
 * registries also enforce on push. Configs are read up to the size their descriptor names, and
 * a descriptor naming more than 8 MiB is refused (real configs are a few KiB; one with a long
 * history reaches tens of KiB). Honest token responses and error bodies are a few hundred bytes.
 */
export const BODY_LIMITS = {
  manifest: { bytes: 4 * MiB, of: 'manifests' },
  config: { bytes: 8 * MiB, of: 'image configs' },
  token: { bytes: 1 * MiB, of: 'token responses' },
  errorBody: { bytes: 64 * KiB, of: 'error bodies' },
} as const satisfies Record<string, BodyLimit>;

/** How many characters of anything a registry sent an error message may quote. */
const EXCERPT_CHARS = 200;

/** A registry body above a limit: refused before it is read, or cut off as it passes the limit. */
export class BodyTooLargeError extends TscriError {
  constructor(message: string) {
    super('ResourceExhausted', message, { hint: 'the registry sends more than any valid image needs; check the registry or mirror' });
  }
}

/** Text a registry sent, fit for an error message: one line, at most a couple of hundred characters. */
export function excerpt(text: string, max = EXCERPT_CHARS): string {
  return oneLine(text, max);
}

/** "the 4 MiB limit for manifests" */
export function limitText(limit: BodyLimit): string {
  return `the ${formatBytes(limit.bytes)} limit for ${limit.of}`;
}

/** 4194304 → "4 MiB", 65536 → "64 KiB", anything else in bytes. */
function formatBytes(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} bytes`;
}

/** What a body read needs to fail well, and the hooks a pull watches it through. */
export interface BodyOptions {
  /** What the body is, for messages: "manifest v1", "token response", … */
  what: string;
  url: string;
  /** A body that delivers nothing for this long is abandoned. */
  idleMs: number;
  /** The name of the setting idleMs comes from, for messages. */
  idleSetting?: string;
  /** Called with the size of every chunk as it arrives. */
  onData?: (bytes: number) => void;
  /** Called once when the body is finished with: read, failed or abandoned. */
  onEnd?: () => void;
  signal?: AbortSignal;
}

/**
 * The number of bytes a response says its body holds, if that is the number fetch will hand
 * over: with a Content-Encoding, Content-Length counts encoded bytes, not the decoded ones.
 */
export function announcedLength(response: Response): number | undefined {
  const encoding = response.headers.get('content-encoding');
  if (encoding && encoding.toLowerCase() !== 'identity') return undefined;
  const header = response.headers.get('content-length');
  if (header === null || !/^\d+$/.test(header.trim())) return undefined;
  return Number(header.trim());
}

/** Drop a body unread; the connection goes with it. */
export async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}

/**
 * Read a body whole, never more than `limit`: a Content-Length above it is refused before
 * anything is read, a body without one is cut off as soon as it passes the limit, and a body
 * that delivers nothing for `idleMs` is abandoned.
 */
export async function readBody(response: Response, limit: BodyLimit, options: BodyOptions): Promise<Buffer> {
  const announced = announcedLength(response);
  if (announced !== undefined && announced > limit.bytes) {
    await discard(response);
    options.onEnd?.();
    throw new BodyTooLargeError(`${describe(options)} announces ${announced} bytes (Content-Length), above ${limitText(limit)}`);
  }
  if (!response.body) {
    options.onEnd?.();
    return Buffer.alloc(0);
  }
  return readCapped(response.body.getReader(), limit, options);
}

async function readCapped(reader: ReadableStreamDefaultReader<Uint8Array>, limit: BodyLimit, options: BodyOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  let failure: unknown;
  // A pending read() resolves as done once the reader is cancelled, so the loop sees `failure`.
  const fail = (err: unknown): void => {
    failure ??= err;
    void reader.cancel(err).catch(() => undefined);
  };
  const idle = new IdleTimer(options.idleMs, () => fail(stalled(options)));
  const onAbort = (): void => fail(options.signal!.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (failure) throw failure;
      if (done) return Buffer.concat(chunks, received);
      received += value.byteLength;
      if (received > limit.bytes) {
        fail(new BodyTooLargeError(`${describe(options)} passed ${limitText(limit)}; cut off`));
        throw failure;
      }
      idle.touch();
      options.onData?.(value.byteLength);
      chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    }
  } catch (err) {
    throw failure ?? readFailed(options, err);
  } finally {
    idle.stop();
    options.signal?.removeEventListener('abort', onAbort);
    options.onEnd?.();
  }
}

/**
 * A body as a Node stream (for layers, which are never held whole): it fails once nothing
 * arrives for `idleMs`, and reports every chunk to `onData`. Errors and early destruction
 * travel both ways between the network stream and the one returned.
 */
export function bodyStream(response: Response, options: BodyOptions): Readable {
  const source = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
  const guard = new IdleGuard(options);
  source.on('error', (err) => guard.destroy(readFailed(options, err)));
  guard.once('close', () => {
    source.destroy();
    options.onEnd?.();
  });
  return source.pipe(guard);
}

class IdleGuard extends Transform {
  private readonly idle: IdleTimer;

  constructor(private readonly options: BodyOptions) {
    super();
    this.idle = new IdleTimer(options.idleMs, () => this.destroy(stalled(options)));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.idle.touch();
    this.options.onData?.(chunk.length);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.idle.stop();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.idle.stop();
    callback(err);
  }
}

function describe(options: BodyOptions): string {
  return `${options.what} from ${excerpt(options.url)}`;
}

function stalled(options: BodyOptions): UnavailableError {
  const setting = options.idleSetting ? ` (${options.idleSetting})` : '';
  return new UnavailableError(`no data for ${options.idleMs / 1000} s${setting} reading ${describe(options)}`);
}

/** A failed read as a typed error: ours (an abort's reason) as is, the network's wrapped. */
function readFailed(options: BodyOptions, err: unknown): Error {
  if (err instanceof TscriError) return err;
  const cause = (err as { cause?: unknown }).cause;
  return new UnavailableError(`reading ${describe(options)}: ${messageOf(cause ?? err)}`, { cause: err });
}
