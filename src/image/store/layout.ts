import path from 'node:path';

/**
 * The image store on disk, under `<root>/images`:
 *
 *   blobs/sha256/<hex>   manifests, indexes and configs, content-addressed and verified
 *   layers/<hex>/        one directory per layer, named by its diff_id, in overlayfs format
 *   images/<hex>.json    one record per image, named by its config digest (the image id)
 *   tmp/                 work in progress; anything here after a crash is garbage
 */
export class StoreLayout {
  readonly base: string;
  readonly blobsDir: string;
  readonly layersDir: string;
  readonly recordsDir: string;
  readonly tmpDir: string;

  constructor(root: string) {
    this.base = path.join(root, 'images');
    this.blobsDir = path.join(this.base, 'blobs', 'sha256');
    this.layersDir = path.join(this.base, 'layers');
    this.recordsDir = path.join(this.base, 'images');
    this.tmpDir = path.join(this.base, 'tmp');
  }

  blob(digest: string): string {
    return path.join(this.blobsDir, hexOf(digest));
  }

  layer(diffId: string): string {
    return path.join(this.layersDir, hexOf(diffId));
  }

  record(imageId: string): string {
    return path.join(this.recordsDir, `${hexOf(imageId)}.json`);
  }
}

/** The hex part of `sha256:<hex>`. */
export function hexOf(digest: string): string {
  const colon = digest.indexOf(':');
  return colon >= 0 ? digest.slice(colon + 1) : digest;
}
