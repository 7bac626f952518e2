// Types of hack/lib/oci.mjs, for the TypeScript tests that build images with it.
export interface Blob {
  bytes: Buffer;
  digest: string;
  size: number;
  mediaType: string;
}
export interface Layer extends Blob {
  diffId: string;
}
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}
export interface BuiltImage {
  kind: 'image';
  manifest: Blob;
  config: Blob;
  layers: Layer[];
  platform: Platform;
}
export interface BuiltIndex {
  kind: 'index';
  manifest: Blob;
  images: BuiltImage[];
}
export type Built = BuiltImage | BuiltIndex;
export interface TarEntry {
  path: string;
  type?: 'dir' | 'file' | 'symlink' | 'link' | 'whiteout' | 'opaque' | 'raw';
  rawType?: string;
  content?: string | Buffer;
  source?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
}
export const MEDIA: Record<string, string>;
export function sha256(bytes: Buffer): string;
export function tarOf(entries: TarEntry[]): Promise<Buffer>;
export function layer(entries: TarEntry[], format?: 'oci' | 'docker'): Promise<Layer>;
export function image(options: { layers: Layer[]; config?: Record<string, unknown>; platform?: Platform; format?: 'oci' | 'docker' }): BuiltImage;
export function index(images: BuiltImage[], format?: 'oci' | 'docker'): BuiltIndex;
export function blobsOf(item: Built): Blob[];
export function manifestsOf(item: Built): Blob[];
export function push(registry: string, repository: string, tag: string, item: Built): Promise<string>;
