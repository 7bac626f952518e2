/**
 * Contract of the layer unpacker: one image layer (an uncompressed tar stream) becomes one
 * directory in the layout overlayfs reads as a lower layer.
 */
export interface UnpackOptions {
  /**
   * Empty directory to unpack into (created by the caller); the caller renames it into place
   * only after unpack resolves, so a failed or interrupted unpack never looks complete.
   */
  target: string;
  /** Abort the unpack (the promise then rejects). */
  signal?: AbortSignal;
}

/** What one unpacked layer costs on disk, for ImageFsInfo. */
export interface UnpackStats {
  /** Bytes of regular file content written (st_size sum; hard links counted once). */
  bytes: number;
  /** Inodes created: files, directories, links, devices, whiteouts. */
  inodes: number;
  /** Entries converted to overlay whiteouts (deleted files) and opaque directories. */
  whiteouts: number;
  opaqueDirs: number;
}

/** Thrown for a layer that tries to write outside its directory or is otherwise malformed. */
export interface UnsafeLayerErrorShape {
  readonly entry: string;
  readonly reason: string;
}
