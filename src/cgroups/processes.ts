/**
 * Open files and sockets of a cgroup's processes, from /proc/<pid>/fd as cAdvisor counts them:
 * every entry is a descriptor, and those linking to `socket:[…]` are sockets. Threads of a
 * process share its table, so processes (not threads) are walked.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

export const DEFAULT_PROC_ROOT = '/proc';

export interface OpenFiles {
  fileDescriptors: number;
  sockets: number;
}

export async function countOpenFiles(pids: readonly number[], procRoot: string = DEFAULT_PROC_ROOT): Promise<OpenFiles> {
  const perProcess = await Promise.all(pids.map((pid) => openFilesOf(path.join(procRoot, String(pid), 'fd'))));
  return perProcess.reduce((sum, p) => ({ fileDescriptors: sum.fileDescriptors + p.fileDescriptors, sockets: sum.sockets + p.sockets }), {
    fileDescriptors: 0,
    sockets: 0,
  });
}

/** A process that exits meanwhile counts for what could still be read (usually nothing). */
async function openFilesOf(fdDir: string): Promise<OpenFiles> {
  let entries: string[];
  try {
    entries = await fs.readdir(fdDir);
  } catch {
    return { fileDescriptors: 0, sockets: 0 };
  }
  let sockets = 0;
  for (const entry of entries) {
    const target = await fs.readlink(path.join(fdDir, entry)).catch(() => '');
    if (target.startsWith('socket:')) sockets += 1;
  }
  return { fileDescriptors: entries.length, sockets };
}
