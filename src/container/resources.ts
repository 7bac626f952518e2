import type * as cri from '../api/cri.js';
import type { OciResources } from '../oci/spec-types.js';

/**
 * CRI resource limits as OCI cgroup settings. Zero means "not set" in the CRI messages, so
 * only set values are carried over; runc leaves the rest at the cgroup's defaults.
 */
export function ociResources(resources: cri.LinuxContainerResources | null): OciResources {
  const out: OciResources = {};
  if (!resources) return out;
  const cpu: NonNullable<OciResources['cpu']> = {};
  const shares = Number(resources.cpu_shares);
  const quota = Number(resources.cpu_quota);
  const period = Number(resources.cpu_period);
  if (shares > 0) cpu.shares = shares;
  if (quota !== 0) cpu.quota = quota;
  if (period > 0) cpu.period = period;
  if (resources.cpuset_cpus) cpu.cpus = resources.cpuset_cpus;
  if (resources.cpuset_mems) cpu.mems = resources.cpuset_mems;
  if (Object.keys(cpu).length > 0) out.cpu = cpu;

  const limit = Number(resources.memory_limit_in_bytes);
  const swap = Number(resources.memory_swap_limit_in_bytes);
  if (limit > 0) out.memory = { limit, ...(swap > 0 ? { swap } : {}) };

  if (resources.hugepage_limits.length > 0) {
    out.hugepageLimits = resources.hugepage_limits.map((h) => ({ pageSize: h.page_size, limit: Number(h.limit) }));
  }
  if (Object.keys(resources.unified).length > 0) out.unified = { ...resources.unified };
  return out;
}
