/**
 * OCI image layout archives (`podman save --format oci-archive`, `skopeo copy oci-archive:`):
 * an `oci-layout` file, `index.json`, and every blob under `blobs/<algorithm>/<hex>`. Each
 * entry of index.json is an image (or an index, resolved to this node's platform), named by
 * its annotations.
 *
 * Names: `io.containerd.image.name` (containerd's exports) is a full name. The OCI
 * `org.opencontainers.image.ref.name` is taken as a name when it is one (`busybox:1.0`,
 * `example.com/app:2`); a bare tag there (`1.0`, `latest`: what `skopeo copy
 * oci-archive:file.tar:1.0` writes) names no repository, so the image is loaded by id only.
 */
import { hostPlatform, parseManifest, selectPlatform, type Descriptor } from '../registry/manifest.js';
import { parseReference, tagReference } from '../reference.js';
import { ARCHIVE_LIMITS, ArchiveError, type ArchiveFiles } from './read.js';
import type { ArchiveImage } from './plan.js';

export const OCI_LAYOUT = 'oci-layout';
export const OCI_INDEX = 'index.json';
const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export async function ociArchiveImages(files: ArchiveFiles): Promise<ArchiveImage[]> {
  const layout = parseJson(await files.read(OCI_LAYOUT, ARCHIVE_LIMITS.documentBytes, 'layout file'), OCI_LAYOUT) as { imageLayoutVersion?: unknown };
  if (typeof layout?.imageLayoutVersion !== 'string') throw new ArchiveError(`${OCI_LAYOUT} has no imageLayoutVersion`);
  const bytes = await files.read(OCI_INDEX, ARCHIVE_LIMITS.documentBytes, 'index');
  const index = parseManifest(bytes, 'application/vnd.oci.image.index.v1+json');
  if (index.kind !== 'index' || index.manifests.length === 0) throw new ArchiveError(`${OCI_INDEX} lists no image`);
  if (index.manifests.length > ARCHIVE_LIMITS.images) throw new ArchiveError(`${OCI_INDEX} lists more than ${ARCHIVE_LIMITS.images} images`);
  const images: ArchiveImage[] = [];
  for (const entry of index.manifests) images.push(await imageOf(files, entry));
  return images;
}

async function imageOf(files: ArchiveFiles, entry: Descriptor): Promise<ArchiveImage> {
  const manifestBlobs: Array<{ digest: string; bytes: Buffer }> = [];
  let descriptor = entry;
  // An index entry may itself be an index (a multi-platform image): one level is followed.
  for (let depth = 0; depth < 2; depth++) {
    const bytes = await blob(files, descriptor, ARCHIVE_LIMITS.documentBytes);
    manifestBlobs.push({ digest: descriptor.digest, bytes });
    const manifest = parseManifest(bytes, descriptor.mediaType);
    if (manifest.kind === 'index') {
      descriptor = selectPlatform(manifest.manifests, hostPlatform());
      continue;
    }
    if (manifest.layers.length > ARCHIVE_LIMITS.layers) throw new ArchiveError(`image ${descriptor.digest} has more than ${ARCHIVE_LIMITS.layers} layers`);
    return {
      config: { path: blobPath(manifest.config), digest: manifest.config.digest },
      layers: manifest.layers.map((l) => ({ path: blobPath(l), digest: l.digest, size: l.size, mediaType: l.mediaType })),
      tags: namesOf(entry),
      manifest: { digest: entry.digest, bytes: manifestBlobs[0]!.bytes },
      manifestBlobs,
    };
  }
  throw new ArchiveError(`${entry.digest} is an index of indexes`);
}

/** A blob read whole, checked against its descriptor's size and digest. */
async function blob(files: ArchiveFiles, descriptor: Descriptor, limit: number): Promise<Buffer> {
  const found = files.get(blobPath(descriptor));
  if (!found) throw new ArchiveError(`blob ${descriptor.digest} is not in the archive`);
  if (found.digest !== descriptor.digest || found.size !== descriptor.size) {
    throw new ArchiveError(`blob ${descriptor.digest} (${descriptor.size} bytes) holds ${found.size} bytes hashing to ${found.digest}`);
  }
  return files.read(blobPath(descriptor), limit, 'manifest');
}

function blobPath(descriptor: Descriptor): string {
  if (!DIGEST.test(descriptor.digest)) throw new ArchiveError(`unsupported digest "${descriptor.digest.slice(0, 80)}"`);
  return `blobs/sha256/${descriptor.digest.slice('sha256:'.length)}`;
}

/** The full names an index entry gives its image (see the module comment). */
function namesOf(entry: Descriptor): string[] {
  const annotations = entry.annotations ?? {};
  const candidates = [annotations[CONTAINERD_NAME], annotations[REF_NAME]].filter((n): n is string => typeof n === 'string' && n !== '');
  const names = new Set<string>();
  for (const name of candidates) {
    if (!/[/:]/.test(name)) continue; // a bare tag: no repository to put it on
    try {
      const tag = tagReference(parseReference(name));
      if (tag) names.add(tag);
    } catch {
      throw new ArchiveError(`invalid image name "${name.slice(0, 200)}" in ${OCI_INDEX}`);
    }
  }
  return [...names];
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ArchiveError(`${what} is not valid JSON`);
  }
}
