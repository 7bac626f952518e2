import { constants, promises as fs } from 'node:fs';
import path from 'node:path';

/** The absolute path of an executable: `name` itself if it has a slash, else looked up in PATH. */
export async function findExecutable(name: string): Promise<string | undefined> {
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
        .split(':')
        .filter(Boolean)
        .map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      await fs.access(candidate, constants.X_OK);
      if ((await fs.stat(candidate)).isFile()) return path.resolve(candidate);
    } catch {
      // Not here.
    }
  }
  return undefined;
}
