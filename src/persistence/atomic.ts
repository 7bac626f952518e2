import { promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { errnoCode } from '../errors.js';

export interface WriteOptions {
  mode?: number;
  /**
   * fsync the file and its directory so the write survives power loss (default). Files that
   * only matter while their pod runs can skip it: a power loss ends the pod as well.
   */
  durable?: boolean;
}

/**
 * Write a file so that a reader (or the daemon after a crash at any line) sees either the
 * old content or the new, never a torn mix: write a temp file beside it, fsync it, rename
 * it over the target, then fsync the directory so the rename itself survives power loss.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, options: WriteOptions = {}): Promise<void> {
  const { mode = 0o600, durable = true } = options;
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, 'w', mode);
  try {
    await handle.writeFile(data);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  if (durable) await syncDir(dir);
}

export async function writeJsonAtomic(file: string, value: unknown, options?: WriteOptions): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', options);
}

/** Parse a JSON file, or undefined when it does not exist. */
export async function readJsonIfExists<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** fsync a directory so that entries created, renamed or removed in it are durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Names a directory renamed aside to be removed: `<name>.removing-<random>`. */
export const REMOVING_MARK = '.removing-';

/**
 * Rename a directory aside, in one atomic step, to `<dir>.removing-<random>`, where whoever
 * finds it knows it is being removed; its new path, or undefined when there was none.
 */
export async function moveAside(dir: string): Promise<string | undefined> {
  const aside = `${dir}${REMOVING_MARK}${randomBytes(4).toString('hex')}`;
  try {
    await fs.rename(dir, aside);
    return aside;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Remove a directory tree so that a crash midway never leaves a half-removed directory
 * under its real name: rename it aside first (one atomic step), then delete the copy.
 */
export async function removeDirAtomic(dir: string): Promise<void> {
  const trash = await moveAside(dir);
  if (trash === undefined) return;
  await syncDir(path.dirname(dir));
  await fs.rm(trash, { recursive: true, force: true });
}
