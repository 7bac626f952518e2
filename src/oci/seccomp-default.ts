/**
 * The RuntimeDefault seccomp policy as data: the policy Docker ships (moby/profiles seccomp
 * v0.2.3) and containerd generates, so a pod asking for RuntimeDefault is confined here as it
 * would be on those runtimes. Everything not allowed by a rule fails with EPERM.
 *
 * A rule applies when the host's architecture is among `arch` (if given) and not among
 * `notArch`, and the container holds every capability in `caps` (if given) and none in
 * `unlessCaps`. seccomp.ts resolves these
 * conditions into an OCI filter for one container; nothing here is written to config.json as is.
 */

/** The comparisons the rules below use (libseccomp's names, as the OCI spec spells them). */
export type SeccompOp = 'SCMP_CMP_EQ' | 'SCMP_CMP_LT' | 'SCMP_CMP_GT' | 'SCMP_CMP_MASKED_EQ';

export interface SeccompArgCheck {
  index: number;
  value: number;
  valueTwo?: number;
  op: SeccompOp;
}

/** Architectures as Node names them (process.arch). */
export type NodeArch = 'x64' | 'ia32' | 'arm64' | 'arm' | 's390x' | 'ppc64' | 'riscv64' | 'loong64';

export interface DefaultRule {
  /** What the rule is for; tests and readers refer to it. */
  name: string;
  syscalls: readonly string[];
  /** Allow unless given; ERRNO rules carry their errno. */
  action?: { errno: number };
  /** Several checks on one rule must all hold (runc splits same-index checks, so keep them apart). */
  args?: readonly SeccompArgCheck[];
  arch?: readonly NodeArch[];
  notArch?: readonly NodeArch[];
  caps?: readonly string[];
  unlessCaps?: readonly string[];
}

export const EPERM = 1;
export const ENOSYS = 38;

/** What libseccomp loads the filter for: the host's ABI and the older ABIs its kernel also runs. */
export const SECCOMP_ARCHITECTURES: Readonly<Partial<Record<NodeArch, readonly string[]>>> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  ia32: ['SCMP_ARCH_X86'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  arm: ['SCMP_ARCH_ARM'],
  s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
  riscv64: ['SCMP_ARCH_RISCV64'],
  loong64: ['SCMP_ARCH_LOONGARCH64'],
};

/**
 * The namespace flags of clone(2): NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
 * (CLONE_NEWTIME, 0x80, only takes effect on a later exec and is left out as Docker does).
 */
export const CLONE_NAMESPACE_MASK = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

/** socket(2) families refused: AF_ALG (kernel crypto) and AF_VSOCK (the hypervisor's sockets). */
const AF_ALG = 38;
const AF_VSOCK = 40;

/** personality(2) values a container may set: Linux, 32-bit Linux, uname 2.6, both, and the query. */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/**
 * Calls any process may make: they act on the caller, its own files, sockets and children.
 * Missing on purpose: clone/clone3, unshare, setns, mount and friends, keyrings, io_uring,
 * bpf, perf, module and clock calls; they come back below only where a condition allows.
 */
