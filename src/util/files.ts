import { promises as fs } from 'node:fs';

/**
 * True when `file` can be seen: it exists and every directory on its way can be searched.
 * Any error answers false, since callers treat a path they cannot see as absent. With
 * `followSymlinks: false` a symlink counts as there even when what it names is not.
 */
export function fileExists(file: string, options: { followSymlinks?: boolean } = {}): Promise<boolean> {
  const seen = options.followSymlinks === false ? fs.lstat(file) : fs.access(file);
  return seen.then(
    () => true,
    () => false,
  );
}
