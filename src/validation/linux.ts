/**
 * Checks shared by pods and containers: cgroup resources, sysctls, users and groups, and
 * security profiles. Ranges are what the kernel and runc accept, so a bad value is refused
 * before anything is made instead of failing inside runc seconds later.
 */
import type * as cri from '../api/cri.js';
import { normalizeCapability } from '../oci/capabilities.js';
import {
  checkAbsolutePath,
  checkEnum,
  checkInt64,
  checkList,
  checkSafeInt,
  checkText,
  invalid,
  quote,
  UINT32_MAX,
} from './fields.js';

/** uid_t and gid_t are 32 bits; (uid_t)-1 means "no change" to the kernel. */
const MAX_ID = BigInt(UINT32_MAX - 1);
/** The kernel's NGROUPS_MAX. */
const MAX_GROUPS = 65536;
const CPUSET = /^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*$/;
const HUGEPAGE_SIZE = /^\d{1,6}(KB|MB|GB|TB)$/;
/** A cgroup v2 interface file: `memory.high`, `cpu.max`, `io.weight` … never a path. */
const UNIFIED_KEY = /^[a-z][a-z0-9_]*\.[a-z0-9_.]+$/;

/** The kernel's largest CFS quota: its bandwidth arithmetic keeps 44 bits of microseconds. */
const MAX_CFS_QUOTA_US = 2 ** 44 - 1;

/** LinuxContainerResources, for containers, pod overhead and pod resources. */
export function checkResources(field: string, r: cri.LinuxContainerResources | null): void {
  if (!r) return;
  const period = checkSafeInt(`${field}.cpu_period`, r.cpu_period, 0, 1_000_000);
  if (period !== 0 && period < 1000) throw invalid(`${field}.cpu_period`, `${period} is below the kernel's minimum of 1000 µs`);
  const quota = checkSafeInt(`${field}.cpu_quota`, r.cpu_quota, -1, Number.MAX_SAFE_INTEGER);
  if (quota > 0 && quota < 1000) throw invalid(`${field}.cpu_quota`, `${quota} is below the kernel's minimum of 1000 µs`);
  if (quota > MAX_CFS_QUOTA_US) throw invalid(`${field}.cpu_quota`, `${quota} is above the kernel's maximum of ${MAX_CFS_QUOTA_US} µs`);
  const shares = checkSafeInt(`${field}.cpu_shares`, r.cpu_shares, 0, 262_144);
  if (shares === 1) throw invalid(`${field}.cpu_shares`, '1 is below the kernel\'s minimum of 2');
  const memory = checkSafeInt(`${field}.memory_limit_in_bytes`, r.memory_limit_in_bytes, 0, Number.MAX_SAFE_INTEGER);
  const swap = checkSafeInt(`${field}.memory_swap_limit_in_bytes`, r.memory_swap_limit_in_bytes, -1, Number.MAX_SAFE_INTEGER);
  if (swap > 0 && memory > 0 && swap < memory) {
    throw invalid(`${field}.memory_swap_limit_in_bytes`, `${swap} is below memory_limit_in_bytes ${memory} (it counts memory plus swap)`);
  }
  checkSafeInt(`${field}.oom_score_adj`, r.oom_score_adj, -1000, 1000);
  checkText(`${field}.cpuset_cpus`, r.cpuset_cpus, { maxBytes: 4096, pattern: CPUSET, patternHint: 'a CPU list such as 0-3,6' });
  checkText(`${field}.cpuset_mems`, r.cpuset_mems, { maxBytes: 4096, pattern: CPUSET, patternHint: 'a node list such as 0,1' });
  checkList(`${field}.hugepage_limits`, r.hugepage_limits, 16, (h, f) => {
    checkText(`${f}.page_size`, h.page_size, { required: true, pattern: HUGEPAGE_SIZE, patternHint: 'a size such as 2MB or 1GB' });
    checkSafeInt(`${f}.limit`, h.limit, 0, Number.MAX_SAFE_INTEGER);
  });
  for (const [key, value] of Object.entries(r.unified)) {
    checkText(`${field}.unified key`, key, { required: true, maxBytes: 256, pattern: UNIFIED_KEY, patternHint: 'a cgroup file name such as memory.high' });
    checkText(`${field}.unified[${quote(key)}]`, value, { maxBytes: 4096, singleLine: true });
  }
}

