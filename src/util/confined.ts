/**
 * Paths taken from requests, confined to the directory they belong to. A request names a
 * log file below the pod's log directory or a seccomp profile below the profile root; what it
 * names must stay there (no `..`, no symlink leading out), and a file read on a request's
 * behalf must be a regular file of bounded size (a FIFO would block the daemon, /dev/zero
 * would fill its memory).
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, errnoCode } from '../errors.js';
import { quote } from '../validation/fields.js';

/** `relative` joined to `root`, refused if it is absolute or climbs out with `..`. */
export function joinBelow(root: string, relative: string, field: string): string {
  const joined = path.resolve(root, relative);
  if (path.isAbsolute(relative) || (joined !== root && !joined.startsWith(root.endsWith('/') ? root : `${root}/`))) {
    throw new InvalidArgumentError(`${field} ${quote(relative)} leads outside ${root}`);
  }
  return joined;
}

/**
 * Make the directories of `relativeDir` below `root`, one component at a time, refusing any
 * component that exists as a symlink or a non-directory: container output must never be
 * written through a link planted in the log directory. `root` itself is the kubelet's and may
 * be a symlink (a log disk mounted elsewhere).
 */
export async function makeDirsBelow(root: string, relativeDir: string, field: string): Promise<string> {
  await fs.mkdir(root, { recursive: true, mode: 0o755 });
  let dir = root;
  for (const part of relativeDir.split('/').filter((p) => p !== '' && p !== '.')) {
    dir = joinBelow(dir, part, field);
    await fs.mkdir(dir, { mode: 0o755 }).catch((err: unknown) => {
      if (errnoCode(err) !== 'EEXIST') throw err;
    });
    const stat = await fs.lstat(dir);
    if (!stat.isDirectory()) throw new InvalidArgumentError(`${field} ${quote(dir)} is not a directory (a symlink or a file is in the way)`);
  }
  return dir;
}

/**
 * Create `file` if it is missing, without following a symlink at its name; an existing
 * entry must be a regular file. Resolves to whether it was created here, for an undo that
 * removes only what it made.
 */
export async function createRegularFile(file: string, field: string, mode = 0o640): Promise<boolean> {
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  let handle: fs.FileHandle;
  let created = true;
  try {
    handle = await fs.open(file, flags | constants.O_CREAT | constants.O_EXCL, mode).catch(async (err: unknown) => {
      if (errnoCode(err) !== 'EEXIST') throw err;
      created = false;
      return fs.open(file, flags);
    });
  } catch (err) {
    if (errnoCode(err) === 'ELOOP') throw new InvalidArgumentError(`${field} ${quote(file)} is a symlink`);
    if (errnoCode(err) === 'EISDIR') throw new InvalidArgumentError(`${field} ${quote(file)} is a directory`);
    throw err;
  }
  try {
    if (!(await handle.stat()).isFile()) throw new InvalidArgumentError(`${field} ${quote(file)} is not a regular file`);
  } finally {
    await handle.close();
  }
  return created;
}

/**
 * Read a file below `root` for a request: the directory holding it must resolve inside
 * `root` (symlinks within the root are fine), the file itself must not be a symlink, and it
 * must be a regular file of at most `maxBytes`. Opened non-blocking, so a FIFO cannot stall.
 */
export async function readFileBelow(root: string, file: string, maxBytes: number, field: string): Promise<Buffer> {
  const realRoot = await fs.realpath(root).catch(() => {
    throw new InvalidArgumentError(`${field} the directory ${root} does not exist`);
  });
  const wanted = path.isAbsolute(file) ? file : joinBelow(root, file, field);
  const realDir = await fs.realpath(path.dirname(wanted)).catch(() => {
    throw new InvalidArgumentError(`${field} ${quote(file)} does not exist`);
  });
  const inside = realDir === realRoot || realDir.startsWith(`${realRoot}/`);
  if (!inside) throw new InvalidArgumentError(`${field} ${quote(file)} is not below ${root}`);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path.join(realDir, path.basename(wanted)), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw new InvalidArgumentError(`${field} ${quote(file)} does not exist`);
    if (code === 'ELOOP') throw new InvalidArgumentError(`${field} ${quote(file)} is a symlink`);
    throw new InvalidArgumentError(`${field} cannot open ${quote(file)} (${code ?? 'error'})`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new InvalidArgumentError(`${field} ${quote(file)} is not a regular file`);
    if (stat.size > maxBytes) throw new InvalidArgumentError(`${field} ${quote(file)} is ${stat.size} bytes, more than ${maxBytes}`);
    const buffer = Buffer.alloc(stat.size);
    const { bytesRead } = await handle.read(buffer, 0, stat.size, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
