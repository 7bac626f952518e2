import { InternalError } from '../../errors.js';
import { excerpt } from './body.js';

/** Media types of the manifests, configs and layers tscri reads. */
export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

/** What a manifest request accepts, most specific first. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export type Manifest =
  | { kind: 'index'; mediaType: string; manifests: Descriptor[] }
  | { kind: 'image'; mediaType: string; config: Descriptor; layers: Descriptor[] };

/** The parts of an OCI image config tscri uses. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    StopSignal?: string;
    ExposedPorts?: Record<string, object>;
    Volumes?: Record<string, object>;
    Labels?: Record<string, string>;
  };
  rootfs: { type: string; diff_ids: string[] };
  history?: unknown[];
}

export type LayerCompression = 'gzip' | 'none' | 'zstd';

/** How a layer blob is compressed, from its media type. */
export function compressionOf(mediaType: string): LayerCompression {
  if (mediaType.endsWith('+zstd')) return 'zstd';
  if (mediaType.endsWith('gzip') || mediaType.endsWith('+gzip')) return 'gzip';
  if (mediaType === MediaType.ociLayer || mediaType.endsWith('.tar')) return 'none';
  throw new InternalError(`unsupported layer media type ${excerpt(mediaType)}`);
}

/** Parse a manifest or index; its media type comes from the document or the response header. */
export function parseManifest(bytes: Buffer, headerMediaType: string): Manifest {
  const doc = parseJson(bytes, 'manifest') as Record<string, unknown>;
  const mediaType = typeof doc.mediaType === 'string' && doc.mediaType ? doc.mediaType : headerMediaType.split(';')[0]!.trim();
  if (doc.schemaVersion === 1) throw new InternalError('Docker schema 1 manifests are not supported (deprecated); push the image again');
  if (Array.isArray(doc.manifests) || mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList) {
    return { kind: 'index', mediaType, manifests: descriptors(doc.manifests, 'manifests') };
  }
  if (doc.config && Array.isArray(doc.layers)) {
    return { kind: 'image', mediaType, config: descriptor(doc.config, 'config'), layers: descriptors(doc.layers, 'layers') };
  }
  throw new InternalError(`unrecognised manifest (media type "${excerpt(mediaType)}")`);
}

export function parseImageConfig(bytes: Buffer): ImageConfig {
  const config = parseJson(bytes, 'image config') as ImageConfig;
  if (!config.rootfs || !Array.isArray(config.rootfs.diff_ids)) throw new InternalError('image config has no rootfs.diff_ids');
  return config;
}

/** The platform this node runs, in OCI terms. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

/** The index entry for `platform`: exact variant first, then any variant of the architecture. */
export function selectPlatform(manifests: Descriptor[], platform: Platform): Descriptor {
  const candidates = manifests.filter(
    (m) => m.platform && m.platform.os === platform.os && m.platform.architecture === platform.architecture,
  );
  const exact = candidates.find((m) => (m.platform!.variant ?? '') === (platform.variant ?? ''));
  const chosen = exact ?? candidates[0];
  if (!chosen) {
    const offered = manifests.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}` : 'unknown')).join(', ');
    throw new InternalError(`no manifest for ${platform.os}/${platform.architecture} in the index (it has: ${excerpt(offered) || 'none'})`);
  }
  return chosen;
}

function descriptors(value: unknown, what: string): Descriptor[] {
  if (!Array.isArray(value)) throw new InternalError(`manifest ${what} is not a list`);
  return value.map((item, i) => descriptor(item, `${what}[${i}]`));
}

/** The digests tscri can verify; anything else in a descriptor is refused before it is used in a URL. */
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

function descriptor(value: unknown, what: string): Descriptor {
  const d = value as Partial<Descriptor> | null;
  if (!d || typeof d.digest !== 'string' || typeof d.size !== 'number' || typeof d.mediaType !== 'string') {
    throw new InternalError(`manifest ${what} is not a valid descriptor`);
  }
  if (!DIGEST.test(d.digest)) throw new InternalError(`manifest ${what} has an unsupported digest "${excerpt(d.digest, 80)}"`);
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw new InternalError(`manifest ${what} has an invalid size ${excerpt(String(d.size), 40)}`);
  return d as Descriptor;
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new InternalError(`${what} is not valid JSON: ${excerpt((err as Error).message)}`);
  }
}
