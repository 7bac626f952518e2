/** A container's writable layer: what it uses, and the filesystem it is on. */
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface DiskUsage {
  bytes: number;
  inodes: number;
}

/** Capacity of the filesystem holding a directory (statfs), for cAdvisor's limit and inode gauges. */
export interface FilesystemCapacity {
  capacityBytes: number;
  inodesTotal: number;
  inodesFree: number;
}

/** Bytes and inodes under a directory (a container's writable layer), not crossing mounts. */
export async function diskUsage(dir: string): Promise<DiskUsage> {
  const root = await fs.lstat(dir).catch(() => undefined);
  if (!root) return { bytes: 0, inodes: 0 };
  const total: DiskUsage = { bytes: 0, inodes: 0 };
  await walk(dir, root.dev, new Set<number>(), total);
  return total;
}

async function walk(dir: string, device: number, seen: Set<number>, total: DiskUsage): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    const stat = await fs.lstat(full).catch(() => undefined);
    // Another mount, or a hard link already counted.
    if (!stat || stat.dev !== device || seen.has(stat.ino)) continue;
    seen.add(stat.ino);
    total.inodes += 1;
    total.bytes += stat.blocks * 512;
    if (entry.isDirectory()) await walk(full, device, seen, total);
  }
}

export async function filesystemCapacity(dir: string): Promise<FilesystemCapacity | undefined> {
  const stat = await fs.statfs(dir).catch(() => undefined);
  if (!stat) return undefined;
  return { capacityBytes: stat.blocks * stat.bsize, inodesTotal: stat.files, inodesFree: stat.ffree };
}
