import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { resolveSeccomp, runtimeDefaultProfile } from '../../src/oci/seccomp.js';
import { CLONE_NAMESPACE_MASK, RUNTIME_DEFAULT_RULES } from '../../src/oci/seccomp-default.js';
import type { OciSeccomp } from '../../src/oci/spec-types.js';
import { DEFAULT_CAPABILITIES } from '../../src/oci/spec.js';
import { pauseSeccompRequest, pauseSpec } from '../../src/sandbox/pause-spec.js';

type Rule = NonNullable<OciSeccomp['syscalls']>[number];

const rulesFor = (profile: OciSeccomp, name: string): Rule[] => (profile.syscalls ?? []).filter((rule) => rule.names.includes(name));
/** Allowed whatever its arguments: some ALLOW rule names it without argument checks. */
const allowedOutright = (profile: OciSeccomp, name: string): boolean =>
  rulesFor(profile, name).some((rule) => rule.action === 'SCMP_ACT_ALLOW' && !rule.args);
const mentioned = (profile: OciSeccomp, name: string): boolean => rulesFor(profile, name).length > 0;

const ordinary = runtimeDefaultProfile([...DEFAULT_CAPABILITIES], 'x64');
const withCaps = (...caps: string[]) => runtimeDefaultProfile([...DEFAULT_CAPABILITIES, ...caps], 'x64');