const ORDINARY_SYSCALLS: readonly string[] = [
    '_llseek', '_newselect', 'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'bind', 'brk',
    'cachestat', 'capget', 'capset', 'chdir', 'chmod', 'chown', 'chown32', 'clock_adjtime',
    'clock_adjtime64', 'clock_getres', 'clock_getres_time64', 'clock_gettime', 'clock_gettime64',
    'clock_nanosleep', 'clock_nanosleep_time64', 'close', 'close_range', 'connect', 'copy_file_range',
    'creat', 'dup', 'dup2', 'dup3', 'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_ctl_old',
    'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'epoll_wait_old', 'eventfd', 'eventfd2', 'execve',
    'execveat', 'exit', 'exit_group', 'faccessat', 'faccessat2', 'fadvise64', 'fadvise64_64',
    'fallocate', 'fanotify_mark', 'fchdir', 'fchmod', 'fchmodat', 'fchmodat2', 'fchown', 'fchown32',
    'fchownat', 'fcntl', 'fcntl64', 'fdatasync', 'fgetxattr', 'flistxattr', 'flock', 'fork',
    'fremovexattr', 'fsetxattr', 'fstat', 'fstat64', 'fstatat64', 'fstatfs', 'fstatfs64', 'fsync',
    'ftruncate', 'ftruncate64', 'futex', 'futex_requeue', 'futex_time64', 'futex_wait', 'futex_waitv',
    'futex_wake', 'futimesat', 'get_robust_list', 'get_thread_area', 'getcpu', 'getcwd', 'getdents',
    'getdents64', 'getegid', 'getegid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32', 'getgroups',
    'getgroups32', 'getitimer', 'getpeername', 'getpgid', 'getpgrp', 'getpid', 'getppid', 'getpriority',
    'getrandom', 'getresgid', 'getresgid32', 'getresuid', 'getresuid32', 'getrlimit', 'getrusage',
    'getsid', 'getsockname', 'getsockopt', 'gettid', 'gettimeofday', 'getuid', 'getuid32', 'getxattr',
    'getxattrat', 'inotify_add_watch', 'inotify_init', 'inotify_init1', 'inotify_rm_watch', 'io_cancel',
    'io_destroy', 'io_getevents', 'io_pgetevents', 'io_pgetevents_time64', 'io_setup', 'io_submit',
    'ioctl', 'ioprio_get', 'ioprio_set', 'ipc', 'kill', 'landlock_add_rule', 'landlock_create_ruleset',
    'landlock_restrict_self', 'lchown', 'lchown32', 'lgetxattr', 'link', 'linkat', 'listen',
    'listmount', 'listxattr', 'listxattrat', 'llistxattr', 'lremovexattr', 'lseek', 'lsetxattr',
    'lstat', 'lstat64', 'madvise', 'map_shadow_stack', 'membarrier', 'memfd_create', 'memfd_secret',
    'mincore', 'mkdir', 'mkdirat', 'mknod', 'mknodat', 'mlock', 'mlock2', 'mlockall', 'mmap', 'mmap2',
    'mprotect', 'mq_getsetattr', 'mq_notify', 'mq_open', 'mq_timedreceive', 'mq_timedreceive_time64',
    'mq_timedsend', 'mq_timedsend_time64', 'mq_unlink', 'mremap', 'mseal', 'msgctl', 'msgget', 'msgrcv',
    'msgsnd', 'msync', 'munlock', 'munlockall', 'munmap', 'name_to_handle_at', 'nanosleep',
    'newfstatat', 'open', 'openat', 'openat2', 'pause', 'pidfd_open', 'pidfd_send_signal', 'pipe',
    'pipe2', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'poll', 'ppoll', 'ppoll_time64', 'prctl',
    'pread64', 'preadv', 'preadv2', 'prlimit64', 'process_mrelease', 'pselect6', 'pselect6_time64',
    'pwrite64', 'pwritev', 'pwritev2', 'read', 'readahead', 'readlink', 'readlinkat', 'readv', 'recv',
    'recvfrom', 'recvmmsg', 'recvmmsg_time64', 'recvmsg', 'remap_file_pages', 'removexattr',
    'removexattrat', 'rename', 'renameat', 'renameat2', 'restart_syscall', 'riscv_hwprobe', 'rmdir',
    'rseq', 'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn',
    'rt_sigsuspend', 'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo',
    'sched_get_priority_max', 'sched_get_priority_min', 'sched_getaffinity', 'sched_getattr',
    'sched_getparam', 'sched_getscheduler', 'sched_rr_get_interval', 'sched_rr_get_interval_time64',
    'sched_setaffinity', 'sched_setattr', 'sched_setparam', 'sched_setscheduler', 'sched_yield',
    'seccomp', 'select', 'semctl', 'semget', 'semop', 'semtimedop', 'semtimedop_time64', 'send',
    'sendfile', 'sendfile64', 'sendmmsg', 'sendmsg', 'sendto', 'set_robust_list', 'set_thread_area',
    'set_tid_address', 'setfsgid', 'setfsgid32', 'setfsuid', 'setfsuid32', 'setgid', 'setgid32',
    'setgroups', 'setgroups32', 'setitimer', 'setpgid', 'setpriority', 'setregid', 'setregid32',
    'setresgid', 'setresgid32', 'setresuid', 'setresuid32', 'setreuid', 'setreuid32', 'setrlimit',
    'setsid', 'setsockopt', 'setuid', 'setuid32', 'setxattr', 'setxattrat', 'shmat', 'shmctl', 'shmdt',
    'shmget', 'shutdown', 'sigaltstack', 'signalfd', 'signalfd4', 'sigprocmask', 'sigreturn',
    'socketcall', 'socketpair', 'splice', 'stat', 'stat64', 'statfs', 'statfs64', 'statmount', 'statx',
    'symlink', 'symlinkat', 'sync', 'sync_file_range', 'syncfs', 'sysinfo', 'tee', 'tgkill', 'time',
    'timer_create', 'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_gettime64',
    'timer_settime', 'timer_settime64', 'timerfd_create', 'timerfd_gettime', 'timerfd_gettime64',
    'timerfd_settime', 'timerfd_settime64', 'times', 'tkill', 'truncate', 'truncate64', 'ugetrlimit',
    'umask', 'uname', 'unlink', 'unlinkat', 'uretprobe', 'utime', 'utimensat', 'utimensat_time64',
    'utimes', 'vfork', 'vmsplice', 'wait4', 'waitid', 'waitpid', 'write', 'writev',
];

const CAP_SYS_ADMIN = 'CAP_SYS_ADMIN';

