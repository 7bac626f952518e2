import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { TscriError, errnoCode } from '../../errors.js';
import { newId } from '../../util/ids.js';
import { compressionOf, type Descriptor } from '../registry/manifest.js';
import { VerifyingStream } from '../registry/verify.js';
import { decompressorFor } from './decompress.js';
import type { StoreLayout } from './layout.js';
import { TarTail } from './tar-tail.js';
import { unpackLayer } from './unpack.js';
import type { UnpackStats } from './unpack-types.js';

/** One layer of an image as a pull sees it. */
export interface LayerSource {
  /** The compressed blob in the manifest. */
  descriptor: Descriptor;
  /** Digest of the uncompressed tar, from the image config. */
  diffId: string;
  /** Open the blob's byte stream (from the registry). */
  open: () => Promise<Readable>;
}

/** An unpack in progress, and everyone who wants to hear of its bytes. */
interface Inflight {
  work: Promise<UnpackStats>;
  listeners: Set<(bytes: number) => void>;
}

/**
 * Unpacked layers, one directory each, named by diff_id, so a layer shared by several images
 * is fetched and unpacked once. Concurrent pulls of one layer share the same work.
 */
export class LayerStore {
  private readonly inflight = new Map<string, Inflight>();

  constructor(
    private readonly layout: StoreLayout,
    private readonly log: Logger,
  ) {}

  async has(diffId: string): Promise<boolean> {
    try {
      await fs.access(this.layout.layer(diffId));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Make sure the layer is unpacked. Resolves with its stats when this call (or one it joined)
   * unpacked it, or undefined when it was already there. A caller that joins another's unpack
   * hears of its bytes too (its pull is making progress), and stops waiting when its own
   * signal aborts.
   */
  async ensure(source: LayerSource, onBytes: (n: number) => void, signal?: AbortSignal): Promise<UnpackStats | undefined> {
    const running = this.inflight.get(source.diffId);
    if (running) return join(running, onBytes, signal);
    if (await this.has(source.diffId)) return undefined;
    const startedMeanwhile = this.inflight.get(source.diffId);
    if (startedMeanwhile) return join(startedMeanwhile, onBytes, signal);
    const listeners = new Set([onBytes]);
    const work = this.unpack(source, (n) => listeners.forEach((listener) => listener(n)), signal).finally(() => this.inflight.delete(source.diffId));
    this.inflight.set(source.diffId, { work, listeners });
    return work;
  }

  /**
   * One pass from the network to disk: the blob is checked against its digest and size, then
   * decompressed and checked against the diff_id, while the unpacker writes a temporary
   * directory. Only when every check passed is the directory renamed into place; on any
   * failure it is deleted, so a layer that exists is always complete and verified.
   */
  private async unpack(source: LayerSource, onBytes: (n: number) => void, signal?: AbortSignal): Promise<UnpackStats> {
    const { descriptor, diffId } = source;
    const compression = compressionOf(descriptor.mediaType);
    const target = path.join(this.layout.tmpDir, `layer-${newId().slice(0, 16)}`);
    await fs.mkdir(target, { recursive: true, mode: 0o755 });
    const abort = new AbortController();
    const onOuterAbort = (): void => abort.abort(signal?.reason);
    signal?.addEventListener('abort', onOuterAbort, { once: true });
    try {
      const blob = await source.open();
      const tar = new PassThrough({ highWaterMark: 1 << 20 });
      const stages: NodeJS.ReadWriteStream[] = [new VerifyingStream(descriptor.digest, descriptor.size, onBytes)];
      const decompressor = decompressorFor(compression);
      if (decompressor) stages.push(decompressor);
      stages.push(new VerifyingStream(diffId, undefined), new TarTail());
      const transfer = pipeline([blob, ...stages, tar], { signal: abort.signal });
      const unpacked = unpackLayer(tar, { target, signal: abort.signal });
      // Whichever side fails first stops the other; both settle before cleanup.
      transfer.catch((err: unknown) => abort.abort(err));
      unpacked.catch((err: unknown) => abort.abort(err));
      const results = await Promise.allSettled([transfer, unpacked]);
      const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
      if (failures.length > 0) throw rootCause(failures);
      const stats = (results[1] as PromiseFulfilledResult<UnpackStats>).value;
      await this.publish(target, diffId);
      this.log.debug({ diffId, bytes: stats.bytes, inodes: stats.inodes }, 'layer unpacked');
      return stats;
    } catch (err) {
      abort.abort(err);
      await fs.rm(target, { recursive: true, force: true });
      throw err;
    } finally {
      signal?.removeEventListener('abort', onOuterAbort);
    }
  }

  private async publish(tmp: string, diffId: string): Promise<void> {
    await fs.mkdir(this.layout.layersDir, { recursive: true, mode: 0o700 });
    try {
      await fs.rename(tmp, this.layout.layer(diffId));
    } catch (err) {
      // Another daemon process can't race us, but a layer left by an earlier crash can: it
      // was complete (renames are atomic), so keep it.
      if (errnoCode(err) !== 'ENOTEMPTY' && errnoCode(err) !== 'EEXIST') throw err;
      await fs.rm(tmp, { recursive: true, force: true });
    }
  }

  async remove(diffId: string): Promise<void> {
    const dir = this.layout.layer(diffId);
    const trash = path.join(this.layout.tmpDir, `removing-${newId().slice(0, 16)}`);
    try {
      await fs.rename(dir, trash);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    await fs.rm(trash, { recursive: true, force: true });
  }
}

/** Wait for another caller's unpack, hearing of its bytes, until it settles or `signal` aborts. */
async function join(running: Inflight, onBytes: (n: number) => void, signal?: AbortSignal): Promise<UnpackStats> {
  running.listeners.add(onBytes);
  try {
    return await untilAborted(running.work, signal);
  } finally {
    running.listeners.delete(onBytes);
  }
}

/** `work`, or the signal's reason as soon as it aborts (the work itself goes on). */
function untilAborted<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Of the errors a failed unpack produced, the one that explains it: a typed error (digest
 * mismatch, unsafe entry) rather than the "premature close" the other side saw as a result.
 */
function rootCause(errors: unknown[]): unknown {
  return errors.find((e) => e instanceof TscriError) ?? errors[0];
}
