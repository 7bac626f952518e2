import { describe, expect, it } from 'vitest';
import { applyCdiEdits } from '../../src/cdi/apply.js';
import { emptyEdits, type ResolvedEdits } from '../../src/cdi/types.js';
import { baseSpec } from '../../src/oci/spec.js';
import type { OciSpec } from '../../src/oci/spec-types.js';

function containerSpec(): OciSpec {
  const spec = baseSpec('/rootfs');
  spec.process.env = ['PATH=/bin', 'GPU=host'];
  spec.process.user = { uid: 1000, gid: 1000, additionalGids: [5] };
  spec.mounts.push({ destination: '/data/deep/er', type: 'bind', source: '/srv/a', options: ['rbind'] });
  spec.linux.devices = [{ path: '/dev/gpu0', type: 'c', major: 9, minor: 9 }];
  return spec;
}

const edits = (overrides: Partial<ResolvedEdits>): ResolvedEdits => ({ ...emptyEdits(), ...overrides });

describe('applying CDI edits to an OCI spec', () => {
  it('replaces a variable in place and appends new ones, the last edit winning', () => {
    const spec = containerSpec();
    applyCdiEdits(spec, edits({ env: ['GPU=0', 'NEW=1', 'GPU=1'] }));
    expect(spec.process.env).toEqual(['PATH=/bin', 'GPU=1', 'NEW=1']);
  });

  it('adds device nodes owned by the container user, replacing one at the same path, with cgroup rules for b and c only', () => {
    const spec = containerSpec();
    applyCdiEdits(
      spec,
      edits({
        deviceNodes: [
          { path: '/dev/gpu0', hostPath: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666, permissions: 'rw' },
          { path: '/dev/disk', hostPath: '/dev/disk', type: 'b', major: 8, minor: 0, uid: 0, gid: 6 },
          { path: '/dev/fifo', hostPath: '/dev/fifo', type: 'p', major: 0, minor: 0 },
          { path: '/dev/quiet', hostPath: '/dev/quiet', type: 'c', major: 10, minor: 1, permissions: 'none' },
        ],
      }),
    );
    expect(spec.linux.devices).toEqual([
      { path: '/dev/gpu0', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 1000, gid: 1000 },
      { path: '/dev/disk', type: 'b', major: 8, minor: 0, uid: 0, gid: 6 },
      { path: '/dev/fifo', type: 'p', major: 0, minor: 0, uid: 1000, gid: 1000 },
      { path: '/dev/quiet', type: 'c', major: 10, minor: 1, uid: 1000, gid: 1000 },
    ]);
    expect(spec.linux.resources!.devices).toEqual([
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
      { allow: true, type: 'b', major: 8, minor: 0, access: 'rwm' },
    ]);
  });

  it('replaces a mount at the same destination and keeps parents before children', () => {
    const spec = containerSpec();
    applyCdiEdits(
      spec,
      edits({
        mounts: [
          { hostPath: '/srv/b', containerPath: '/data/deep/er', options: ['ro', 'rbind'] },
          { hostPath: '/srv/c', containerPath: '/data', type: 'bind', options: ['rbind'] },
        ],
      }),
    );
    const data = spec.mounts.filter((m) => m.destination.startsWith('/data'));
    expect(data).toEqual([
      { destination: '/data', source: '/srv/c', type: 'bind', options: ['rbind'] },
      { destination: '/data/deep/er', source: '/srv/b', options: ['ro', 'rbind'] },
    ]);
    const depths = spec.mounts.map((m) => m.destination.split('/').filter(Boolean).length);
    expect(depths).toEqual([...depths].sort((a, b) => a - b));
  });

  it('appends hooks to their lists, Intel RDT and additional groups without 0 or repeats', () => {
    const spec = containerSpec();
    applyCdiEdits(
      spec,
      edits({
        hooks: [
          { hookName: 'createRuntime', path: '/bin/a', args: ['a', '1'], env: ['X=1'], timeout: 3 },
          { hookName: 'poststop', path: '/bin/b' },
          { hookName: 'createRuntime', path: '/bin/c' },
        ],
        intelRdt: { closID: 'gpu', l3CacheSchema: 'L3:0=f' },
        additionalGids: [0, 5, 44, 44],
      }),
    );
    expect(spec.hooks).toEqual({
      createRuntime: [{ path: '/bin/a', args: ['a', '1'], env: ['X=1'], timeout: 3 }, { path: '/bin/c' }],
      poststop: [{ path: '/bin/b' }],
    });
    expect(spec.linux.intelRdt).toEqual({ closID: 'gpu', l3CacheSchema: 'L3:0=f' });
    expect(spec.process.user.additionalGids).toEqual([5, 44]);
  });

  it('changes nothing for empty edits', () => {
    const spec = containerSpec();
    const before = structuredClone(spec);
    applyCdiEdits(spec, emptyEdits());
    expect(spec).toEqual(before);
  });
});
