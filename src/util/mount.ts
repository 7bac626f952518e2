import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { run } from './run.js';

/** True when a mount sits at `target` (per /proc/self/mountinfo). */
export async function isMountPoint(target: string): Promise<boolean> {
  const mountinfo = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const escaped = target.replace(/\\/g, '\\134').replace(/ /g, '\\040');
  return mountinfo.split('\n').some((line) => line.split(' ')[4] === escaped);
}

/** Every mount point at or below `dir`, deepest first (per /proc/self/mountinfo). */
export async function mountsBelow(dir: string): Promise<string[]> {
  const mountinfo = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((field): field is string => field !== undefined)
    .map((field) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8))));
  return points.filter((point) => point === dir || point.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}

/** Unmount everything mounted at or below `dir`, deepest first (lazily, as unmountAll). */
export async function unmountBelow(dir: string): Promise<void> {
  for (const point of await mountsBelow(dir)) await unmountAll(point);
}

/** Mount a tmpfs at `target` (created if missing) with the given options. */
export async function mountTmpfs(target: string, options: string): Promise<void> {
  await fs.mkdir(target, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', target]);
}

/**
 * Unmount whatever is mounted at `target`, stacked mounts included; nothing mounted or
 * no such path is success. Lazy (-l) so a process still holding a file inside cannot
 * make a removal fail; the kernel frees the mount when the last user goes.
 */
export async function unmountAll(target: string): Promise<void> {
  for (let i = 0; i < 16; i++) {
    try {
      if (!(await isMountPoint(target))) return;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    await run('umount', ['-l', target]);
  }
}

export interface OverlayOptions {
  /** Layer directories, lowest first (the order of an image's layers). */
  lowerDirs: string[];
  /** Writable layer and overlay's work dir; both absent for a read-only mount. */
  upperDir?: string;
  workDir?: string;
  target: string;
}

/**
 * Mount an overlay. The kernel caps mount options at one page, which 64-hex layer paths fill
 * after about forty layers, so when every lower dir shares a parent the mount runs there and
 * names them relative to it.
 */
export async function mountOverlay(options: OverlayOptions): Promise<void> {
  const { lowerDirs, upperDir, workDir, target } = options;
  if (lowerDirs.length === 0) throw new Error('an overlay needs at least one lower directory');
  const parents = new Set(lowerDirs.map((dir) => path.dirname(dir)));
  const cwd = parents.size === 1 ? [...parents][0]! : undefined;
  const lower = [...lowerDirs]
    .reverse()
    .map((dir) => (cwd ? path.basename(dir) : dir))
    .join(':');
  const opts = [`lowerdir=${lower}`];
  if (upperDir && workDir) opts.push(`upperdir=${upperDir}`, `workdir=${workDir}`);
  await fs.mkdir(target, { recursive: true });
  await run('mount', ['-t', 'overlay', 'overlay', '-o', opts.join(','), target], cwd ? { cwd } : {});
}
