/** What an archive says about one image, before anything of it is verified or stored. */
export interface ArchiveImage {
  /** The config's path in the archive, and the digest its name or descriptor promises. */
  config: { path: string; digest?: string };
  layers: ArchiveLayer[];
  /** Full names (`domain/path:tag`), normalized; empty for an image known only by its id. */
  tags: string[];
  /** The manifest the archive describes the image by (OCI archives), verified, to keep. */
  manifest?: { digest: string; bytes: Buffer };
  /** Every manifest and index read on the way to this image (kept in the blob store). */
  manifestBlobs: Array<{ digest: string; bytes: Buffer }>;
}

export interface ArchiveLayer {
  path: string;
  /** The blob's digest and size as a descriptor gives them, when the archive has one. */
  digest?: string;
  size?: number;
  /** Its media type, when a descriptor gives it; otherwise read from the bytes. */
  mediaType?: string;
}
