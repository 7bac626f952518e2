// Types of hack/lib/images.mjs, for the TypeScript tests that build images with it.

export declare const MEDIA_TYPES: Readonly<{
  ociIndex: 'application/vnd.oci.image.index.v1+json';
  ociManifest: 'application/vnd.oci.image.manifest.v1+json';
  ociConfig: 'application/vnd.oci.image.config.v1+json';
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip';
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd';
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json';
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json';
  dockerConfig: 'application/vnd.docker.container.image.v1+json';
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip';
}>;
/** Every manifest media type, for an Accept header. */
export declare const MANIFEST_ACCEPT: string;
/** The timestamp of every built image (tar mtimes, config `created`). */
export declare const EPOCH: Date;
export declare const HOST_PLATFORM: Readonly<Platform>;

export type Format = 'oci' | 'docker';

/** Bytes as a registry stores them. */
export interface Blob {
  bytes: Buffer;
  /** `sha256:<hex>` */
  digest: string;
  size: number;
  mediaType: string;
}

export interface Layer extends Blob {
  /** Digest of the uncompressed tar, as listed in the config's rootfs.diff_ids. */
  diffId: string;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface BuiltImage {
  kind: 'image';
  format?: Format;
  manifest: Blob;
  config: Blob;
  layers: Layer[];
  platform: Platform;
}

export interface BuiltIndex {
  kind: 'index';
  format?: Format;
  manifest: Blob;
  images: BuiltImage[];
}

export type Built = BuiltImage | BuiltIndex;

interface EntryBase {
  /** Relative to the layer root; a leading `/` or `./` is dropped (except for `raw`). */
  path: string;
  mode?: number;
  uid?: number;
  gid?: number;
}
/** Contents from `content` or, when given, the host file `source`. */
interface FileContent {
  content?: string | Buffer;
  source?: string;
}
export type LayerEntry =
  | (EntryBase & FileContent & { type?: 'file' })
  | (EntryBase & { type: 'dir' })
  | (EntryBase & { type: 'symlink'; linkname: string })
  /** `link` is an alias of `hardlink`; `linkname` is the target's path in the layer. */
  | (EntryBase & { type: 'hardlink' | 'link'; linkname: string })
  /** `dir/.wh.name`: deletes `path` from the layers below. */
  | (EntryBase & { type: 'whiteout' })
  /** `path/.wh..wh..opq`: hides everything the layers below have in directory `path`. */
  | (EntryBase & { type: 'opaque' })
  /** Written exactly as given, unchecked: for hostile layers (`../x`, `/x`, links out). */
  | (EntryBase & FileContent & { type: 'raw'; /** A tar-stream header type (default 'file'). */ rawType?: string; linkname?: string });

export interface TarOptions {
  /** `sorted` (default: by name, hard links last) or `given` (for hostile layers). */
  order?: 'sorted' | 'given';
  /** Layer compression (default gzip); zstd runs the zstd command. */
  compression?: 'gzip' | 'zstd';
}

/** A Docker/OCI image config's `config` object; written as given. */
export interface RuntimeConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  StopSignal?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Labels?: Record<string, string>;
  Volumes?: Record<string, Record<string, never>>;
  [key: string]: unknown;
}

export interface ImageOptions {
  layers: Layer[];
  config?: RuntimeConfig;
  /** Default: the host's, linux/amd64 here. */
  platform?: Platform;
  /** Default `oci`. */
  format?: Format;
  history?: Record<string, unknown>[];
  annotations?: Record<string, string>;
}

export interface PushResult {
  digest: string;
  /** The tag already pointed at this digest: nothing was sent. */
  skipped: boolean;
  uploadedBlobs: number;
}

export declare function sha256(bytes: Buffer | Uint8Array | string): string;
export declare function blob(bytes: Buffer | Uint8Array | string, mediaType: string): Blob;
export declare function tarOf(entries: LayerEntry[], options?: TarOptions): Promise<Buffer>;
export declare function layer(entries: LayerEntry[], options?: TarOptions): Promise<Layer>;
export declare function image(options: ImageOptions): BuiltImage;
export declare function index(images: BuiltImage[], options?: { format?: Format; annotations?: Record<string, string> }): BuiltIndex;
export declare function blobsOf(item: Built): Blob[];
export declare function manifestsOf(item: Built): Blob[];
/** `repository:tag`'s current manifest digest in `registry` (host:port or URL), if any. */
export declare function remoteDigest(registry: string, repository: string, tag: string): Promise<string | undefined>;
export declare function push(registry: string, repository: string, tag: string, item: Built): Promise<PushResult>;
