import { describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { fitOutput, mergeResources } from '../../src/container/service.js';

describe('ExecSync output in one reply', () => {
  const bytes = (n: number, fill: number) => Buffer.alloc(n, fill);

  it('leaves output that fits alone', () => {
    const [out, err] = fitOutput(bytes(10, 1), bytes(5, 2), 100);
    expect([out.length, err.length]).toEqual([10, 5]);
  });

  it('halves two full streams and gives what one leaves unused to the other', () => {
    expect(fitOutput(bytes(80, 1), bytes(80, 2), 100).map((b) => b.length)).toEqual([50, 50]);
    expect(fitOutput(bytes(10, 1), bytes(200, 2), 100).map((b) => b.length)).toEqual([10, 90]);
    expect(fitOutput(bytes(200, 1), bytes(10, 2), 100).map((b) => b.length)).toEqual([90, 10]);
  });

  it('keeps the start of each stream', () => {
    const [out] = fitOutput(Buffer.from('abcdef'), Buffer.alloc(0), 3);
    expect(out.toString()).toBe('abc');
  });
});

describe('merging a resource update into the current limits', () => {
  const resources = (o: Partial<cri.LinuxContainerResources>): cri.LinuxContainerResources => ({
    cpu_period: '0', cpu_quota: '0', cpu_shares: '0', memory_limit_in_bytes: '0', oom_score_adj: '0', cpuset_cpus: '', cpuset_mems: '',
    hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: '0', ...o,
  });

  it('keeps the memory limit when only CPU changes', () => {
    const merged = mergeResources(resources({ memory_limit_in_bytes: '67108864', cpu_quota: '50000' }), resources({ cpu_quota: '20000', cpu_period: '100000' }));
    expect(merged).toMatchObject({ memory_limit_in_bytes: '67108864', cpu_quota: '20000', cpu_period: '100000' });
  });

  it('takes everything from an update when there was nothing before', () => {
    expect(mergeResources(null, resources({ cpu_shares: '512' })).cpu_shares).toBe('512');
  });
});
