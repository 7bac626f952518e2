import type { Logger } from 'pino';
import { InternalError } from '../errors.js';
import { allOrFirstError } from '../util/parallel.js';
import type { ImageReference } from './reference.js';
import type { RegistrySession } from './registry/client.js';
import { hostPlatform, parseImageConfig, parseManifest, selectPlatform, type ImageConfig, type Platform } from './registry/manifest.js';
import type { PullProgress } from './progress.js';
import type { BlobStore } from './store/blobs.js';
import type { LayerRecord } from './store/images.js';
import type { LayerStore } from './store/layers.js';

/** Layers fetched at once: enough to fill a link, few enough not to thrash a small disk. */
const LAYER_CONCURRENCY = 3;

export interface PulledImage {
  /** The digest the reference resolved to (an index or a manifest): the repo digest. */
  topDigest: string;
  /** Every manifest and index read, to keep in the blob store. */
  manifestDigests: string[];
  configDigest: string;
  config: ImageConfig;
  layers: LayerRecord[];
  /** Compressed size: config plus layers. */
  size: number;
}

export interface PullContext {
  ref: ImageReference;
  session: RegistrySession;
  blobs: BlobStore;
  layers: LayerStore;
  progress: PullProgress;
  /** Unpacked size of a layer some other image already has. */
  knownLayerStats: (diffId: string) => { bytes: number; inodes: number } | undefined;
  /** Called with every digest and diff_id the pull is about to store, so GC spares them. */
  touch: (digestOrDiffId: string) => void;
  log: Logger;
  signal?: AbortSignal;
  platform?: Platform;
}

/**
 * Fetch what an image is made of: the manifest (through an index, picking this node's
 * platform), the config, and every layer not yet unpacked. Each piece is verified against
 * its digest before it is kept.
 */
export async function pullContent(ctx: PullContext): Promise<PulledImage> {
  const { ref, session, blobs } = ctx;
  const top = await session.manifest(ref.digest ?? ref.tag!);
  ctx.touch(top.digest);
  // Each verified blob is stored (an fsync) while the next piece is fetched. Every write has
  // settled before the pull returns or fails, so no cleanup races one.
  const stored: Array<Promise<void>> = [];
  const store = (digest: string, bytes: Buffer): void => {
    const write = blobs.write(digest, bytes);
    write.catch(() => undefined); // reported below, once every write has settled
    stored.push(write);
  };
  try {
    store(top.digest, top.bytes);
    const content = await pullRest(ctx, top, store);
    await allOrFirstError(stored);
    return content;
  } finally {
    await Promise.allSettled(stored);
  }
}

async function pullRest(ctx: PullContext, top: { digest: string; bytes: Buffer; mediaType: string }, store: (digest: string, bytes: Buffer) => void): Promise<PulledImage> {
  const { session } = ctx;
  const manifestDigests = [top.digest];

  let manifest = parseManifest(top.bytes, top.mediaType);
  if (manifest.kind === 'index') {
    const chosen = selectPlatform(manifest.manifests, ctx.platform ?? hostPlatform());
    const child = await session.manifest(chosen.digest, chosen);
    ctx.touch(child.digest);
    store(child.digest, child.bytes);
    manifestDigests.push(child.digest);
    manifest = parseManifest(child.bytes, chosen.mediaType);
    if (manifest.kind !== 'image') throw new InternalError(`index ${top.digest} points at another index`);
  }

  const configBytes = await session.blobBytes(manifest.config);
  const config = parseImageConfig(configBytes);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) {
    throw new InternalError(`manifest has ${manifest.layers.length} layers but the config lists ${diffIds.length}`);
  }
  ctx.touch(manifest.config.digest);
  diffIds.forEach(ctx.touch);
  store(manifest.config.digest, configBytes);

  const descriptors = manifest.layers;
  // One failed layer stops the others, and every layer has settled before the error goes up,
  // so the caller's cleanup never races a layer that is still being written.
  const stop = new AbortController();
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, stop.signal]) : stop.signal;
  const layers = await mapLimited(descriptors, LAYER_CONCURRENCY, stop, async (descriptor, i) => {
    const diffId = diffIds[i]!;
    const stats = await fetchLayer({ ...ctx, signal }, descriptor, diffId);
    return { diffId, digest: descriptor.digest, size: descriptor.size, mediaType: descriptor.mediaType, ...stats };
  });
  return {
    topDigest: top.digest,
    manifestDigests,
    configDigest: manifest.config.digest,
    config,
    layers,
    size: manifest.config.size + descriptors.reduce((sum, d) => sum + d.size, 0),
  };
}

async function fetchLayer(
  ctx: PullContext,
  descriptor: { digest: string; size: number; mediaType: string },
  diffId: string,
): Promise<{ bytes: number; inodes: number }> {
  const known = (await ctx.layers.has(diffId)) ? ctx.knownLayerStats(diffId) : undefined;
  if (known) return known;
  ctx.progress.expect(1, descriptor.size);
  const stats = await ctx.layers.ensure(
    { descriptor, diffId, open: () => ctx.session.blob(descriptor) },
    (n) => ctx.progress.received(n),
    ctx.signal,
  );
  ctx.progress.layerDone();
  return stats ?? ctx.knownLayerStats(diffId) ?? { bytes: 0, inodes: 0 };
}

/**
 * Map with at most `limit` calls in flight, keeping the order of results. The first failure
 * aborts `stop`, no new call starts, and the failure is thrown once every call has settled.
 */
async function mapLimited<T, R>(items: T[], limit: number, stop: AbortController, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!, index);
      } catch (error) {
        failure ??= { error };
        stop.abort(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
  return results;
}
