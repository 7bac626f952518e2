/**
 * Image volumes (Mount.image, kubelet's ImageVolume feature): an image's filesystem, or a
 * sub-path of it, mounted read-only in a container. The image is mounted once per mount on
 * the host below the container's directory (an overlay of its layers, or a read-only bind of
 * its only layer), and that mount, or a directory inside it, is bind-mounted into the
 * container. The image's layers are held for the container, so removing the image while the
 * container exists never pulls the ground from under the mount.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as cri from '../api/cri.js';
import { InvalidArgumentError, errnoCode } from '../errors.js';
import { mountOverlay, unmountAll } from '../util/mount.js';
import { run } from '../util/run.js';
import { quote } from '../validation/fields.js';

/** One image volume of a container, as its record keeps it (written before it is mounted). */
export interface ImageVolume {
  /** Index in the container config's mounts. */
  index: number;
  imageId: string;
  /** diff_ids of the image's layers, held while the container exists. */
  layers: string[];
  /** Where the image is mounted on the host. */
  mountPoint: string;
}

/** The indexes of a config's mounts that are image volumes. */
export function imageVolumeIndexes(mounts: readonly cri.Mount[]): number[] {
  return mounts.flatMap((m, i) => (m.image?.image ? [i] : []));
}

/** Mount the image (its layer directories, lowest first) read-only at `mountPoint`. */
export async function mountImage(layerDirs: string[], mountPoint: string): Promise<void> {
  await fs.mkdir(mountPoint, { recursive: true, mode: 0o755 });
  // overlayfs needs two lower directories to mount without an upper one.
  if (layerDirs.length === 1) await run('mount', ['-o', 'bind,ro', layerDirs[0]!, mountPoint]);
  else await mountOverlay({ lowerDirs: layerDirs, target: mountPoint });
}

export async function unmountImage(mountPoint: string): Promise<void> {
  await unmountAll(mountPoint);
  await fs.rm(mountPoint, { recursive: true, force: true });
}

/** Symlinks followed while resolving one sub-path, as the kernel's own limit. */
const MAX_SYMLINKS = 40;

/**
 * `subPath` inside the image mounted at `root`, resolved one component at a time with
 * symlinks read as the container would see them (absolute targets start at the image's
 * root): a path that would climb out of the image, or does not exist, is refused.
 */
export async function resolveSubPath(root: string, subPath: string, field: string): Promise<string> {
  const pending = subPath.split('/').filter((part) => part !== '' && part !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      if (resolved.length === 0) throw new InvalidArgumentError(`${field} ${quote(subPath)} leads outside the image`);
      resolved.pop();
      continue;
    }
    const candidate = path.join(root, ...resolved, part);
    let stat;
    try {
      stat = await fs.lstat(candidate);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') throw new InvalidArgumentError(`${field} ${quote(subPath)} does not exist in the image`);
      throw err;
    }
    if (!stat.isSymbolicLink()) {
      resolved.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw new InvalidArgumentError(`${field} ${quote(subPath)} has too many symlinks`);
    const target = await fs.readlink(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return path.join(root, ...resolved);
}
