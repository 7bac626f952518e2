// Builds OCI and Docker images in memory and pushes them to a registry over the HTTP API v2.
// Used by hack/test-images.mjs (the catalogue pushed to the local registry) and by the e2e
// tests' fake registry.
//
// Building is deterministic so that digests are the same on every run and on every machine
// with the same input files: every tar entry has the same mtime and numeric owners with empty
// owner names, entries are sorted, and gzip (node:zlib) writes no timestamp.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';

export const MEDIA_TYPES = Object.freeze({
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
});

/** The media types of each format's index, manifest, config and layers. */
const FORMATS = {
  oci: { index: MEDIA_TYPES.ociIndex, manifest: MEDIA_TYPES.ociManifest, config: MEDIA_TYPES.ociConfig, layer: MEDIA_TYPES.ociLayer },
  docker: { index: MEDIA_TYPES.dockerList, manifest: MEDIA_TYPES.dockerManifest, config: MEDIA_TYPES.dockerConfig, layer: MEDIA_TYPES.dockerLayer },
};

/** What every manifest GET and HEAD accepts; a registry may otherwise convert or refuse. */
export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifest, MEDIA_TYPES.dockerList].join(', ');

/** The one timestamp of every built image: tar mtimes, config `created` and history. */
export const EPOCH = new Date('2024-01-01T00:00:00Z');

