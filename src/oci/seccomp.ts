import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type * as cri from '../api/cri.js';
import { InvalidArgumentError, messageOf } from '../errors.js';
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
}

/** The seccomp filter a container (or pause) runs with; undefined means unconfined. */
export async function resolveSeccomp(request: SeccompRequest): Promise<OciSeccomp | undefined> {
  if (request.privileged) return undefined;
  if (request.seccomp) {
    switch (request.seccomp.profile_type) {
      case 'Unconfined':
        return undefined;
      case 'Localhost':
        return loadProfile(request.seccomp.localhost_ref, request.capabilities);
      default:
        return runtimeDefaultProfile(request.capabilities);
    }
  }
  const profile = request.seccompProfilePath;
  if (profile === '' || profile === 'unconfined') return undefined;
  if (profile === 'runtime/default' || profile === 'docker/default') return runtimeDefaultProfile(request.capabilities);
  if (profile.startsWith('localhost/')) return loadProfile(profile.slice('localhost/'.length), request.capabilities);
  throw new InvalidArgumentError(`unknown seccomp profile "${profile}" (expected unconfined, runtime/default or localhost/<path>)`);
}

interface ProfileFileSyscall {
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }> | null;
  includes?: { caps?: string[]; arches?: string[] };
  excludes?: { caps?: string[]; arches?: string[] };
}

interface ProfileFile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] }>;
  flags?: string[];
  syscalls?: ProfileFileSyscall[];
}

/**
 * A profile file in the OCI or Docker format. Docker's per-capability `includes`/`excludes`
 * are evaluated against the container's capabilities.
 */
async function loadProfile(file: string, capabilities: string[]): Promise<OciSeccomp> {
  if (!path.isAbsolute(file)) throw new InvalidArgumentError(`seccomp profile path "${file}" must be absolute`);
  let profile: ProfileFile;
  try {
    profile = JSON.parse(await readFile(file, 'utf8')) as ProfileFile;
  } catch (err) {
    throw new InvalidArgumentError(`cannot load seccomp profile ${file}: ${messageOf(err)}`);
  }
  if (typeof profile.defaultAction !== 'string') throw new InvalidArgumentError(`seccomp profile ${file} has no defaultAction`);
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
    syscalls: (profile.syscalls ?? []).filter(applies).map((rule) => ({
      names: rule.names ?? (rule.name ? [rule.name] : []),
      action: rule.action,
      ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}),
      ...(rule.args ? { args: rule.args } : {}),
    })),
  };
}
