import { describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { limitFiles, podLimits } from '../../src/cgroups/limits.js';
import { dirsAt } from '../../src/cgroups/paths.js';

const resources = (o: Partial<cri.LinuxContainerResources>): cri.LinuxContainerResources => ({
  cpu_period: '0', cpu_quota: '0', cpu_shares: '0', memory_limit_in_bytes: '0', oom_score_adj: '0', cpuset_cpus: '', cpuset_mems: '',
  hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: '0', ...o,
});

describe('a pod’s cgroup limits', () => {
  it('are the containers’ sum plus the overhead', () => {
    expect(podLimits(resources({ cpu_period: '100000', cpu_quota: '50000', cpu_shares: '512', memory_limit_in_bytes: '1000' }), resources({ cpu_quota: '10000', cpu_shares: '64', memory_limit_in_bytes: '24' }))).toEqual({
      cpuPeriod: 100000,
      cpuQuota: 60000,
      cpuShares: 576,
      memoryBytes: 1024,
    });
  });

  it('stay unlimited where the containers are, whatever the overhead', () => {
    expect(podLimits(resources({ cpu_quota: '-1' }), resources({ cpu_quota: '10000', memory_limit_in_bytes: '24' }))).toEqual({ cpuQuota: -1 });
  });

  it('go to the v1 controllers’ files, the period before the quota', () => {
    const dirs = dirsAt({ version: 1, root: '/cg', unified: undefined }, '/kubepods/pod1');
    expect(limitFiles(dirs, { cpuPeriod: 100000, cpuQuota: 50000, memoryBytes: 1024, cpusetCpus: '0-1' })).toEqual([
      ['/cg/cpu/kubepods/pod1/cpu.cfs_period_us', '100000'],
      ['/cg/cpu/kubepods/pod1/cpu.cfs_quota_us', '50000'],
      ['/cg/memory/kubepods/pod1/memory.limit_in_bytes', '1024'],
      ['/cg/cpuset/kubepods/pod1/cpuset.cpus', '0-1'],
    ]);
  });

  it('go to the v2 files, shares as weights and no quota as max', () => {
    const dirs = dirsAt({ version: 2, root: '/cg' }, '/kubepods.slice/pod1.slice');
    expect(limitFiles(dirs, { cpuPeriod: 100000, cpuQuota: -1, cpuShares: 1024, memoryBytes: 2048 })).toEqual([
      ['/cg/kubepods.slice/pod1.slice/cpu.max', 'max 100000'],
      ['/cg/kubepods.slice/pod1.slice/cpu.weight', '39'],
      ['/cg/kubepods.slice/pod1.slice/memory.max', '2048'],
    ]);
  });
});