export function sha256(bytes) {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Bytes with their digest, size and media type: what a registry stores. */
export function blob(bytes, mediaType) {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  return { bytes: buffer, digest: sha256(buffer), size: buffer.length, mediaType };
}

function jsonBlob(document, mediaType) {
  return blob(Buffer.from(JSON.stringify(document)), mediaType);
}

function formatOf(name = 'oci') {
  const format = FORMATS[name];
  if (!format) throw new Error(`unknown image format "${name}" (oci or docker)`);
  return format;
}

// ---------------------------------------------------------------------------------------------
// Layers

/** `/a/b/` and `./a/b` → `a/b`: layers hold relative paths. */
function relative(path) {
  return path.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
}

function parentAndName(path) {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? ['', path] : [path.slice(0, slash + 1), path.slice(slash + 1)];
}

function fileContent(entry) {
  if (entry.source !== undefined) return readFileSync(entry.source);
  return Buffer.from(entry.content ?? '');
}

/**
 * The tar header (and body, for files) of one entry. Whiteouts follow the OCI layer spec:
 * `dir/.wh.name` deletes `dir/name` of the layers below, `dir/.wh..wh..opq` hides all of
 * `dir` below. `raw` writes `path` exactly as given, unchecked (for hostile layers).
 */
function tarEntry(entry) {
  const common = { mtime: EPOCH, uid: entry.uid ?? 0, gid: entry.gid ?? 0, uname: '', gname: '' };
  const path = relative(entry.path);
  switch (entry.type ?? 'file') {
    case 'file':
      return { header: { ...common, name: path, type: 'file', mode: entry.mode ?? 0o644 }, body: fileContent(entry) };
    case 'dir':
      return { header: { ...common, name: `${path}/`, type: 'directory', mode: entry.mode ?? 0o755 } };
    case 'symlink':
      return { header: { ...common, name: path, type: 'symlink', linkname: entry.linkname, mode: entry.mode ?? 0o777 } };
    case 'hardlink':
    case 'link':
      return { header: { ...common, name: path, type: 'link', linkname: relative(entry.linkname), mode: entry.mode ?? 0o644 } };
    case 'whiteout': {
      const [dir, name] = parentAndName(path);
      return { header: { ...common, name: `${dir}.wh.${name}`, type: 'file', mode: 0o644 }, body: Buffer.alloc(0) };
    }
    case 'opaque':
      return { header: { ...common, name: `${path}/.wh..wh..opq`, type: 'file', mode: 0o644 }, body: Buffer.alloc(0) };
    case 'raw': {
      const type = entry.rawType ?? 'file';
      const header = { ...common, name: entry.path, type, mode: entry.mode ?? 0o644 };
      if (entry.linkname !== undefined) header.linkname = entry.linkname;
      return { header, body: type === 'file' ? fileContent(entry) : undefined };
    }
    default:
      throw new Error(`${entry.path}: unknown entry type "${entry.type}"`);
  }
}

/**
 * Sorted by name, except that hard links come last: a hard link must follow its target in
 * the archive (`bin/[` sorts before `bin/busybox`). A parent directory always sorts before
 * its children because its name is their prefix.
 */
function sortedForTar(tarEntries) {
  const byName = (a, b) => (a.header.name < b.header.name ? -1 : a.header.name > b.header.name ? 1 : 0);
  const isLink = (e) => e.header.type === 'link';
  return [...tarEntries.filter((e) => !isLink(e)).sort(byName), ...tarEntries.filter(isLink).sort(byName)];
}

/** An uncompressed tar of `entries`; `order: 'given'` keeps their order (for hostile layers). */
export async function tarOf(entries, { order = 'sorted' } = {}) {
  const prepared = entries.map(tarEntry);
  return tarOfHeaders(order === 'given' ? prepared : sortedForTar(prepared));
}

/** A tar of `{ header, body }` items in the order given (no body: a directory or a link). */
export async function tarOfHeaders(items) {
  const archive = pack();
  const chunks = [];
  archive.on('data', (chunk) => chunks.push(chunk));
  const done = new Promise((resolve, reject) => {
    archive.on('end', resolve);
    archive.on('error', reject);
  });
  for (const { header, body } of items) {
    await new Promise((resolve, reject) => {
      const callback = (err) => (err ? reject(err) : resolve());
      if (body === undefined) archive.entry(header, callback);
      else archive.entry({ ...header, size: body.length }, body, callback);
    });
  }
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A gzip-compressed layer: the blob plus its diff_id, the digest of the uncompressed tar
 * (what an image config's rootfs lists). Its media type is OCI's; an image in Docker format
 * lists it under Docker's layer media type (the bytes are the same). `compression: 'zstd'`
 * compresses with the zstd command instead (Debian's zstd package; single-threaded, so its
 * output depends only on the input and zstd's version), as OCI's tar+zstd, in either format.
 */
export async function layer(entries, options = {}) {
  const tar = await tarOf(entries, options);
  if (options.compression === 'zstd') return { ...blob(zstdSync(tar), MEDIA_TYPES.ociLayerZstd), diffId: sha256(tar) };
  return { ...blob(gzipSync(tar, { level: 6 }), MEDIA_TYPES.ociLayer), diffId: sha256(tar) };
}

/** zstd level 3 with the content size and checksum in the frame header, like `zstd FILE`. */
function zstdSync(bytes) {
  return execFileSync('zstd', ['-q', '-c', '-3', '--single-thread', `--stream-size=${bytes.length}`], { input: bytes, maxBuffer: 1 << 30 });
}

// ---------------------------------------------------------------------------------------------
// Images and indexes

export const HOST_PLATFORM = Object.freeze({ os: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch });

function descriptor(b) {
  return { mediaType: b.mediaType, digest: b.digest, size: b.size };
}

/**
 * An image: its config and manifest over `layers`, in OCI or Docker schema 2 form. `config`
 * is the runtime part of the image config (User, Env, Entrypoint, Cmd, WorkingDir,
 * StopSignal, ExposedPorts, Labels, ...), written as given.
 */
export function image({ layers, config = {}, platform = HOST_PLATFORM, format = 'oci', history, annotations }) {
  const types = formatOf(format);
  const created = EPOCH.toISOString();
  const configDocument = {
    created,
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    config,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: history ?? layers.map(() => ({ created, created_by: 'hack/lib/images.mjs' })),
  };
  const configBlob = jsonBlob(configDocument, types.config);
  // zstd has no Docker media type: such a layer keeps OCI's in either format.
  const imageLayers = layers.map((l) => ({ ...l, mediaType: l.mediaType === MEDIA_TYPES.ociLayerZstd ? l.mediaType : types.layer }));
  const manifest = jsonBlob(
    {
      schemaVersion: 2,
      mediaType: types.manifest,
      config: descriptor(configBlob),
      layers: imageLayers.map(descriptor),
      ...(annotations ? { annotations } : {}),
    },
    types.manifest,
  );
  return { kind: 'image', format, manifest, config: configBlob, layers: imageLayers, platform };
}

/** An OCI index or a Docker manifest list over `images`, each entry with its platform. */
export function index(images, { format = 'oci', annotations } = {}) {
  const types = formatOf(format);
  const manifest = jsonBlob(
    {
      schemaVersion: 2,
      mediaType: types.index,
      manifests: images.map((img) => ({ ...descriptor(img.manifest), platform: img.platform })),
      ...(annotations ? { annotations } : {}),
    },
    types.index,
  );
  return { kind: 'index', format, manifest, images };
}

/** Every blob (layers and configs) of an image or index, without duplicates. */
export function blobsOf(item) {
  const all = item.kind === 'index' ? item.images.flatMap((img) => blobsOf(img)) : [...item.layers, item.config];
  return [...new Map(all.map((b) => [b.digest, b])).values()];
}

/** Every manifest of an image or index, children first: the order a push needs. */
export function manifestsOf(item) {
  return item.kind === 'index' ? [...item.images.map((img) => img.manifest), item.manifest] : [item.manifest];
}

// ---------------------------------------------------------------------------------------------
// Pushing

/** `127.0.0.1:5000` or `http://127.0.0.1:5000` → `http://127.0.0.1:5000`. */
function baseUrl(registry) {
  return /^https?:\/\//.test(registry) ? registry.replace(/\/+$/, '') : `http://${registry}`;
}

async function expectStatus(response, status, what) {
  const body = await response.text();
  if (response.status !== status) throw new Error(`${what}: HTTP ${response.status} ${body}`);
}

async function pushBlob(base, repository, b) {
  const head = await fetch(`${base}/v2/${repository}/blobs/${b.digest}`, { method: 'HEAD' });
  if (head.ok) return false;
  const start = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  await expectStatus(start, 202, `starting the upload of ${b.digest} to ${repository}`);
  // The upload location may be relative and carries state in its query; add the digest to it.
  const location = new URL(start.headers.get('location') ?? '', base);
  location.searchParams.set('digest', b.digest);
  const put = await fetch(location, { method: 'PUT', body: b.bytes, headers: { 'content-type': 'application/octet-stream' } });
  await expectStatus(put, 201, `uploading ${b.digest} to ${repository}`);
  return true;
}

async function pushManifest(base, repository, reference, m) {
  const put = await fetch(`${base}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    body: m.bytes,
    headers: { 'content-type': m.mediaType },
  });
  await expectStatus(put, 201, `putting manifest ${repository}:${reference}`);
}

/** The digest `repository:tag` currently resolves to, or undefined. */
export async function remoteDigest(registry, repository, tag) {
  const head = await fetch(`${baseUrl(registry)}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
  return head.ok ? (head.headers.get('docker-content-digest') ?? undefined) : undefined;
}

/**
 * Push `item` to `registry` (`host:port` or a base URL) as `repository:tag`: the blobs it
 * lacks (monolithic uploads), child manifests by digest, then the top manifest by tag. A tag
 * that already resolves to the same digest is left as it is.
 */
export async function push(registry, repository, tag, item) {
  const base = baseUrl(registry);
  const digest = item.manifest.digest;
  if ((await remoteDigest(base, repository, tag)) === digest) return { digest, skipped: true, uploadedBlobs: 0 };
  let uploadedBlobs = 0;
  for (const b of blobsOf(item)) if (await pushBlob(base, repository, b)) uploadedBlobs++;
  const manifests = manifestsOf(item);
  for (const m of manifests.slice(0, -1)) await pushManifest(base, repository, m.digest, m);
  await pushManifest(base, repository, tag, item.manifest);
  return { digest, skipped: false, uploadedBlobs };
}
