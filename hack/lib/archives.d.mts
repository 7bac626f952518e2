// Types of hack/lib/archives.mjs.
import type { BuiltImage } from './images.mjs';

export interface ArchiveFileEntry {
  name: string;
  bytes: Buffer;
  type?: 'file' | 'symlink';
  linkname?: string;
}

export declare function tarFiles(files: ArchiveFileEntry[]): Promise<Buffer>;
export declare function dockerArchiveFiles(images: { image: BuiltImage; repoTags?: string[] }[], options?: { compressedLayers?: boolean }): ArchiveFileEntry[];
export declare function ociArchiveFiles(images: { image: BuiltImage; refName?: string }[]): ArchiveFileEntry[];
export declare function dockerArchive(images: { image: BuiltImage; repoTags?: string[] }[], options?: { compressedLayers?: boolean }): Promise<Buffer>;
export declare function ociArchive(images: { image: BuiltImage; refName?: string }[]): Promise<Buffer>;