describe('the RuntimeDefault seccomp profile', () => {
  it('refuses with EPERM whatever no rule allows', () => {
    expect(ordinary.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(ordinary.defaultErrnoRet).toBe(1);
  });

  it('allows the calls ordinary programs make', () => {
    for (const name of ['read', 'write', 'openat', 'execve', 'mmap', 'futex', 'wait4', 'exit_group', 'bind', 'connect', 'rt_sigaction', 'seccomp', 'statx']) {
      expect(allowedOutright(ordinary, name), name).toBe(true);
    }
    expect(ordinary.syscalls?.[0]?.names.length).toBeGreaterThan(350);
  });

  it('never allows keyrings, io_uring, kexec or userfaultfd, whatever the capabilities', () => {
    const everything = runtimeDefaultProfile(allCapabilityNames(), 'x64');
    for (const name of ['keyctl', 'add_key', 'request_key', 'io_uring_setup', 'io_uring_enter', 'kexec_load', 'userfaultfd', 'uselib', 'nfsservctl']) {
      expect(mentioned(everything, name), name).toBe(false);
    }
  });

  it('gives the administration calls only to CAP_SYS_ADMIN', () => {
    for (const name of ['mount', 'umount2', 'unshare', 'setns', 'sethostname', 'fsopen', 'bpf', 'perf_event_open', 'syslog']) {
      expect(allowedOutright(ordinary, name), name).toBe(false);
      expect(allowedOutright(withCaps('CAP_SYS_ADMIN'), name), name).toBe(true);
    }
  });

  it.each([
    ['CAP_SYS_PTRACE', ['kcmp', 'pidfd_getfd', 'process_madvise']],
    ['CAP_SYS_BOOT', ['reboot']],
    ['CAP_SYS_MODULE', ['init_module', 'finit_module', 'delete_module']],
    ['CAP_SYS_TIME', ['settimeofday', 'clock_settime']],
    ['CAP_SYS_NICE', ['mbind', 'set_mempolicy', 'get_mempolicy']],
    ['CAP_SYS_RAWIO', ['iopl', 'ioperm']],
    ['CAP_SYS_PACCT', ['acct']],
    ['CAP_SYS_TTY_CONFIG', ['vhangup']],
    ['CAP_DAC_READ_SEARCH', ['open_by_handle_at']],
    ['CAP_SYSLOG', ['syslog']],
    ['CAP_BPF', ['bpf']],
    ['CAP_PERFMON', ['perf_event_open']],
  ])('allows what %s guards only to a container holding it', (cap, names) => {
    for (const name of names) {
      expect(mentioned(ordinary, name), name).toBe(false);
      expect(allowedOutright(withCaps(cap), name), name).toBe(true);
    }
  });

  it('allows chroot with the default CAP_SYS_CHROOT, and not once it is dropped', () => {
    expect(allowedOutright(ordinary, 'chroot')).toBe(true);
    expect(mentioned(runtimeDefaultProfile(DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_SYS_CHROOT'), 'x64'), 'chroot')).toBe(false);
  });

  it('leaves ptrace to the kernel: allowed without CAP_SYS_PTRACE', () => {
    expect(allowedOutright(ordinary, 'ptrace')).toBe(true);
    expect(allowedOutright(ordinary, 'process_vm_readv')).toBe(true);
  });

  it('allows clone only without namespace flags unless the container holds CAP_SYS_ADMIN', () => {
    expect(CLONE_NAMESPACE_MASK).toBe(0x7e020000);
    expect(rulesFor(ordinary, 'clone')).toEqual([
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
    ]);
    expect(rulesFor(withCaps('CAP_SYS_ADMIN'), 'clone').every((rule) => !rule.args)).toBe(true);
  });

  it('reads clone flags from the second argument on s390x', () => {
    const s390 = runtimeDefaultProfile([...DEFAULT_CAPABILITIES], 's390x');
    expect(rulesFor(s390, 'clone').map((rule) => rule.args?.[0]?.index)).toEqual([1]);
    expect(s390.architectures).toEqual(['SCMP_ARCH_S390X', 'SCMP_ARCH_S390']);
  });

  it('answers clone3 with ENOSYS without CAP_SYS_ADMIN, so libc falls back to clone', () => {
    expect(rulesFor(ordinary, 'clone3')).toEqual([{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
    expect(rulesFor(withCaps('CAP_SYS_ADMIN'), 'clone3')).toEqual([expect.objectContaining({ action: 'SCMP_ACT_ALLOW' })]);
  });

  it('refuses AF_ALG and AF_VSOCK sockets with separate range rules', () => {
    const checks = rulesFor(ordinary, 'socket').map((rule) => rule.args);
    expect(checks).toEqual([
      [{ index: 0, value: 38, op: 'SCMP_CMP_LT' }],
      [{ index: 0, value: 39, op: 'SCMP_CMP_EQ' }],
      [{ index: 0, value: 40, op: 'SCMP_CMP_GT' }],
    ]);
  });

  it('allows personality only for the usual values', () => {
    const values = rulesFor(ordinary, 'personality').map((rule) => rule.args?.[0]);
    expect(values.map((arg) => arg?.value)).toEqual([0, 8, 0x20000, 0x20008, 0xffffffff]);
    expect(values.every((arg) => arg?.op === 'SCMP_CMP_EQ')).toBe(true);
  });

  it('covers the compat ABIs of the host and adds its architecture-only calls', () => {
    expect(ordinary.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(allowedOutright(ordinary, 'arch_prctl')).toBe(true);
    expect(allowedOutright(ordinary, 'modify_ldt')).toBe(true);
    expect(mentioned(ordinary, 'cacheflush')).toBe(false);
    const arm = runtimeDefaultProfile([...DEFAULT_CAPABILITIES], 'arm64');
    expect(arm.architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    expect(allowedOutright(arm, 'cacheflush')).toBe(true);
    expect(mentioned(arm, 'arch_prctl')).toBe(false);
    expect(rulesFor(arm, 'clone')[0]?.args?.[0]?.index).toBe(0);
  });

  it('writes only OCI fields, with no duplicate names inside a rule', () => {
    for (const rule of withCaps('CAP_SYS_ADMIN', 'CAP_SYS_PTRACE').syscalls ?? []) {
      expect(Object.keys(rule).every((key) => ['names', 'action', 'errnoRet', 'args'].includes(key))).toBe(true);
      expect(new Set(rule.names).size).toBe(rule.names.length);
    }
    expect(new Set(RUNTIME_DEFAULT_RULES.map((rule) => rule.name)).size).toBe(RUNTIME_DEFAULT_RULES.length);
  });
});

describe('the seccomp filter of the pause container', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'tscri-seccomp-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const config = (security: Partial<cri.LinuxSandboxSecurityContext> | null): cri.PodSandboxConfig =>
    ({ metadata: { name: 'p', namespace: 'n', uid: 'u', attempt: 0 }, linux: { security_context: security } }) as unknown as cri.PodSandboxConfig;
  const resolve = (security: Partial<cri.LinuxSandboxSecurityContext> | null) => resolveSeccomp(pauseSeccompRequest(config(security), root));

  it('is RuntimeDefault without any capability rule when the pod asks for it', async () => {
    const filter = await resolve({ seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' } });
    expect(filter).toEqual(runtimeDefaultProfile([]));
    expect(mentioned(filter!, 'chroot')).toBe(false);
    expect(await resolve({ seccomp_profile_path: 'runtime/default' })).toEqual(runtimeDefaultProfile([]));
  });

  it('is none when the pod names nothing, asks for Unconfined, or is privileged', async () => {
    expect(await resolve(null)).toBeUndefined();
    expect(await resolve({ seccomp: null, seccomp_profile_path: '' })).toBeUndefined();
    expect(await resolve({ seccomp: { profile_type: 'Unconfined', localhost_ref: '' } })).toBeUndefined();
    expect(await resolve({ privileged: true, seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' } })).toBeUndefined();
  });

  it('reads a Localhost profile from below the profile root only', async () => {
    writeFileSync(path.join(root, 'pause.json'), JSON.stringify({ defaultAction: 'SCMP_ACT_LOG', syscalls: [] }));
    expect(await resolve({ seccomp: { profile_type: 'Localhost', localhost_ref: 'pause.json' } })).toEqual({ defaultAction: 'SCMP_ACT_LOG', syscalls: [] });
    await expect(resolve({ seccomp: { profile_type: 'Localhost', localhost_ref: '../etc/passwd' } })).rejects.toThrow(/outside/);
    await expect(resolve({ seccomp_profile_path: 'localhost//etc/hostname' })).rejects.toThrow(/not below/);
  });

  it('lands in the pause spec', async () => {
    const seccomp = runtimeDefaultProfile([]);
    const spec = pauseSpec({
      sandboxId: 'sb', config: { ...config(null), hostname: 'p', log_directory: '', labels: {}, annotations: {} } as cri.PodSandboxConfig,
      namespaces: { network: 'POD', pid: 'POD', ipc: 'POD', target_id: '', userns_options: null },
      image: { ref: 'pause', rootfs: '/r', args: ['/pause'], env: [], cwd: '/', user: { uid: 65535, gid: 65535 } },
      hostname: 'p', netnsPath: '/run/netns/x', shmPath: '/run/shm', cgroupsPath: '/sb', ownOomScoreAdj: 0, seccomp,
    });
    expect(spec.linux.seccomp).toBe(seccomp);
  });
});

function allCapabilityNames(): string[] {
  const caps = new Set<string>();
  for (const rule of RUNTIME_DEFAULT_RULES) for (const cap of [...(rule.caps ?? []), ...(rule.unlessCaps ?? [])]) caps.add(cap);
  return [...caps];
}
