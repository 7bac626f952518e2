import { afterAll, describe, expect, it } from 'vitest';
import {
  cgroupDirs,
  cgroupPathOf,
  detectHierarchy,
  expandSlice,
  parentCgroupDirs,
  parentPathOf,
  systemdUnitName,
  type CgroupHierarchy,
} from '../../src/cgroups/paths.js';
import { cgroupsPathFor } from '../../src/oci/spec.js';
import { removeTree, SYSTEMD_POD_PATH, SYSTEMD_POD_SLICE, systemdScopePath, writeTree } from './cgroup-fixtures.js';

const V1: CgroupHierarchy = { version: 1, root: '/cg', unified: undefined };
const HYBRID: CgroupHierarchy = { version: 1, root: '/cg', unified: '/cg/unified' };
const V2: CgroupHierarchy = { version: 2, root: '/cg' };

describe('cgroup paths: where a spec’s cgroupsPath lives', () => {
  const trees: string[] = [];
  afterAll(() => Promise.all(trees.map(removeTree)));

  it('expands systemd slices the way systemd nests them', () => {
    expect(expandSlice('kubepods.slice')).toBe('/kubepods.slice');
    expect(expandSlice(SYSTEMD_POD_SLICE)).toBe(SYSTEMD_POD_PATH);
    expect(expandSlice('a-b-c.slice')).toBe('/a.slice/a-b.slice/a-b-c.slice');
    expect(expandSlice('-.slice')).toBe('/');
    expect(expandSlice('system.slice')).toBe('/system.slice');
  });

  it('refuses slice names systemd and runc refuse', () => {
    for (const bad of ['kubepods', '.slice', 'a--b.slice', '-a.slice', 'a-.slice', 'a/b.slice', '/kubepods/burstable']) {
      expect(() => expandSlice(bad), bad).toThrow(/invalid systemd slice name/);
    }
  });

  it('names runc’s scope <prefix>-<name>.scope, or keeps a slice name', () => {
    expect(systemdUnitName('tscri', 'abc')).toBe('tscri-abc.scope');
    expect(systemdUnitName('tscri', 'extra.slice')).toBe('extra.slice');
  });

  it('maps the systemd driver’s slice:prefix:name to the scope below the expanded slice, never to the string itself', () => {
    const specPath = cgroupsPathFor('systemd', SYSTEMD_POD_SLICE, 'abc');
    expect(specPath).toBe(`${SYSTEMD_POD_SLICE}:tscri:abc`);
    expect(cgroupPathOf('systemd', specPath)).toBe(systemdScopePath('abc'));
    // runc's default slice when the spec leaves it empty.
    expect(cgroupPathOf('systemd', ':tscri:abc')).toBe('/system.slice/tscri-abc.scope');
    for (const hierarchy of [V1, HYBRID, V2]) {
      const dirs = cgroupDirs(hierarchy, 'systemd', specPath);
      for (const dir of [dirs.controller('memory'), dirs.controller('cpuacct'), dirs.unified ?? '']) expect(dir).not.toContain(':');
    }
  });

  it('refuses a systemd cgroupsPath that is not slice:prefix:name', () => {
    expect(() => cgroupPathOf('systemd', '/tscri/abc')).toThrow(/not "slice:prefix:name"/);
    expect(() => cgroupPathOf('systemd', 'a.slice:b:c:d')).toThrow(/not "slice:prefix:name"/);
    expect(() => cgroupPathOf('systemd', 'tscri:tscri:abc')).toThrow(/invalid systemd slice name/);
    expect(() => cgroupPathOf('systemd', 'a.slice:tscri:x/y')).toThrow(/must not contain/);
  });

  it('keeps a cgroupfs path below the root, whatever it holds', () => {
    expect(cgroupPathOf('cgroupfs', '/kubepods/burstable/pod123/abc')).toBe('/kubepods/burstable/pod123/abc');
    expect(cgroupPathOf('cgroupfs', 'tscri/abc/')).toBe('/tscri/abc');
    expect(cgroupPathOf('cgroupfs', '/../../etc/abc')).toBe('/etc/abc');
    expect(() => cgroupPathOf('cgroupfs', '/a\0b')).toThrow(/NUL/);
  });

  it('puts v1 controllers in their own hierarchies, v2 in one directory, and PSI where a v2 hierarchy is', () => {
    const path = '/kubepods/pod1/abc';
    const v1 = cgroupDirs(V1, 'cgroupfs', path);
    expect(v1).toMatchObject({ version: 1, path, unified: undefined });
    expect(v1.controller('cpuacct')).toBe('/cg/cpuacct/kubepods/pod1/abc');
    expect(v1.controller('memory')).toBe('/cg/memory/kubepods/pod1/abc');
    expect(cgroupDirs(HYBRID, 'cgroupfs', path).unified).toBe('/cg/unified/kubepods/pod1/abc');
    const v2 = cgroupDirs(V2, 'systemd', `${SYSTEMD_POD_SLICE}:tscri:abc`);
    expect(v2.version).toBe(2);
    expect(v2.controller('memory')).toBe(`/cg${systemdScopePath('abc')}`);
    expect(v2.controller('blkio')).toBe(v2.controller('cpu'));
    expect(v2.unified).toBe(`/cg${systemdScopePath('abc')}`);
  });

  it('maps a pod’s cgroup parent: a path for cgroupfs, a slice for systemd', () => {
    expect(parentPathOf('cgroupfs', '/kubepods/burstable/pod123')).toBe('/kubepods/burstable/pod123');
    expect(parentPathOf('systemd', SYSTEMD_POD_SLICE)).toBe(SYSTEMD_POD_PATH);
    expect(parentPathOf('systemd', '')).toBe('/system.slice');
    expect(parentCgroupDirs(V2, 'systemd', SYSTEMD_POD_SLICE).unified).toBe(`/cg${SYSTEMD_POD_PATH}`);
    expect(parentCgroupDirs(V1, 'cgroupfs', '/kubepods/pod1').controller('pids')).toBe('/cg/pids/kubepods/pod1');
  });

  it('tells v2, hybrid v1 and plain v1 apart by what the root holds', async () => {
    const v2 = await writeTree({ 'cgroup.controllers': 'cpu memory\n' });
    const hybrid = await writeTree({ 'memory/tasks': '', 'unified/cgroup.controllers': '' });
    const v1 = await writeTree({ 'memory/tasks': '' });
    trees.push(v2, hybrid, v1);
    expect(detectHierarchy(v2)).toEqual({ version: 2, root: v2 });
    expect(detectHierarchy(hybrid)).toEqual({ version: 1, root: hybrid, unified: `${hybrid}/unified` });
    expect(detectHierarchy(v1)).toEqual({ version: 1, root: v1, unified: undefined });
  });
});
