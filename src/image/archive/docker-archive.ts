/**
 * `docker save` archives: manifest.json lists, per image, its config file, its layer files
 * in order and its RepoTags. Layers are tar files (compressed ones in newer Docker); Docker
 * 25 and later name every file by digest under blobs/sha256/, older versions name configs
 * `<hex>.json` and layers `<id>/layer.tar`.
 */
import { parseReference, tagReference } from '../reference.js';
import { ARCHIVE_LIMITS, ArchiveError, type ArchiveFiles } from './read.js';
import type { ArchiveImage } from './plan.js';

export const DOCKER_MANIFEST = 'manifest.json';

interface DockerManifestEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

export async function dockerArchiveImages(files: ArchiveFiles): Promise<ArchiveImage[]> {
  const text = (await files.read(DOCKER_MANIFEST, ARCHIVE_LIMITS.documentBytes, 'manifest')).toString('utf8');
  let entries: unknown;
  try {
    entries = JSON.parse(text);
  } catch {
    throw new ArchiveError(`${DOCKER_MANIFEST} is not valid JSON`);
  }
  if (!Array.isArray(entries) || entries.length === 0) throw new ArchiveError(`${DOCKER_MANIFEST} lists no image`);
  if (entries.length > ARCHIVE_LIMITS.images) throw new ArchiveError(`${DOCKER_MANIFEST} lists more than ${ARCHIVE_LIMITS.images} images`);
  return entries.map((entry, i) => dockerImage(entry as DockerManifestEntry, i));
}

function dockerImage(entry: DockerManifestEntry, i: number): ArchiveImage {
  const what = `${DOCKER_MANIFEST} entry ${i}`;
  if (typeof entry?.Config !== 'string') throw new ArchiveError(`${what} has no Config`);
  const layers = entry.Layers ?? [];
  if (!Array.isArray(layers) || layers.some((l) => typeof l !== 'string')) throw new ArchiveError(`${what} has invalid Layers`);
  if (layers.length > ARCHIVE_LIMITS.layers) throw new ArchiveError(`${what} has more than ${ARCHIVE_LIMITS.layers} layers`);
  const repoTags = entry.RepoTags ?? [];
  if (!Array.isArray(repoTags) || repoTags.some((t) => typeof t !== 'string')) throw new ArchiveError(`${what} has invalid RepoTags`);
  return {
    config: { path: entry.Config, ...digestInName(entry.Config) },
    layers: (layers as string[]).map((path) => ({ path, ...digestInName(path) })),
    tags: (repoTags as string[]).map((tag) => fullTag(tag, what)),
    manifestBlobs: [],
  };
}

/** `blobs/sha256/<hex>` and `<hex>.json` promise their digest; `<id>/layer.tar` does not. */
function digestInName(path: string): { digest?: string } {
  const match = /(?:^|\/)(?:sha256\/)?([a-f0-9]{64})(?:\.json)?$/.exec(path);
  return match && !path.endsWith('/layer.tar') ? { digest: `sha256:${match[1]}` } : {};
}

/** A RepoTag as the CRI names images: `busybox:1.0` → `docker.io/library/busybox:1.0`. */
function fullTag(tag: string, what: string): string {
  try {
    const ref = parseReference(tag);
    if (ref.digest) throw new Error('a digest');
    return tagReference(ref)!;
  } catch {
    throw new ArchiveError(`${what} has an invalid RepoTag "${tag.slice(0, 200)}"`);
  }
}
