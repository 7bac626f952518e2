import type * as cri from '../api/cri.js';
import { InvalidArgumentError } from '../errors.js';
import { readFileBelow } from '../util/confined.js';
import { quote } from '../validation/fields.js';
import type { OciSeccomp } from './spec-types.js';

const EPERM = 1;
const ENOSYS = 38;

/**
 * Syscalls the RuntimeDefault profile refuses unless the container holds one of the listed
 * capabilities (an empty list: refused whatever the capabilities). These are the calls that
 * reach beyond a container's namespaces: kernel modules, keyrings, clocks, reboot, other
 * processes' memory, new mounts and namespaces.
 */
const GUARDED_SYSCALLS: ReadonlyArray<[names: string[], unlessCaps: string[]]> = [
  [['add_key', 'keyctl', 'request_key'], []],
  [['create_module', 'get_kernel_syms', 'query_module', 'nfsservctl', 'uselib', 'ustat', '_sysctl', 'sysfs'], []],
  [['io_uring_setup', 'io_uring_enter', 'io_uring_register'], []],
  [['acct'], ['CAP_SYS_PACCT']],
  [['init_module', 'finit_module', 'delete_module'], ['CAP_SYS_MODULE']],
  [['kexec_load', 'kexec_file_load', 'reboot'], ['CAP_SYS_BOOT']],
  [['clock_settime', 'clock_settime64', 'clock_adjtime', 'clock_adjtime64', 'settimeofday', 'stime', 'adjtimex'], ['CAP_SYS_TIME']],
  [['iopl', 'ioperm'], ['CAP_SYS_RAWIO']],
  [['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace', 'userfaultfd'], ['CAP_SYS_PTRACE']],
  [['get_mempolicy', 'mbind', 'set_mempolicy', 'move_pages'], ['CAP_SYS_NICE']],
  [['open_by_handle_at'], ['CAP_DAC_READ_SEARCH']],
  [['vhangup'], ['CAP_SYS_TTY_CONFIG']],
  [['syslog'], ['CAP_SYSLOG', 'CAP_SYS_ADMIN']],
  [['bpf'], ['CAP_SYS_ADMIN', 'CAP_BPF']],
  [['perf_event_open'], ['CAP_SYS_ADMIN', 'CAP_PERFMON']],
  [
    [
      'mount', 'umount', 'umount2', 'pivot_root', 'swapon', 'swapoff', 'unshare', 'setns', 'quotactl',
      'quotactl_fd', 'fanotify_init', 'lookup_dcookie', 'name_to_handle_at', 'vm86', 'vm86old',
      'fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'mount_setattr',
    ],
    ['CAP_SYS_ADMIN'],
  ],
];

/** clone() flags that make new namespaces (x86 and most arches take flags as argument 0). */
const CLONE_NAMESPACE_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080];

const ARCHITECTURES: Record<string, string[]> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
};

/**
 * The RuntimeDefault profile for a container with `capabilities`: everything allowed except
 * the guarded calls above, namespace-creating clone(), and clone3() (answered ENOSYS, so libc
 * falls back to clone() where the flags can be checked).
 */
export function runtimeDefaultProfile(capabilities: string[]): OciSeccomp {
  const held = new Set(capabilities);
  const denied = GUARDED_SYSCALLS.filter(([, unless]) => !unless.some((cap) => held.has(cap))).flatMap(([names]) => names);
  const syscalls: NonNullable<OciSeccomp['syscalls']> = [{ names: denied, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM }];
  if (!held.has('CAP_SYS_ADMIN')) {
    for (const flag of CLONE_NAMESPACE_FLAGS) {
      syscalls.push({ names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }] });
    }
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: ARCHITECTURES[process.arch] ?? [], syscalls };
}

export interface SeccompRequest {
  /** The structured field; when present it decides. */
  seccomp: cri.SecurityProfile | null;
  /** The deprecated string field: "", "unconfined", "runtime/default", "docker/default", "localhost/<path>". */
  seccompProfilePath: string;
  privileged: boolean;
  capabilities: string[];
  /** Localhost profiles must be below this directory (kubelet's seccomp root). */
  profileRoot: string;
}

/** The filter a container (or pause) runs with; undefined means unconfined. */
export async function resolveSeccomp(request: SeccompRequest): Promise<OciSeccomp | undefined> {
  if (request.privileged) return undefined;
  const load = (ref: string, field: string) => loadProfile(request.profileRoot, ref, request.capabilities, field);
  if (request.seccomp) {
    switch (request.seccomp.profile_type) {
      case 'Unconfined':
        return undefined;
      case 'Localhost':
        return load(request.seccomp.localhost_ref, 'seccomp.localhost_ref');
      default:
        return runtimeDefaultProfile(request.capabilities);
    }
  }
  const profile = request.seccompProfilePath;
  if (profile === '' || profile === 'unconfined') return undefined;
  if (profile === 'runtime/default' || profile === 'docker/default') return runtimeDefaultProfile(request.capabilities);
  if (profile.startsWith('localhost/')) return load(profile.slice('localhost/'.length), 'seccomp_profile_path');
  throw new InvalidArgumentError(`seccomp_profile_path: unknown profile ${quote(profile)} (expected unconfined, runtime/default or localhost/<path>)`);
}

