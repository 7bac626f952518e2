import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.js';
import { DEFAULT_CAPABILITIES } from './spec.js';
import { quote } from '../validation/fields.js';

/** Linux capabilities by number (include/uapi/linux/capability.h). */
const CAPABILITY_NAMES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

let known: string[] | undefined;

/**
 * Every capability a container can be given: those the kernel has that are also in the
 * daemon's own bounding set. runc cannot grant what its caller lacks (a VM or an outer
 * container may withhold CAP_SYS_RESOURCE, say), and asking for it fails container creation.
 */
export function allCapabilities(): string[] {
  if (!known) {
    let bounding = (1n << BigInt(CAPABILITY_NAMES.length)) - 1n;
    let last = CAPABILITY_NAMES.length - 1;
    try {
      last = Math.min(last, Number.parseInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim(), 10));
      const hex = /^CapBnd:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
      if (hex) bounding = BigInt(`0x${hex}`);
    } catch {
      // No procfs: assume every capability named above.
    }
    known = CAPABILITY_NAMES.slice(0, last + 1).filter((_, bit) => (bounding >> BigInt(bit)) & 1n);
  }
  return [...known];
}

/** `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` all name CAP_NET_ADMIN; unknown names are refused. */
export function normalizeCapability(name: string): string {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (!CAPABILITY_NAMES.includes(full)) throw new InvalidArgumentError(`unknown capability ${quote(name)}`);
  return full;
}

export interface CapabilityRequest {
  add: string[];
  drop: string[];
}

/**
 * The capability set of a container: the defaults, where "ALL" in drop empties the set and
 * "ALL" in add fills it with everything the kernel has; then named additions join and
 * named drops leave (so drop ALL + add X is exactly X, and add ALL + drop X is all but X).
 */
export function containerCapabilities(request: CapabilityRequest): string[] {
  const isAll = (name: string): boolean => name.trim().toUpperCase() === 'ALL';
  let caps = new Set<string>(DEFAULT_CAPABILITIES);
  if (request.drop.some(isAll)) caps = new Set();
  if (request.add.some(isAll)) caps = new Set(allCapabilities());
  for (const name of request.add.filter((n) => !isAll(n))) caps.add(normalizeCapability(name));
  for (const name of request.drop.filter((n) => !isAll(n))) caps.delete(normalizeCapability(name));
  return [...caps];
}
