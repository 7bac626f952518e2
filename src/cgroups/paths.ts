/**
 * Where a cgroup's files are. The one place that turns a spec's `cgroupsPath` (as written for
 * the configured driver) into directories on the mounted hierarchies, for stats and metrics.
 *
 * - cgroupfs: `cgroupsPath` is the cgroup's path below each hierarchy's root
 *   (`/kubepods/burstable/pod123/<id>`).
 * - systemd: `cgroupsPath` is runc's `slice:prefix:name`; runc asks systemd for the unit
 *   `<prefix>-<name>.scope` inside the slice, and systemd nests slices by their dashes, so
 *   `kubepods-burstable-pod123.slice:tscri:<id>` lives at
 *   `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice/tscri-<id>.scope`.
 *   The slice string itself is never a path.
 *
 * On cgroup v1 each controller has its own hierarchy (`<root>/<controller>/<path>`; `cpu` and
 * `cpuacct` may be one mount with symlinks, which the same join follows); on v2 every controller
 * reads from `<root>/<path>`. A v1 host in hybrid mode also mounts the unified hierarchy at
 * `<root>/unified`, where runc puts every container too: its pressure (PSI) files are there.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { CgroupDriver } from '../config/config.js';
import { InvalidArgumentError } from '../errors.js';

export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';

/** The v1 controllers tscri reads. */
export type V1Controller = 'cpu' | 'cpuacct' | 'cpuset' | 'memory' | 'pids' | 'blkio';

/** How the cgroup filesystem is mounted under a root. */
export type CgroupHierarchy =
  | { version: 2; root: string }
  /** `unified`: the hybrid-mode v2 mount beside the v1 ones, when there is one. */
  | { version: 1; root: string; unified: string | undefined };

/** Directories of one cgroup. */
export interface CgroupDirs {
  version: 1 | 2;
  /** The cgroup's path below a hierarchy's root, as /proc/<pid>/cgroup shows it. */
  path: string;
  /** Where a controller's files are (v2: the one unified directory). */
  controller(name: V1Controller): string;
  /** The cgroup in a v2 hierarchy (for PSI): v2 itself, or v1's hybrid mount; else undefined. */
  unified: string | undefined;
}

/**
 * Look at `root` once: v2 when it is a cgroup2 mount (it has cgroup.controllers), else v1,
 * hybrid when `<root>/unified` is a cgroup2 mount.
 */
export function detectHierarchy(root: string = DEFAULT_CGROUP_ROOT): CgroupHierarchy {
  if (existsSync(path.join(root, 'cgroup.controllers'))) return { version: 2, root };
  const unified = path.join(root, 'unified');
  return { version: 1, root, unified: existsSync(path.join(unified, 'cgroup.controllers')) ? unified : undefined };
}

/** The directories of the cgroup a spec's `cgroupsPath` names under `driver`. */
export function cgroupDirs(hierarchy: CgroupHierarchy, driver: CgroupDriver, cgroupsPath: string): CgroupDirs {
  return dirsAt(hierarchy, cgroupPathOf(driver, cgroupsPath));
}

/**
 * The directories of a pod's cgroup parent as the kubelet passes it: a path for cgroupfs, a
 * slice name (`kubepods-burstable-pod123.slice`) for systemd.
 */
export function parentCgroupDirs(hierarchy: CgroupHierarchy, driver: CgroupDriver, cgroupParent: string): CgroupDirs {
  return dirsAt(hierarchy, parentPathOf(driver, cgroupParent));
}

/** The directories of a cgroup given by its path below the hierarchy's root. */
export function dirsAt(hierarchy: CgroupHierarchy, cgroupPath: string): CgroupDirs {
  const below = (base: string): string => path.join(base, cgroupPath);
  if (hierarchy.version === 2) {
    const dir = below(hierarchy.root);
    return { version: 2, path: cgroupPath, controller: () => dir, unified: dir };
  }
  return {
    version: 1,
    path: cgroupPath,
    controller: (name) => below(path.join(hierarchy.root, name)),
    unified: hierarchy.unified === undefined ? undefined : below(hierarchy.unified),
  };
}

/** The cgroup's path below a hierarchy's root for a spec's `cgroupsPath`. */
export function cgroupPathOf(driver: CgroupDriver, cgroupsPath: string): string {
  if (driver === 'cgroupfs') return cleanCgroupfsPath(cgroupsPath);
  const { slice, prefix, name } = parseSystemdCgroupsPath(cgroupsPath);
  // runc's default parent when the slice part is empty.
  return path.posix.join(expandSlice(slice || 'system.slice'), systemdUnitName(prefix, name));
}

/** The path below the root of a pod's cgroup parent (see parentCgroupDirs). */
export function parentPathOf(driver: CgroupDriver, cgroupParent: string): string {
  return driver === 'cgroupfs' ? cleanCgroupfsPath(cgroupParent) : expandSlice(cgroupParent || 'system.slice');
}

/**
 * runc reads a cgroupfs path as absolute below every root; `..` cannot climb out because the
 * path is resolved from `/` first.
 */
function cleanCgroupfsPath(cgroupsPath: string): string {
  if (cgroupsPath.includes('\0')) throw new InvalidArgumentError('cgroup path contains a NUL byte');
  return path.posix.resolve('/', cgroupsPath);
}

/** runc's `slice:prefix:name` (exactly three parts, as runc insists). */
export function parseSystemdCgroupsPath(cgroupsPath: string): { slice: string; prefix: string; name: string } {
  const parts = cgroupsPath.split(':');
  if (parts.length !== 3) {
    throw new InvalidArgumentError(`systemd cgroupsPath ${JSON.stringify(cgroupsPath.slice(0, 64))} is not "slice:prefix:name"`);
  }
  const [slice, prefix, name] = parts as [string, string, string];
  if (name.includes('/') || prefix.includes('/')) throw new InvalidArgumentError(`systemd unit name parts must not contain "/"`);
  return { slice, prefix, name };
}

/**
 * The unit runc creates: a scope named `<prefix>-<name>.scope`, unless the name is itself a
 * slice (then that slice, placed inside the parent as runc places it).
 */
export function systemdUnitName(prefix: string, name: string): string {
  return name.endsWith('.slice') ? name : `${prefix}-${name}.scope`;
}

/**
 * systemd's slice nesting: `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice`, `-.slice` the
 * root. Names that systemd refuses (no `.slice`, a `/`, empty parts as in `a--b` or `-a`) are
 * refused here too, as runc refuses them.
 */
export function expandSlice(slice: string): string {
  const suffix = '.slice';
  if (slice.length <= suffix.length || !slice.endsWith(suffix) || slice.includes('/')) {
    throw new InvalidArgumentError(`invalid systemd slice name ${JSON.stringify(slice.slice(0, 64))}`);
  }
  const stem = slice.slice(0, -suffix.length);
  if (stem === '-') return '/';
  const parts = stem.split('-');
  if (parts.some((part) => part === '')) throw new InvalidArgumentError(`invalid systemd slice name ${JSON.stringify(slice.slice(0, 64))}`);
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('-')}${suffix}`).join('');
}
