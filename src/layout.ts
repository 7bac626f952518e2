/**
 * Every path tscri keeps below its two directories, named in one place: `root` (persistent:
 * records, images, CNI results) and `state` (volatile, a tmpfs: bundles, exit files, mounts
 * that die with the machine). Services take their paths from here and never join them
 * themselves, so what lives where can be read in one file (and in the README's layout).
 */
import path from 'node:path';

export class DaemonLayout {
  constructor(
    /** Persistent state (`root`, default /var/lib/tscri). */
    readonly root: string,
    /** Volatile state (`state`, default /run/tscri). */
    readonly state: string,
  ) {}

  // Below root.

  /** One directory per sandbox, holding its record (`sandbox.json`) and its hosts, resolv.conf and hostname. */
  get sandboxRecords(): string {
    return path.join(this.root, 'sandboxes');
  }

  /** One directory per container, holding its record (`container.json`) and its layers' mounts. */
  get containerRecords(): string {
    return path.join(this.root, 'containers');
  }

  containerDir(id: string): string {
    return path.join(this.containerRecords, id);
  }

  /** Where the container's overlay is mounted: the rootfs runc gets. */
  containerRootfs(id: string): string {
    return path.join(this.containerDir(id), 'rootfs');
  }

  /** The container's writable layer (overlay upperdir): what its disk usage counts. */
  containerUpper(id: string): string {
    return path.join(this.containerDir(id), 'upper');
  }

  /** overlayfs's work directory beside the upper one (same filesystem). */
  containerWork(id: string): string {
    return path.join(this.containerDir(id), 'work');
  }

  /** The mount point of the container's `index`th mount when that mount is an image volume. */
  imageVolume(id: string, index: number): string {
    return path.join(this.containerDir(id), 'image-volumes', String(index));
  }

  /** The image store (its own layout: image/store/layout.ts). */
  get imageStoreRoot(): string {
    return this.root;
  }

  /** CNI results cached per attachment, for DEL and CHECK after a restart. */
  get cniResults(): string {
    return path.join(this.root, 'cni', 'results');
  }

  /** The built-in pause image's rootfs, shared read-only by every sandbox. */
  get builtinPauseRootfs(): string {
    return path.join(this.root, 'pause', 'rootfs');
  }

  // Below state.

  /** One OCI bundle per container (config.json, conmon's sockets, exec sessions). */
  get bundles(): string {
    return path.join(this.state, 'bundles');
  }

  /** One exit file per container, written by its monitor. */
  get exits(): string {
    return path.join(this.state, 'exits');
  }

  /** Trial containers of the runtime handlers' probes at start. */
  get probes(): string {
    return path.join(this.state, 'probes');
  }

  /** A sandbox's volatile files: its /dev/shm mount. */
  sandboxStateDir(id: string): string {
    return path.join(this.state, 'sandboxes', id);
  }

  sandboxShm(id: string): string {
    return path.join(this.sandboxStateDir(id), 'shm');
  }

  /** Overlay mounts of a configured (pulled) pause image, one directory per image. */
  get pauseMounts(): string {
    return path.join(this.state, 'pause');
  }

  /** One pulled pause image's overlay: its rootfs mount point and upper and work directories. */
  pauseOverlay(imageHex: string): { rootfs: string; upper: string; work: string } {
    const dir = path.join(this.pauseMounts, imageHex.slice(0, 16));
    return { rootfs: path.join(dir, 'rootfs'), upper: path.join(dir, 'upper'), work: path.join(dir, 'work') };
  }
}
