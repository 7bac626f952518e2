import { describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { validateCreateContainer, validateExecCommand } from '../../src/container/validate.js';

function request(overrides: Partial<cri.ContainerConfig> = {}, linux: Partial<cri.LinuxContainerConfig> | null = null): cri.CreateContainerRequest {
  const config: cri.ContainerConfig = {
    metadata: { name: 'c', attempt: 0 },
    image: { image: 'busybox', annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' },
    command: ['sh'],
    args: [],
    working_dir: '',
    envs: [],
    mounts: [],
    devices: [],
    labels: {},
    annotations: {},
    log_path: 'c/0.log',
    stdin: false,
    stdin_once: false,
    tty: false,
    linux: linux ? { resources: null, security_context: null, ...linux } : null,
    windows: null,
    stop_signal: 'RUNTIME_DEFAULT',
    ...overrides,
  } as cri.ContainerConfig;
  return { pod_sandbox_id: 'abc', config, sandbox_config: null } as cri.CreateContainerRequest;
}

const security = (overrides: Partial<cri.LinuxContainerSecurityContext>) =>
  ({
    capabilities: null, privileged: false, namespace_options: null, selinux_options: null, run_as_user: null, run_as_username: '',
    readonly_rootfs: false, supplemental_groups: [], apparmor_profile: '', seccomp_profile_path: '', no_new_privs: false,
    run_as_group: null, masked_paths: [], readonly_paths: [], seccomp: null, apparmor: null, supplemental_groups_policy: 'Merge',
    ...overrides,
  }) as cri.LinuxContainerSecurityContext;

const mount = (overrides: Partial<cri.Mount>) =>
  ({ container_path: '/data', host_path: '/tmp', readonly: false, selinux_relabel: false, propagation: 'PROPAGATION_PRIVATE', recursive_read_only: false, image: null, image_sub_path: '', ...overrides }) as cri.Mount;

describe('CreateContainer validation', () => {
  it('accepts a complete request', () => {
    expect(() => validateCreateContainer(request())).not.toThrow();
  });

  it.each<[string, cri.CreateContainerRequest, RegExp]>([
    ['no config', { pod_sandbox_id: 'a', config: null, sandbox_config: null } as cri.CreateContainerRequest, /^config is required/],
    ['no name', request({ metadata: { name: '', attempt: 0 } }), /config\.metadata\.name is required/],
    ['no image', request({ image: null }), /config\.image is required/],
    ['a NUL in an argument', request({ command: ['sh', '-c', 'echo\0x'] }), /config argument 2 .* contains a NUL byte/],
    ['a relative working dir', request({ working_dir: 'tmp' }), /config\.working_dir "tmp" must be an absolute path/],
    ['"=" in an env name', request({ envs: [{ key: 'A=B', value: Buffer.from('x') }] }), /config\.envs\[0\]\.key "A=B" contains "="/],
    ['a NUL in an env value', request({ envs: [{ key: 'A', value: Buffer.from('x\0y') }] }), /config\.envs\[0\]\.value of "A" contains a NUL byte/],
    ['a relative mount target', request({ mounts: [mount({ container_path: 'data' })] }), /config\.mounts\[0\]\.container_path "data" must be an absolute path/],
    ['an unknown propagation', request({ mounts: [mount({ propagation: 5 as never })] }), /config\.mounts\[0\]\.propagation "5" is not one of/],
    ['bad device permissions', request({ devices: [{ container_path: '/dev/x', host_path: '/dev/null', permissions: 'rwx' }] }), /config\.devices\[0\]\.permissions "rwx" is not a combination of r, w and m/],
    ['a log path leaving the log directory', request({ log_path: '../../etc/cron.d/x' }), /config\.log_path .* must not contain "\.\."/],
    ['an absolute log path', request({ log_path: '/etc/passwd' }), /config\.log_path "\/etc\/passwd" must be a relative path/],
    // The fuzzer's find: a name longer than a file name can be (ENAMETOOLONG, once INTERNAL).
    ['a log path with a 300-byte name', request({ log_path: `c/${'x'.repeat(300)}` }), /config\.log_path has a component of 300 bytes, more than the 255 a file name can have/],
    ['an unknown stop signal', request({ stop_signal: 999 as never }), /config\.stop_signal "999" is not one of/],
    ['an unknown capability', request({}, { security_context: security({ capabilities: { add_capabilities: ['CAP_FLY'], drop_capabilities: [], add_ambient_capabilities: [] } }) }), /capabilities\.add_capabilities\[0\] "CAP_FLY" is not a Linux capability/],
    ['TARGET without a target', request({}, { security_context: security({ namespace_options: { network: 'POD', pid: 'TARGET', ipc: 'POD', target_id: '', userns_options: null } }) }), /namespace_options\.target_id is required when pid is TARGET/],
    ['a relative masked path', request({}, { security_context: security({ masked_paths: ['proc/kcore'] }) }), /masked_paths\[0\] "proc\/kcore" must be an absolute path/],
    ['a Localhost seccomp profile without a reference', request({}, { security_context: security({ seccomp: { profile_type: 'Localhost', localhost_ref: '' } }) }), /seccomp\.localhost_ref is required/],
    ['an unknown seccomp_profile_path', request({}, { security_context: security({ seccomp_profile_path: 'mine' }) }), /seccomp_profile_path "mine" is not unconfined/],
    ['a cpu quota below 1 ms', request({}, { resources: { cpu_period: '0', cpu_quota: '5', cpu_shares: '0', memory_limit_in_bytes: '0', oom_score_adj: '0', cpuset_cpus: '', cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: '0' } }), /cpu_quota 5 is below/],
    // The fuzzer's find: a quota past the kernel's 44-bit bandwidth limit (EINVAL from runc update, once INTERNAL).
    ['a cpu quota beyond the kernel\'s maximum', request({}, { resources: { cpu_period: '1000', cpu_quota: '9007199254740991', cpu_shares: '0', memory_limit_in_bytes: '0', oom_score_adj: '0', cpuset_cpus: '', cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: '0' } }), /cpu_quota 9007199254740991 is above the kernel's maximum of 17592186044415 µs/],
    ['oom_score_adj out of range', request({}, { resources: { cpu_period: '0', cpu_quota: '0', cpu_shares: '0', memory_limit_in_bytes: '0', oom_score_adj: '5000', cpuset_cpus: '', cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: '0' } }), /oom_score_adj 5000 is outside -1000\.\.1000/],
    ['swap below the memory limit', request({}, { resources: { cpu_period: '0', cpu_quota: '0', cpu_shares: '0', memory_limit_in_bytes: '1000000', oom_score_adj: '0', cpuset_cpus: '', cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: '10' } }), /memory_swap_limit_in_bytes 10 is below memory_limit_in_bytes/],
  ])('refuses %s, naming the field', (_what, req, message) => {
    expect(() => validateCreateContainer(req)).toThrow(message);
  });

  it('refuses an empty or NUL-bearing exec command', () => {
    expect(() => validateExecCommand('cmd', [])).toThrow(/cmd must name a command/);
    expect(() => validateExecCommand('cmd', ['a\0'])).toThrow(/cmd argument 0 .* NUL/);
    // The kernel's own limits: a program path of PATH_MAX, arguments of 128 KiB each.
    expect(() => validateExecCommand('cmd', ['y'.repeat(4097)])).toThrow(/cmd argument 0 is 4097 bytes, more than the 4096 the kernel takes for a program path/);
    expect(() => validateExecCommand('cmd', ['sh', 'y'.repeat(128 * 1024 + 1)])).toThrow(/cmd argument 1 is 131073 bytes/);
    expect(() => validateExecCommand('cmd', ['sh', 'y'.repeat(128 * 1024)])).not.toThrow();
    expect(() => validateExecCommand('cmd', ['ls', '-l'])).not.toThrow();
  });
});
