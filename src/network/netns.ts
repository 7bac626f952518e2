import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { newUuid } from '../util/ids.js';
import { isMountPoint } from '../util/mount.js';
import { run } from '../util/run.js';

export const NETNS_DIR = '/run/netns';

/** fs.statfs type of an nsfs mount: what a live netns path (bind mount or /proc/<pid>/ns/net) is. */
const NSFS_MAGIC = 0x6e736673;

export interface NamedNetns {
  name: string;
  /** /run/netns/<name>: what CNI_NETNS and the OCI spec point at. */
  path: string;
}

/** A fresh, unused name: cni-<uuid>, the form other runtimes and tools expect. */
export function newNetnsName(): NamedNetns {
  const name = `cni-${newUuid()}`;
  return { name, path: path.join(NETNS_DIR, name) };
}

/**
 * Create and pin a named network namespace (its loopback is still down: see bringUpLoopback).
 * `ip netns add` also makes /run/netns a shared mount the first time, so the pin
 * propagates into mount namespaces made later (the pause container's among them).
 */
export async function createNetns(netns: NamedNetns): Promise<void> {
  await run('ip', ['netns', 'add', netns.name]);
}

/** Set `lo` up in a named netns; separate from creation so it can overlap CNI ADD. */
export async function bringUpLoopback(netnsPath: string): Promise<void> {
  await run('ip', ['-n', path.basename(netnsPath), 'link', 'set', 'lo', 'up']);
}

/** Remove a named netns; one that is already gone is not an error. */
export async function removeNetns(netnsPath: string): Promise<void> {
  if (!(await exists(netnsPath))) return;
  const name = path.basename(netnsPath);
  if (path.dirname(netnsPath) === NETNS_DIR) {
    try {
      await run('ip', ['netns', 'delete', name]);
      return;
    } catch (err) {
      // A file left without its bind mount (a crash between mount and pin) makes
      // `ip netns delete` fail; removing the file is then all that is left to do.
      if (await isMountPoint(netnsPath)) throw err;
    }
  }
  await fs.rm(netnsPath, { force: true });
}

/**
 * True when the path is a mounted network namespace. A netns path whose mount is gone (the
 * file under /run/netns left behind) makes CNI plugins fail on DEL instead of cleaning up,
 * so it counts as gone, like a missing file.
 */
export async function isLiveNetns(netnsPath: string): Promise<boolean> {
  if (netnsPath === '') return false;
  try {
    return (await fs.statfs(netnsPath)).type === NSFS_MAGIC;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return false;
    throw err;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}