/** Sysctls a pod's own namespaces isolate; any other would change the whole node. */
const IPC_SYSCTLS = new Set(['kernel.shm_rmid_forced', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem']);
const SYSCTL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.\/@:-]*$/;

/** Which namespace a sysctl belongs to, or undefined when it is not namespaced. */
export function sysctlNamespace(name: string): 'ipc' | 'network' | undefined {
  const dotted = name.replaceAll('/', '.');
  if (IPC_SYSCTLS.has(dotted) || dotted.startsWith('fs.mqueue.')) return 'ipc';
  if (dotted.startsWith('net.')) return 'network';
  return undefined;
}

/** A pod's sysctls: namespaced ones only, and only for namespaces the pod does not share with the node. */
export function checkSysctls(field: string, sysctls: Readonly<Record<string, string>>, hostNetwork: boolean, hostIpc: boolean): void {
  const entries = Object.entries(sysctls);
  if (entries.length > 256) throw invalid(field, `has ${entries.length} entries, more than 256`);
  for (const [name, value] of entries) {
    checkText(`${field} key`, name, { required: true, maxBytes: 256, pattern: SYSCTL_NAME, patternHint: 'a sysctl name' });
    if (name.split(/[./]/).includes('') || name.includes('..')) throw invalid(`${field} key`, `${quote(name)} is not a sysctl name`);
    checkText(`${field}[${quote(name)}]`, value, { maxBytes: 4096, singleLine: true });
    const namespace = sysctlNamespace(name);
    if (!namespace) throw invalid(`${field}[${quote(name)}]`, 'is not namespaced: it would change the whole node');
    if (namespace === 'network' && hostNetwork) throw invalid(`${field}[${quote(name)}]`, 'is a network sysctl, but the pod uses the node\'s network namespace');
    if (namespace === 'ipc' && hostIpc) throw invalid(`${field}[${quote(name)}]`, 'is an IPC sysctl, but the pod uses the node\'s IPC namespace');
  }
}

/** A uid or gid from an Int64Value wrapper. */
export function checkId(field: string, value: cri.Int64Value | null): void {
  if (value) checkInt64(`${field}.value`, value.value, 0n, MAX_ID);
}

export function checkGroups(field: string, groups: readonly string[]): void {
  checkList(field, groups, MAX_GROUPS, (g, f) => checkInt64(f, g, 0n, MAX_ID));
}

/** A SecurityProfile (seccomp or AppArmor): a known type, and a reference only for Localhost. */
export function checkSecurityProfile(field: string, profile: cri.SecurityProfile | null): void {
  if (!profile) return;
  const type = checkEnum(`${field}.profile_type`, profile.profile_type, ['RuntimeDefault', 'Unconfined', 'Localhost']);
  const ref = checkText(`${field}.localhost_ref`, profile.localhost_ref, { maxBytes: 4096, singleLine: true });
  if (type === 'Localhost' && ref === '') throw invalid(`${field}.localhost_ref`, 'is required for a Localhost profile');
}

/** The deprecated seccomp_profile_path string. */
export function checkSeccompProfilePath(field: string, value: string): void {
  checkText(field, value, { maxBytes: 4096, singleLine: true });
  if (value === '' || value === 'unconfined' || value === 'runtime/default' || value === 'docker/default') return;
  if (!value.startsWith('localhost/')) throw invalid(field, `${quote(value)} is not unconfined, runtime/default or localhost/<path>`);
}

export function checkSelinux(field: string, options: cri.SELinuxOption | null): void {
  if (!options) return;
  for (const key of ['user', 'role', 'type', 'level'] as const) {
    checkText(`${field}.${key}`, options[key], { maxBytes: 256, noSpace: true });
  }
}

const NAMESPACE_MODES = ['POD', 'CONTAINER', 'NODE', 'TARGET'] as const;

/** Namespace modes; TARGET only for a container's PID namespace, and then with a target id. */
export function checkNamespaceOptions(field: string, options: cri.NamespaceOption | null, level: 'pod' | 'container'): void {
  if (!options) return;
  const network = checkEnum(`${field}.network`, options.network, NAMESPACE_MODES);
  const ipc = checkEnum(`${field}.ipc`, options.ipc, NAMESPACE_MODES);
  const pid = checkEnum(`${field}.pid`, options.pid, NAMESPACE_MODES);
  if (network === 'TARGET') throw invalid(`${field}.network`, 'TARGET applies only to the PID namespace');
  if (ipc === 'TARGET') throw invalid(`${field}.ipc`, 'TARGET applies only to the PID namespace');
  checkText(`${field}.target_id`, options.target_id, { maxBytes: 128, singleLine: true });
  if (pid === 'TARGET' && level === 'pod') throw invalid(`${field}.pid`, 'TARGET applies only to containers');
  if (pid === 'TARGET' && !options.target_id) throw invalid(`${field}.target_id`, 'is required when pid is TARGET');
}

/** Capability names: known ones (with or without CAP_) or ALL. */
export function checkCapabilities(field: string, caps: cri.Capability | null): void {
  if (!caps) return;
  for (const list of ['add_capabilities', 'drop_capabilities', 'add_ambient_capabilities'] as const) {
    checkList(`${field}.${list}`, caps[list], 64, (name, f) => {
      checkText(f, name, { required: true, maxBytes: 64 });
      if (name.trim().toUpperCase() === 'ALL' && list !== 'add_ambient_capabilities') return;
      try {
        normalizeCapability(name);
      } catch {
        throw invalid(f, `${quote(name)} is not a Linux capability`);
      }
    });
  }
}

/** Masked and read-only paths: absolute, at most a few hundred. */
export function checkPathList(field: string, paths: readonly string[]): void {
  checkList(field, paths, 512, (p, f) => checkAbsolutePath(f, p, { required: true }));
}
