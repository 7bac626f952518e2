/**
 * The mounts a container needs on the host, behind a small interface: the real ones need
 * root and overlayfs, so unit tests substitute a fake that only makes directories.
 */
import { mountOverlay, unmountAll, unmountBelow, type OverlayOptions } from '../util/mount.js';
import { mountImage, unmountImage } from './image-volumes.js';

export interface ContainerMounts {
  /** The rootfs overlay (lower layers, upper and work directories, target). */
  mountOverlay(options: Required<OverlayOptions>): Promise<void>;
  /** Unmount whatever is mounted at `target` (nothing there is fine). */
  unmountAll(target: string): Promise<void>;
  /** An image volume: the image's layers mounted read-only at `mountPoint`. */
  mountImage(layerDirs: string[], mountPoint: string): Promise<void>;
  /** Unmount an image volume and delete its mount point. */
  unmountImage(mountPoint: string): Promise<void>;
  /** Unmount everything below `dir` (a removed container's directory). */
  unmountBelow(dir: string): Promise<void>;
}

export const hostMounts: ContainerMounts = { mountOverlay, unmountAll, mountImage, unmountImage, unmountBelow };
