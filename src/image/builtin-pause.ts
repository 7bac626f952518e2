import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FailedPreconditionError } from '../errors.js';
import { findExecutable } from '../util/executable.js';

/** What a pause container runs: a rootfs and the process to start in it. */
export interface SandboxImage {
  /** Shown as the sandbox's image in verbose status. */
  ref: string;
  rootfs: string;
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number };
}

export const BUILTIN_PAUSE_REF = 'tscri/pause:builtin';

/** Where distributions install catatonit, which in -P mode is a complete pause process. */
const CATATONIT_CANDIDATES = ['catatonit', '/usr/libexec/catatonit/catatonit', '/usr/libexec/podman/catatonit'];

/**
 * The built-in pause image: a read-only rootfs holding only a static catatonit, made once
 * under `root` and shared by every sandbox (no image pull, no per-pod mount). Runs as
 * 65535:65535 like the upstream pause image.
 */
export async function prepareBuiltinPause(rootfs: string): Promise<SandboxImage> {
  const catatonit = await findCatatonit();
  const target = path.join(rootfs, 'pause');
  if (!(await sameFile(catatonit, target))) {
    await fs.mkdir(rootfs, { recursive: true, mode: 0o755 });
    const tmp = `${target}.tmp`;
    await fs.copyFile(catatonit, tmp);
    await fs.chmod(tmp, 0o755);
    await fs.rename(tmp, target);
  }
  // Mount points runc would otherwise create on first use in the shared rootfs.
  for (const dir of ['proc', 'dev', 'sys', 'etc']) await fs.mkdir(path.join(rootfs, dir), { recursive: true, mode: 0o755 });
  return {
    ref: BUILTIN_PAUSE_REF,
    rootfs,
    args: ['/pause', '-P'],
    env: [],
    cwd: '/',
    user: { uid: 65535, gid: 65535 },
  };
}

async function findCatatonit(): Promise<string> {
  for (const candidate of CATATONIT_CANDIDATES) {
    const found = await findExecutable(candidate);
    if (found) return found;
  }
  throw new FailedPreconditionError('catatonit not found: the built-in pause image needs it', {
    hint: 'install it (apt-get install catatonit) or set sandbox_image',
  });
}

async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([fs.stat(a), fs.stat(b)]);
    return sa.size === sb.size && sb.mtimeMs >= sa.mtimeMs;
  } catch {
    return false;
  }
}