/** Real profiles are a few tens of KB (Docker's default is ~20 KB). */
const MAX_PROFILE_BYTES = 1024 * 1024;
const ACTION = /^SCMP_ACT_[A-Z_]+$/;
const COMPARISON = /^SCMP_CMP_[A-Z_]+$/;

interface ProfileFileSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }>;
  includes?: { caps?: string[] };
  excludes?: { caps?: string[] };
}

interface ProfileFile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] }>;
  flags?: string[];
  syscalls: ProfileFileSyscall[];
}

/**
 * A Localhost profile, read from below the profile root as a regular file of bounded size,
 * in the OCI or Docker format. Docker's per-capability `includes`/`excludes` are evaluated
 * against the container's capabilities. Errors never quote the file's content.
 */
async function loadProfile(root: string, ref: string, capabilities: string[], field: string): Promise<OciSeccomp> {
  const bytes = await readFileBelow(root, ref, MAX_PROFILE_BYTES, field);
  const profile = parseProfile(bytes, `${field}: profile ${quote(ref)}`);
  const held = new Set(capabilities);
  const applies = (rule: ProfileFileSyscall): boolean =>
    (rule.includes?.caps ?? []).every((c) => held.has(c)) && !(rule.excludes?.caps ?? []).some((c) => held.has(c));
  const architectures =
    profile.architectures ??
    (profile.archMap ?? []).flatMap((a) => [a.architecture, ...(a.subArchitectures ?? [])]).filter((a) => (ARCHITECTURES[process.arch] ?? []).includes(a));
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    ...(architectures.length > 0 ? { architectures } : {}),
    ...(profile.flags ? { flags: profile.flags } : {}),
    syscalls: profile.syscalls.filter(applies).map((rule) => ({
      names: rule.names,
      action: rule.action,
      ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}),
      ...(rule.args ? { args: rule.args } : {}),
    })),
  };
}

/** The profile's JSON checked field by field, so runc never meets a malformed filter. */
export function parseProfile(bytes: Buffer, what: string): ProfileFile {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new InvalidArgumentError(`${what} is not valid JSON`);
  }
  const bad = (problem: string) => new InvalidArgumentError(`${what}: ${problem}`);
  if (!isObject(value)) throw bad('not a JSON object');
  if (typeof value.defaultAction !== 'string' || !ACTION.test(value.defaultAction)) throw bad('defaultAction is not an SCMP_ACT_ action');
  const strings = (v: unknown, name: string): string[] | undefined => {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad(`${name} is not a list of strings`);
    return v as string[];
  };
  const errno = (v: unknown, name: string): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 4095) throw bad(`${name} is not an errno`);
    return v;
  };
  const archMap = value.archMap === undefined || value.archMap === null ? undefined : value.archMap;
  if (archMap !== undefined && (!Array.isArray(archMap) || !archMap.every((a) => isObject(a) && typeof a.architecture === 'string'))) {
    throw bad('archMap is not a list of {architecture}');
  }
  const rules = value.syscalls === undefined || value.syscalls === null ? [] : value.syscalls;
  if (!Array.isArray(rules)) throw bad('syscalls is not a list');
  return {
    defaultAction: value.defaultAction,
    defaultErrnoRet: errno(value.defaultErrnoRet, 'defaultErrnoRet'),
    architectures: strings(value.architectures, 'architectures'),
    archMap: archMap as ProfileFile['archMap'],
    flags: strings(value.flags, 'flags'),
    syscalls: rules.map((rule, i) => parseRule(rule, `syscalls[${i}]`, bad, strings, errno)),
  };
}

function parseRule(
  rule: unknown,
  at: string,
  bad: (problem: string) => Error,
  strings: (v: unknown, name: string) => string[] | undefined,
  errno: (v: unknown, name: string) => number | undefined,
): ProfileFileSyscall {
  if (!isObject(rule)) throw bad(`${at} is not an object`);
  const names = strings(rule.names, `${at}.names`) ?? (typeof rule.name === 'string' ? [rule.name] : []);
  if (names.length === 0) throw bad(`${at} names no system call`);
  if (typeof rule.action !== 'string' || !ACTION.test(rule.action)) throw bad(`${at}.action is not an SCMP_ACT_ action`);
  const args = rule.args === undefined || rule.args === null ? undefined : rule.args;
  if (args !== undefined) {
    const valid =
      Array.isArray(args) &&
      args.every((a) => isObject(a) && Number.isInteger(a.index) && (a.index as number) >= 0 && (a.index as number) <= 5 &&
        typeof a.value === 'number' && (a.valueTwo === undefined || typeof a.valueTwo === 'number') && typeof a.op === 'string' && COMPARISON.test(a.op));
    if (!valid) throw bad(`${at}.args is not a list of {index 0-5, value, valueTwo, op SCMP_CMP_}`);
  }
  const caps = (side: unknown, name: string) => (isObject(side) ? { caps: strings(side.caps, `${name}.caps`) ?? [] } : undefined);
  return {
    names,
    action: rule.action,
    errnoRet: errno(rule.errnoRet, `${at}.errnoRet`),
    args: args as ProfileFileSyscall['args'],
    includes: caps(rule.includes, `${at}.includes`),
    excludes: caps(rule.excludes, `${at}.excludes`),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
