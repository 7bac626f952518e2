/**
 * Loading an image archive into the store: read it once into a scratch directory, find its
 * images (docker-archive or OCI layout), then verify and store each image as a pull does:
 * the config against its digest, every layer blob against the digest its archive promises and
 * its uncompressed tar against the config's diff_id, while it is unpacked.
 */
import { createReadStream, promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { MediaType, compressionOf, parseImageConfig, type ImageConfig } from '../registry/manifest.js';
import { sha256Digest } from '../registry/verify.js';
import type { BlobStore } from '../store/blobs.js';
import type { LayerRecord } from '../store/images.js';
import type { LayerStore } from '../store/layers.js';
import { DOCKER_MANIFEST, dockerArchiveImages } from './docker-archive.js';
import { OCI_INDEX, OCI_LAYOUT, ociArchiveImages } from './oci-archive.js';
import type { ArchiveImage, ArchiveLayer } from './plan.js';
import { ARCHIVE_LIMITS, ArchiveError, compressionByMagic, readArchive, type ArchiveFile, type ArchiveFiles } from './read.js';

/** One image of an archive, stored and verified: what its record is made from. */
export interface LoadedImage {
  configDigest: string;
  config: ImageConfig;
  layers: LayerRecord[];
  /** Config plus layer files, as the archive holds them. */
  size: number;
  tags: string[];
  /** The manifest (or index) digest the archive names the image by, if it has one. */
  topDigest?: string;
  manifestDigests: string[];
}

export interface LoadContext {
  blobs: BlobStore;
  layers: LayerStore;
  /** Scratch directory for the archive's files; the caller creates and removes it. */
  scratch: string;
  /** Called with every digest and diff_id about to be stored, so GC spares them. */
  touch: (digestOrDiffId: string) => void;
  knownLayerStats: (diffId: string) => { bytes: number; inodes: number } | undefined;
  log: Logger;
  signal?: AbortSignal;
}

/** Read `archive` and store every image in it; nothing is recorded here (the caller names them). */
export async function loadArchive(ctx: LoadContext, archive: Readable): Promise<LoadedImage[]> {
  const files = await readArchive(archive, ctx.scratch, ctx.signal);
  const images = await imagesIn(files);
  const loaded: LoadedImage[] = [];
  for (const image of images) loaded.push(await storeImage(ctx, files, image));
  return loaded;
}

/** docker-archive when manifest.json is there (Docker 25 writes an OCI layout beside it), else OCI. */
async function imagesIn(files: ArchiveFiles): Promise<ArchiveImage[]> {
  if (files.has(DOCKER_MANIFEST)) return dockerArchiveImages(files);
  if (files.has(OCI_INDEX) && files.has(OCI_LAYOUT)) return ociArchiveImages(files);
  throw new ArchiveError(`neither ${DOCKER_MANIFEST} (docker save) nor ${OCI_LAYOUT} and ${OCI_INDEX} (OCI layout) found`);
}

async function storeImage(ctx: LoadContext, files: ArchiveFiles, image: ArchiveImage): Promise<LoadedImage> {
  const configBytes = await files.read(image.config.path, ARCHIVE_LIMITS.configBytes, 'config');
  const configDigest = sha256Digest(configBytes);
  if (image.config.digest && image.config.digest !== configDigest) {
    throw new ArchiveError(`config "${image.config.path}" hashes to ${configDigest}, not ${image.config.digest}`);
  }
  let config: ImageConfig;
  try {
    config = parseImageConfig(configBytes);
  } catch (err) {
    throw new ArchiveError(`config "${image.config.path}": ${(err as Error).message}`);
  }
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== image.layers.length) throw new ArchiveError(`image ${configDigest} has ${image.layers.length} layers but its config lists ${diffIds.length}`);
  if (diffIds.some((d) => !/^sha256:[a-f0-9]{64}$/.test(d))) throw new ArchiveError(`image ${configDigest} lists an invalid diff_id`);
  ctx.touch(configDigest);
  diffIds.forEach(ctx.touch);
  for (const m of image.manifestBlobs) ctx.touch(m.digest);
  await ctx.blobs.write(configDigest, configBytes);
  for (const m of image.manifestBlobs) await ctx.blobs.write(m.digest, m.bytes);

  const layers: LayerRecord[] = [];
  for (const [i, layer] of image.layers.entries()) layers.push(await storeLayer(ctx, files, layer, diffIds[i]!));
  return {
    configDigest,
    config,
    layers,
    size: configBytes.length + layers.reduce((sum, l) => sum + l.size, 0),
    tags: image.tags,
    ...(image.manifest ? { topDigest: image.manifest.digest } : {}),
    manifestDigests: image.manifestBlobs.map((m) => m.digest),
  };
}

async function storeLayer(ctx: LoadContext, files: ArchiveFiles, layer: ArchiveLayer, diffId: string): Promise<LayerRecord> {
  const file = files.get(layer.path);
  if (!file) throw new ArchiveError(`layer "${layer.path}" is not in the archive`);
  if (layer.digest && (file.digest !== layer.digest || (layer.size !== undefined && file.size !== layer.size))) {
    throw new ArchiveError(`layer "${layer.path}" holds ${file.size} bytes hashing to ${file.digest}, not ${layer.digest}`);
  }
  const mediaType = layer.mediaType ?? (await mediaTypeByContent(file));
  compressionOf(mediaType); // refuses a media type no layer can have
  const descriptor = { mediaType, digest: file.digest, size: file.size };
  // The file was hashed as it was copied out; streaming it through the layer store hashes it
  // again, which costs a read but keeps one verified path from bytes to layer directory.
  const stats = await ctx.layers.ensure({ descriptor, diffId, open: async () => createReadStream(file.file) }, () => undefined, ctx.signal);
  const { bytes, inodes } = stats ?? ctx.knownLayerStats(diffId) ?? { bytes: 0, inodes: 0 };
  return { diffId, digest: file.digest, size: file.size, mediaType, bytes, inodes };
}

/** A docker-archive layer carries no media type: its first bytes tell its compression. */
async function mediaTypeByContent(file: ArchiveFile): Promise<string> {
  const handle = await fs.open(file.file, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4), 0, 4, 0);
    const compression = compressionByMagic(buffer.subarray(0, bytesRead));
    if (compression === 'gzip') return MediaType.dockerLayerGzip;
    if (compression === 'zstd') return MediaType.ociLayerZstd;
    return MediaType.ociLayer;
  } finally {
    await handle.close();
  }
}
