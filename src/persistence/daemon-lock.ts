/**
 * One daemon per root and per state directory. Two daemons acting on one set of records
 * would recover the same pods twice and corrupt what they write, and the second would take
 * the socket from the first.
 *
 * The lock is an abstract Unix socket named after the directory (Linux keeps such names
 * outside the filesystem): binding it is atomic, and the kernel frees it the moment its
 * holder dies, so a daemon killed with SIGKILL leaves no stale lock to clean up. A pid file
 * beside it lets the refusal name the daemon that holds it.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { FailedPreconditionError, errnoCode } from '../errors.js';

export interface DaemonLock {
  release(): Promise<void>;
}

const PID_FILE = 'tscri.pid';

/** Take the lock of every directory in `dirs` (made if missing), or fail naming the holder. */
export async function lockDirectories(dirs: readonly string[]): Promise<DaemonLock> {
  const held: Array<{ server: net.Server; pidFile: string }> = [];
  const release = async (): Promise<void> => {
    for (const { server, pidFile } of held.splice(0)) {
      await fs.rm(pidFile, { force: true });
      await new Promise((resolve) => server.close(resolve));
    }
  };
  try {
    for (const dir of new Set(dirs)) {
      await fs.mkdir(dir, { recursive: true, mode: 0o711 });
      const real = await fs.realpath(dir);
      const server = await bindLock(real);
      const pidFile = path.join(real, PID_FILE);
      held.push({ server, pidFile });
      await fs.writeFile(pidFile, `${process.pid}\n`, { mode: 0o644 });
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { release };
}

/** The abstract socket name for a directory: a hash, since names are limited to 107 bytes. */
export function lockName(realDir: string): string {
  return `\0tscri-lock-${createHash('sha256').update(realDir).digest('hex').slice(0, 32)}`;
}

async function bindLock(realDir: string): Promise<net.Server> {
  const server = net.createServer((socket) => socket.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(lockName(realDir), () => resolve());
    });
  } catch (err) {
    if (errnoCode(err) !== 'EADDRINUSE') throw err;
    const pid = (await fs.readFile(path.join(realDir, PID_FILE), 'utf8').catch(() => '')).trim();
    throw new FailedPreconditionError(
      `another tscri daemon${pid ? ` (pid ${pid})` : ''} is using ${realDir}; stop it first, or give this one another root and state`,
    );
  }
  // It must not keep the process alive on its own. libuv opens it close-on-exec, so no child
  // (conmon above all, which outlives the daemon) ever holds it.
  server.unref();
  return server;
}
