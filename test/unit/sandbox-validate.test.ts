import { describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { namespaceOptionsOf, sandboxNameOf, validateSandboxConfig } from '../../src/sandbox/validate.js';
import { podCniArgs, buildCniArgs } from '../../src/network/cni/args.js';

function config(overrides: Partial<cri.PodSandboxConfig> = {}): cri.PodSandboxConfig {
  return {
    metadata: { name: 'web', namespace: 'default', uid: 'u-1', attempt: 2 },
    hostname: 'web',
    log_directory: '',
    dns_config: null,
    port_mappings: [],
    labels: {},
    annotations: {},
    linux: null,
    windows: null,
    ...overrides,
  };
}

describe('sandbox config validation', () => {
  it('accepts a complete config', () => {
    expect(() => validateSandboxConfig(config())).not.toThrow();
  });

  it('requires a config and metadata', () => {
    expect(() => validateSandboxConfig(null)).toThrow(/config is required/);
    expect(() => validateSandboxConfig(config({ metadata: null }))).toThrow(/config\.metadata is required/);
  });

  it.each(['name', 'namespace', 'uid'] as const)('requires metadata.%s', (field) => {
    const c = config();
    c.metadata = { ...c.metadata!, [field]: '' };
    expect(() => validateSandboxConfig(c)).toThrow(new RegExp(`metadata\\.${field} is required`));
  });

  it('rejects port mappings out of range', () => {
    const mapping = { protocol: 'TCP' as const, container_port: 0, host_port: 80, host_ip: '' };
    expect(() => validateSandboxConfig(config({ port_mappings: [mapping] }))).toThrow(/container_port 0/);
    expect(() => validateSandboxConfig(config({ port_mappings: [{ ...mapping, container_port: 80, host_port: 70000 }] }))).toThrow(/host_port 70000/);
  });

  it('names a sandbox by name, namespace, uid and attempt', () => {
    expect(sandboxNameOf(config().metadata!)).toBe('web_default_u-1_2');
  });

  it('never gives two different pods the same reserved name', () => {
    const a = sandboxNameOf({ name: 'web/team_a', namespace: 'x', uid: 'u', attempt: 0 });
    const b = sandboxNameOf({ name: 'web/team', namespace: 'a_x', uid: 'u', attempt: 0 });
    expect(a).not.toBe(b);
    expect(sandboxNameOf({ name: 'a%5Fb', namespace: 'n', uid: 'u', attempt: 0 })).not.toBe(sandboxNameOf({ name: 'a_b', namespace: 'n', uid: 'u', attempt: 0 }));
  });

  const linux = (overrides: Partial<cri.LinuxPodSandboxConfig>): cri.LinuxPodSandboxConfig => ({
    cgroup_parent: '',
    security_context: null,
    sysctls: {},
    overhead: null,
    resources: null,
    ...overrides,
  });
  const resources = (overrides: Partial<cri.LinuxContainerResources>): cri.LinuxContainerResources => ({
    cpu_period: '0', cpu_quota: '0', cpu_shares: '0', memory_limit_in_bytes: '0', oom_score_adj: '0', cpuset_cpus: '',
    cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: '0', ...overrides,
  });
  /** A security context as grpc-js decodes it: every field present. */
  const withDefaults = (partial: Partial<cri.LinuxSandboxSecurityContext>): cri.LinuxSandboxSecurityContext => ({
    supplemental_groups: [],
    supplemental_groups_policy: 'Merge',
    seccomp_profile_path: '',
    namespace_options: null,
    selinux_options: null,
    run_as_user: null,
    run_as_group: null,
    readonly_rootfs: false,
    privileged: false,
    seccomp: null,
    apparmor: null,
    ...partial,
  });
  const hostNet = { network: 'NODE', pid: 'POD', ipc: 'POD', target_id: '', userns_options: null } as cri.NamespaceOption;

  it.each<[string, Partial<cri.PodSandboxConfig>, RegExp]>([
    ['a newline in the hostname', { hostname: 'web\n10.0.0.1 evil' }, /config\.hostname .* is not a hostname/],
    ['a hostname longer than 64 bytes', { hostname: 'h'.repeat(65) }, /config\.hostname is 65 bytes long/],
    ['a relative log directory', { log_directory: 'logs' }, /config\.log_directory "logs" must be an absolute path/],
    ['".." in the log directory', { log_directory: '/var/log/../etc' }, /must not contain "\.\."/],
    ['a DNS option with a newline', { dns_config: { servers: [], searches: [], options: ['ndots:5\nnameserver 6.6.6.6'] } }, /config\.dns_config\.options\[0\] .* contains whitespace/],
    ['a DNS server that is not an IP', { dns_config: { servers: ['example.com'], searches: [], options: [] } }, /servers\[0\] "example\.com" is not an IP address/],
    ['a search domain with a space', { dns_config: { servers: [], searches: ['a b'], options: [] } }, /searches\[0\] "a b" contains whitespace/],
    ['an unknown port protocol', { port_mappings: [{ protocol: 7 as never, container_port: 80, host_port: 0, host_ip: '' }] }, /port_mappings\[0\]\.protocol "7" is not one of TCP, UDP, SCTP/],
    ['a host IP that is not an IP', { port_mappings: [{ protocol: 'TCP', container_port: 80, host_port: 80, host_ip: 'x' }] }, /host_ip "x" is not an IP address/],
    ['a ";" in the pod name', { metadata: { name: 'a;K8S_POD_NAME=b', namespace: 'n', uid: 'u', attempt: 0 } }, /config\.metadata\.name .* is not free of ";" and "="/],
    ['a NUL in a label', { labels: { a: 'x\0y' } }, /config\.labels\["a"\] .* contains a NUL byte/],
    ['a node-wide sysctl', { linux: linux({ sysctls: { 'kernel.panic': '1' } }) }, /config\.linux\.sysctls\["kernel\.panic"\] is not namespaced/],
    ['a net sysctl with host networking', { linux: linux({ sysctls: { 'net.ipv4.ip_forward': '1' }, security_context: { namespace_options: hostNet } as never }) }, /is a network sysctl, but the pod uses the node's network namespace/],
    ['a sysctl value with a newline', { linux: linux({ sysctls: { 'net.core.somaxconn': '1\n2' } }) }, /contains a line break/],
    ['a cgroup parent climbing out', { linux: linux({ cgroup_parent: '/kubepods/../../x' }) }, /cgroup_parent must not contain "\.\."/],
    ['a relative cgroup parent', { linux: linux({ cgroup_parent: 'etc/passwd' }) }, /cgroup_parent "etc\/passwd" is not an absolute cgroup path or a systemd slice name/],
    ['a cgroup parent with odd characters', { linux: linux({ cgroup_parent: '/a;b=c*' }) }, /cgroup_parent .* is not an absolute cgroup path/],
    ['a negative memory limit in overhead', { linux: linux({ overhead: resources({ memory_limit_in_bytes: '-5' }) }) }, /config\.linux\.overhead\.memory_limit_in_bytes -5 is outside/],
    ['a cpu period below 1 ms', { linux: linux({ resources: resources({ cpu_period: '10' }) }) }, /cpu_period 10 is below the kernel's minimum/],
    ['an int64 beyond 2^53', { linux: linux({ resources: resources({ memory_limit_in_bytes: '9007199254740993' }) }) }, /memory_limit_in_bytes 9007199254740993 is outside 0\.\.9007199254740991/],
    ['a malformed cpuset', { linux: linux({ resources: resources({ cpuset_cpus: '0-3;rm' }) }) }, /cpuset_cpus "0-3;rm" is not a CPU list/],
    ['a unified key that is a path', { linux: linux({ resources: resources({ unified: { '../memory.max': '1' } }) }) }, /unified key "\.\.\/memory\.max" is not a cgroup file name/],
    ['a pid namespace TARGET for a pod', { linux: linux({ security_context: { namespace_options: { ...hostNet, network: 'POD', pid: 'TARGET', target_id: 'x' } } as never }) }, /namespace_options\.pid TARGET applies only to containers/],
    ['an unknown namespace mode', { linux: linux({ security_context: { namespace_options: { ...hostNet, ipc: 9 } } as never }) }, /namespace_options\.ipc "9" is not one of/],
    ['a uid beyond 32 bits', { linux: linux({ security_context: { run_as_user: { value: '4294967296' }, supplemental_groups: [] } as never }) }, /run_as_user\.value 4294967296 is outside/],
    ['a user namespace mode CONTAINER', { linux: linux({ security_context: { namespace_options: { ...hostNet, network: 'POD', userns_options: { mode: 'CONTAINER', uids: [], gids: [] } } } as never }) }, /userns_options\.mode CONTAINER is not supported/],
  ])('refuses %s, naming the field', (_what, overrides, message) => {
    const full = config(overrides);
    if (full.linux?.security_context) full.linux.security_context = withDefaults(full.linux.security_context);
    expect(() => validateSandboxConfig(full)).toThrow(message);
  });

  it('quotes at most a few dozen characters of a huge value', () => {
    const huge = 'x'.repeat(1_000_000);
    let message = '';
    try {
      validateSandboxConfig(config({ dns_config: { servers: [huge], searches: [], options: [] } }));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/servers\[0\] is 1000000 bytes long/);
    expect(message.length).toBeLessThan(200);
  });

  it('accepts what kubelet sends', () => {
    const ok = config({
      hostname: 'web-0.svc',
      log_directory: '/var/log/pods/default_web_u-1',
      dns_config: { servers: ['10.96.0.10', 'fd00::a'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
      port_mappings: [{ protocol: 'UDP', container_port: 53, host_port: 5353, host_ip: '127.0.0.1' }],
      linux: linux({
        cgroup_parent: '/kubepods/burstable/pod123',
        sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shm_rmid_forced': '1', 'fs.mqueue.msg_max': '20' },
        resources: resources({ cpu_period: '100000', cpu_quota: '-1', cpu_shares: '2', memory_limit_in_bytes: '134217728', cpuset_cpus: '0-1,3', unified: { 'memory.high': 'max' } }),
      }),
    });
    expect(() => validateSandboxConfig(ok)).not.toThrow();
  });

  it('defaults namespace options to POD when the security context is unset', () => {
    expect(namespaceOptionsOf(config())).toMatchObject({ network: 'POD', pid: 'POD', ipc: 'POD' });
  });
});

describe('CNI_ARGS for a pod', () => {
  it('puts IgnoreUnknown first and then the four Kubernetes labels', () => {
    const args = buildCniArgs(podCniArgs({ namespace: 'ns', name: 'web', uid: 'u-1', sandboxId: 'abc' }));
    expect(args).toBe('IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1');
  });
});
