import path from 'node:path';
import type { CgroupDriver } from '../config/config.js';
import type { OciMount, OciNamespaceType, OciSpec } from './spec-types.js';

/** The capabilities a non-privileged container starts with (the set Docker and containerd use). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Kernel interfaces hidden from non-privileged containers. */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/** Kernel interfaces non-privileged containers may read but not write. */
export const DEFAULT_READONLY_PATHS: readonly string[] = [
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The filesystems every Linux container needs, before per-container mounts are added. */
export function defaultMounts(): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    },
  ];
}

/**
 * A spec with the defaults shared by pause and application containers: new pid, ipc, uts
 * and mount namespaces, a new network namespace unless one is joined later, the default
 * mounts, masked and read-only paths, the default capabilities and no devices but runc's
 * standard ones.
 */
export function baseSpec(rootfs: string): OciSpec {
  const caps = [...DEFAULT_CAPABILITIES];
  return {
    ociVersion: '1.0.2',
    process: {
      user: { uid: 0, gid: 0 },
      args: [],
      env: [DEFAULT_PATH_ENV],
      cwd: '/',
      capabilities: { bounding: caps, effective: [...caps], permitted: [...caps] },
      noNewPrivileges: false,
    },
    root: { path: rootfs, readonly: false },
    mounts: defaultMounts(),
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }],
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
    },
  };
}

/** Join the namespace at `nsPath`, or share the host's when `nsPath` is undefined. */
export function setNamespace(spec: OciSpec, type: OciNamespaceType, nsPath: string | undefined): void {
  const others = spec.linux.namespaces.filter((ns) => ns.type !== type);
  spec.linux.namespaces = nsPath === undefined ? others : [...others, { type, path: nsPath }];
}

/** Use the host's namespace of this type (no entry in the spec means "the runtime's own"). */
export function useHostNamespace(spec: OciSpec, type: OciNamespaceType): void {
  setNamespace(spec, type, undefined);
}

/** Replace the mount at `destination`, or add it. */
export function putMount(spec: OciSpec, mount: OciMount): void {
  spec.mounts = [...spec.mounts.filter((m) => m.destination !== mount.destination), mount];
}

/**
 * The kernel refuses to lower oom_score_adj below the value of the process that sets it
 * (runc's init then dies with "can't get final child's PID from pipe"), so requests below
 * the daemon's own value are raised to it.
 */
export function clampOomScoreAdj(requested: number, own: number): number {
  return Math.min(1000, Math.max(requested, own));
}

/**
 * The cgroup a sandbox or container lives in. With cgroupfs it is a path below the parent;
 * with systemd it is runc's "slice:prefix:name" form, the parent being a slice name.
 */
export function cgroupsPathFor(driver: CgroupDriver, parent: string, id: string): string {
  if (driver === 'systemd') return `${parent || 'system.slice'}:tscri:${id}`;
  return path.posix.join(parent || '/', id);
}
