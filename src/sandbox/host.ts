/**
 * What a pod needs of the host beyond the runtime and the CNI layer: its network namespace,
 * its /dev/shm tmpfs and its cgroup limits. Behind an interface so unit tests run the
 * sandbox service without root; `linuxSandboxHost` is the real one.
 */
import path from 'node:path';
import type * as cri from '../api/cri.js';
import { applyLimits, podLimits } from '../cgroups/limits.js';
import { detectHierarchy, parentCgroupDirs } from '../cgroups/paths.js';
import type { Config } from '../config/config.js';
import { bringUpLoopback, createNetns, newNetnsName, removeNetns } from '../network/netns.js';
import { mountTmpfs, unmountAll } from '../util/mount.js';

/** The pod's shared memory, as Docker and containerd size it. */
const SHM_OPTIONS = 'nosuid,nodev,noexec,mode=1777,size=65536k';

export interface SandboxHost {
  /** A fresh, unused netns path (not created yet): recorded before it exists. */
  newNetnsPath(): string;
  /** Create and pin the netns at the path newNetnsPath gave. */
  createNetns(netnsPath: string): Promise<void>;
  /** Set `lo` up inside it. */
  bringUpLoopback(netnsPath: string): Promise<void>;
  /** Remove it; one already gone is success. */
  removeNetns(netnsPath: string): Promise<void>;
  /** Mount the pod's /dev/shm tmpfs (creating the directory). */
  mountShm(shmPath: string): Promise<void>;
  /** Unmount it; nothing mounted, or no such path, is success. */
  unmountShm(shmPath: string): Promise<void>;
  /** Write a pod's limits to the cgroups of its own parent; resolves with the cgroup's path. */
  limitPod(
    driver: Config['cgroupDriver'],
    parent: string,
    resources: cri.LinuxContainerResources | null,
    overhead: cri.LinuxContainerResources | null,
  ): Promise<string>;
}

export const linuxSandboxHost: SandboxHost = {
  newNetnsPath: () => newNetnsName().path,
  createNetns: (netnsPath) => createNetns({ name: path.basename(netnsPath), path: netnsPath }),
  bringUpLoopback,
  removeNetns,
  mountShm: (shmPath) => mountTmpfs(shmPath, SHM_OPTIONS),
  unmountShm: unmountAll,
  async limitPod(driver, parent, resources, overhead) {
    const dirs = parentCgroupDirs(detectHierarchy(), driver, parent);
    await applyLimits(dirs, podLimits(resources, overhead));
    return dirs.path;
  },
};