export const RUNTIME_DEFAULT_RULES: readonly DefaultRule[] = [
  { name: 'ordinary calls', syscalls: ORDINARY_SYSCALLS },
  // Since Linux 4.8 a tracer can no longer use ptrace to slip past its tracee's filter, so
  // tracing is left to the kernel's own checks (same user, CAP_SYS_PTRACE for others' processes).
  { name: 'tracing', syscalls: ['ptrace', 'process_vm_readv', 'process_vm_writev'] },
  // Three ranges instead of two "not equal" checks: runc would turn those into either-or.
  { name: 'sockets below AF_ALG', syscalls: ['socket'], args: [{ index: 0, value: AF_ALG, op: 'SCMP_CMP_LT' }] },
  { name: 'sockets between AF_ALG and AF_VSOCK', syscalls: ['socket'], args: [{ index: 0, value: AF_ALG + 1, op: 'SCMP_CMP_EQ' }] },
  { name: 'sockets above AF_VSOCK', syscalls: ['socket'], args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_GT' }] },
  ...PERSONALITIES.map((value): DefaultRule => ({
    name: `personality ${value.toString(16)}`,
    syscalls: ['personality'],
    args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }],
  })),
  { name: 'ppc64le extras', syscalls: ['sync_file_range2', 'swapcontext'], arch: ['ppc64'] },
  {
    name: 'arm extras',
    syscalls: ['arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls'],
    arch: ['arm', 'arm64'],
  },
  { name: 'x86-64 thread state', syscalls: ['arch_prctl'], arch: ['x64'] },
  { name: 'x86 local descriptor table', syscalls: ['modify_ldt'], arch: ['x64', 'ia32'] },
  { name: 's390 extras', syscalls: ['s390_pci_mmio_read', 's390_pci_mmio_write', 's390_runtime_instr'], arch: ['s390x'] },
  { name: 'riscv instruction cache', syscalls: ['riscv_flush_icache'], arch: ['riscv64'] },
  { name: 'open by handle', syscalls: ['open_by_handle_at'], caps: ['CAP_DAC_READ_SEARCH'] },
  {
    name: 'administration',
    syscalls: [
      'bpf', 'clone', 'clone3', 'fanotify_init', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'lookup_dcookie',
      'lsm_get_self_attr', 'lsm_list_modules', 'lsm_set_self_attr', 'mount', 'mount_setattr', 'move_mount',
      'open_tree', 'perf_event_open', 'quotactl', 'quotactl_fd', 'setdomainname', 'sethostname', 'setns',
      'syslog', 'umount', 'umount2', 'unshare',
    ],
    caps: [CAP_SYS_ADMIN],
  },
  // s390 passes clone's flags second; everywhere else they come first.
  {
    name: 'clone without namespaces',
    syscalls: ['clone'],
    args: [{ index: 0, value: CLONE_NAMESPACE_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    notArch: ['s390x'],
    unlessCaps: [CAP_SYS_ADMIN],
  },
  {
    name: 'clone without namespaces (s390)',
    syscalls: ['clone'],
    args: [{ index: 1, value: CLONE_NAMESPACE_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    arch: ['s390x'],
    unlessCaps: [CAP_SYS_ADMIN],
  },
  // clone3 hides its flags behind a pointer the filter cannot read. ENOSYS (not EPERM) makes
  // glibc fall back to clone(), whose flags the rule above checks.
  { name: 'clone3 unavailable', syscalls: ['clone3'], action: { errno: ENOSYS }, unlessCaps: [CAP_SYS_ADMIN] },
  { name: 'reboot', syscalls: ['reboot'], caps: ['CAP_SYS_BOOT'] },
  { name: 'chroot', syscalls: ['chroot'], caps: ['CAP_SYS_CHROOT'] },
  { name: 'kernel modules', syscalls: ['delete_module', 'init_module', 'finit_module'], caps: ['CAP_SYS_MODULE'] },
  { name: 'process accounting', syscalls: ['acct'], caps: ['CAP_SYS_PACCT'] },
  {
    name: "other processes' state",
    syscalls: ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace'],
    caps: ['CAP_SYS_PTRACE'],
  },
  { name: 'I/O ports', syscalls: ['iopl', 'ioperm'], caps: ['CAP_SYS_RAWIO'] },
  { name: 'system clock', syscalls: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64'], caps: ['CAP_SYS_TIME'] },
  { name: 'terminal hangup', syscalls: ['vhangup'], caps: ['CAP_SYS_TTY_CONFIG'] },
  { name: 'memory policy', syscalls: ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node'], caps: ['CAP_SYS_NICE'] },
  { name: 'kernel log', syscalls: ['syslog'], caps: ['CAP_SYSLOG'] },
  { name: 'BPF programs', syscalls: ['bpf'], caps: ['CAP_BPF'] },
  { name: 'performance events', syscalls: ['perf_event_open'], caps: ['CAP_PERFMON'] },
];
