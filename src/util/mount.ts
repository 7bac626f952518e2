import { promises as fs } from 'node:fs';
import { errnoCode } from '../errors.js';
import { run } from './run.js';

/** True when a mount sits at `target` (per /proc/self/mountinfo). */
export async function isMountPoint(target: string): Promise<boolean> {
  const mountinfo = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const escaped = target.replace(/\\/g, '\\134').replace(/ /g, '\\040');
  return mountinfo.split('\n').some((line) => line.split(' ')[4] === escaped);
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
