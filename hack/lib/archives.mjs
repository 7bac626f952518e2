// Image archives as `docker save` and `podman save --format oci-archive` write them, built
// from images of hack/lib/images.mjs, for the tests of `tscri load` and the import directory.
// Deterministic like the images: fixed mtimes, numeric owners, entries in a fixed order.
import { gunzipSync } from 'node:zlib';
import { EPOCH, MEDIA_TYPES, tarOfHeaders } from './images.mjs';

const hex = (digest) => digest.slice('sha256:'.length);

/**
 * A tar of `files` ({ name, bytes } in the given order; `type: 'symlink'` with `linkname`
 * makes a link). Names are written as given, unchecked, so tests can write hostile ones.
 */
export async function tarFiles(files) {
  return tarOfHeaders(
    files.map((file) => {
      const header = { name: file.name, mtime: EPOCH, uid: 0, gid: 0, uname: '', gname: '', mode: 0o644 };
      if (file.type === 'symlink') return { header: { ...header, type: 'symlink', linkname: file.linkname } };
      return { header: { ...header, type: 'file' }, body: file.bytes };
    }),
  );
}

/** A layer's tar as docker save writes it: uncompressed, unless `compressed` keeps the blob. */
function layerTar(layer, compressed) {
  if (compressed || layer.mediaType === MEDIA_TYPES.ociLayerZstd) return layer.bytes;
  return gunzipSync(layer.bytes);
}

/**
 * The files of a `docker save` archive (the layout before Docker 25): `<config hex>.json`,
 * `<diff_id hex>/layer.tar` per layer, and manifest.json with each image's RepoTags.
 * `images`: [{ image, repoTags }]. `compressedLayers` keeps layers gzip-compressed.
 */
export function dockerArchiveFiles(images, { compressedLayers = false } = {}) {
  const files = new Map();
  const manifest = images.map(({ image, repoTags = [] }) => {
    const config = `${hex(image.config.digest)}.json`;
    files.set(config, image.config.bytes);
    const layers = image.layers.map((layer) => {
      const name = `${hex(layer.diffId)}/layer.tar`;
      files.set(name, layerTar(layer, compressedLayers));
      return name;
    });
    return { Config: config, RepoTags: repoTags, Layers: layers };
  });
  return [...[...files].map(([name, bytes]) => ({ name, bytes })), { name: 'manifest.json', bytes: Buffer.from(JSON.stringify(manifest)) }];
}

/**
 * The files of an OCI archive: oci-layout, index.json (one entry per image, with
 * `org.opencontainers.image.ref.name` when `refName` is given) and blobs/sha256/<hex>.
 * `images`: [{ image, refName }].
 */
export function ociArchiveFiles(images) {
  const blobs = new Map();
  const manifests = images.map(({ image, refName }) => {
    for (const b of [image.manifest, image.config, ...image.layers]) blobs.set(`blobs/sha256/${hex(b.digest)}`, b.bytes);
    const descriptor = { mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.size };
    return refName ? { ...descriptor, annotations: { 'org.opencontainers.image.ref.name': refName } } : descriptor;
  });
  const index = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests };
  return [
    { name: 'oci-layout', bytes: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
    { name: 'index.json', bytes: Buffer.from(JSON.stringify(index)) },
    ...[...blobs].map(([name, bytes]) => ({ name, bytes })),
  ];
}

export async function dockerArchive(images, options) {
  return tarFiles(dockerArchiveFiles(images, options));
}

export async function ociArchive(images) {
  return tarFiles(ociArchiveFiles(images));
}
