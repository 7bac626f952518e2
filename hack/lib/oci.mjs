// Builds OCI and Docker images in memory, deterministically (fixed times, numeric owners,
// entries in the order given), and pushes them to a registry over the HTTP API v2.
// Used by hack/test-images.mjs and by the e2e tests' fake registry.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
};

const EPOCH = new Date('2024-01-01T00:00:00Z');

export function sha256(bytes) {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A blob: bytes with their digest, size and media type. */
export function blob(bytes, mediaType) {
  return { bytes, digest: sha256(bytes), size: bytes.length, mediaType };
}

/**
 * A tar of `entries`: {path, type: 'dir'|'file'|'symlink'|'link'|'whiteout'|'opaque'|'raw',
 * content (string|Buffer) or source (host file), mode, uid, gid, linkname}. 'raw' writes the
 * path as given, unchecked (for tests of hostile layers).
 */
export async function tarOf(entries) {
  const archive = pack();
  const chunks = [];
  archive.on('data', (chunk) => chunks.push(chunk));
  const finished = new Promise((resolve, reject) => {
    archive.on('end', resolve);
    archive.on('error', reject);
  });
  for (const entry of entries) await addEntry(archive, entry);
  archive.finalize();
  await finished;
  return Buffer.concat(chunks);
}

function addEntry(archive, entry) {
  const base = { mtime: EPOCH, uid: entry.uid ?? 0, gid: entry.gid ?? 0, uname: '', gname: '' };
  const dir = entry.path.includes('/') ? entry.path.slice(0, entry.path.lastIndexOf('/') + 1) : '';
  const name = entry.path.slice(dir.length);
  const header = (() => {
    switch (entry.type) {
      case 'dir':
        return { ...base, name: `${entry.path}/`, type: 'directory', mode: entry.mode ?? 0o755 };
      case 'symlink':
        return { ...base, name: entry.path, type: 'symlink', linkname: entry.linkname, mode: 0o777 };
      case 'link':
        return { ...base, name: entry.path, type: 'link', linkname: entry.linkname, mode: entry.mode ?? 0o755 };
      case 'whiteout':
        return { ...base, name: `${dir}.wh.${name}`, type: 'file', mode: 0o644 };
      case 'opaque':
        return { ...base, name: `${entry.path}/.wh..wh..opq`, type: 'file', mode: 0o644 };
      case 'raw':
        return { ...base, name: entry.path, type: entry.rawType ?? 'file', linkname: entry.linkname, mode: entry.mode ?? 0o644 };
      default:
        return { ...base, name: entry.path, type: 'file', mode: entry.mode ?? 0o644 };
    }
  })();
  const content =
    header.type === 'file' ? (entry.source ? readFileSync(entry.source) : Buffer.from(entry.content ?? '')) : undefined;
  return new Promise((resolve, reject) => {
    if (content !== undefined) archive.entry({ ...header, size: content.length }, content, (err) => (err ? reject(err) : resolve()));
    else archive.entry(header, (err) => (err ? reject(err) : resolve()));
  });
}

/** A gzip layer from entries: the compressed blob plus its diff_id (digest of the tar). */
export async function layer(entries, format = 'oci') {
  const tar = await tarOf(entries);
  const gz = gzipSync(tar, { level: 6 });
  return { ...blob(gz, format === 'docker' ? MEDIA.dockerLayer : MEDIA.ociLayer), diffId: sha256(tar) };
}

/**
 * An image: config and manifest over `layers`. `config` holds the runtime config
 * (User, Env, Entrypoint, Cmd, WorkingDir, StopSignal, ExposedPorts, Labels).
 */
export function image({ layers, config = {}, platform = { os: 'linux', architecture: 'amd64' }, format = 'oci' }) {
  const configDoc = {
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    created: EPOCH.toISOString(),
    config,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: EPOCH.toISOString(), created_by: 'tscri hack/test-images.mjs' })),
  };
  const configBlob = blob(Buffer.from(JSON.stringify(configDoc)), format === 'docker' ? MEDIA.dockerConfig : MEDIA.ociConfig);
  const manifestDoc = {
    schemaVersion: 2,
    mediaType: format === 'docker' ? MEDIA.dockerManifest : MEDIA.ociManifest,
    config: descriptor(configBlob),
    layers: layers.map(descriptor),
  };
  const manifest = blob(Buffer.from(JSON.stringify(manifestDoc)), manifestDoc.mediaType);
  return { kind: 'image', manifest, config: configBlob, layers, platform };
}

/** An index (or Docker manifest list) over images with their platforms. */
export function index(images, format = 'oci') {
  const mediaType = format === 'docker' ? MEDIA.dockerList : MEDIA.ociIndex;
  const doc = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map((img) => ({ ...descriptor(img.manifest), platform: img.platform })),
  };
  return { kind: 'index', manifest: blob(Buffer.from(JSON.stringify(doc)), mediaType), images };
}

function descriptor(b) {
  return { mediaType: b.mediaType, digest: b.digest, size: b.size };
}

/** Every blob an image or index consists of, children first. */
export function blobsOf(item) {
  if (item.kind === 'index') return item.images.flatMap((img) => blobsOf(img));
  return [...item.layers, item.config];
}

/** Every manifest of an image or index, children first (the order a push needs). */
export function manifestsOf(item) {
  if (item.kind === 'index') return [...item.images.map((img) => img.manifest), item.manifest];
  return [item.manifest];
}

/**
 * Push to `registry` (e.g. http://127.0.0.1:5000) as `repository:tag`: blobs the registry
 * lacks, then child manifests by digest, then the top manifest by tag.
 */
export async function push(registry, repository, tag, item) {
  for (const b of blobsOf(item)) {
    const head = await fetch(`${registry}/v2/${repository}/blobs/${b.digest}`, { method: 'HEAD' });
    if (head.ok) continue;
    const start = await fetch(`${registry}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    if (start.status !== 202) throw new Error(`upload start for ${b.digest}: ${start.status} ${await start.text()}`);
    const location = new URL(start.headers.get('location'), registry);
    location.searchParams.set('digest', b.digest);
    const put = await fetch(location, { method: 'PUT', body: b.bytes, headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`upload of ${b.digest}: ${put.status} ${await put.text()}`);
  }
  const manifests = manifestsOf(item);
  for (const [i, m] of manifests.entries()) {
    const reference = i === manifests.length - 1 ? tag : m.digest;
    const res = await fetch(`${registry}/v2/${repository}/manifests/${reference}`, {
      method: 'PUT',
      body: m.bytes,
      headers: { 'content-type': m.mediaType },
    });
    if (res.status !== 201) throw new Error(`manifest ${repository}:${reference}: ${res.status} ${await res.text()}`);
  }
  return item.manifest.digest;
}
