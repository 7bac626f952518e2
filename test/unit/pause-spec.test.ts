import { describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { clampOomScoreAdj, cgroupsPathFor } from '../../src/oci/spec.js';
import { pauseSpec, type PauseSpecInput } from '../../src/sandbox/pause-spec.js';

const image = {
  ref: 'tscri/pause:builtin',
  rootfs: '/var/lib/tscri/pause/rootfs',
  args: ['/pause', '-P'],
  env: [],
  cwd: '/',
  user: { uid: 65535, gid: 65535 },
};

function input(namespaces: Partial<cri.NamespaceOption> = {}, extra: Partial<PauseSpecInput> = {}): PauseSpecInput {
  return {
    sandboxId: 'sb1',
    config: {
      metadata: { name: 'web', namespace: 'default', uid: 'u', attempt: 0 },
      hostname: 'web',
      log_directory: '/var/log/pods/x',
      dns_config: null,
      port_mappings: [],
      labels: {},
      annotations: {},
      linux: { cgroup_parent: '/kubepods', security_context: null, sysctls: { 'net.ipv4.ip_forward': '1' }, overhead: null, resources: null },
      windows: null,
    },
    namespaces: { network: 'POD', pid: 'POD', ipc: 'POD', target_id: '', userns_options: null, ...namespaces },
    image,
    hostname: 'web',
    netnsPath: '/run/netns/cni-1',
    shmPath: '/run/tscri/sandboxes/sb1/shm',
    cgroupsPath: '/kubepods/sb1',
    ownOomScoreAdj: 0,
    seccomp: undefined,
    ...extra,
  };
}

function namespaceTypes(spec: ReturnType<typeof pauseSpec>): Record<string, string | undefined> {
  return Object.fromEntries(spec.linux.namespaces.map((ns) => [ns.type, ns.path]));
}

describe('the pause container spec', () => {
  it('joins the pod netns, owns new ipc/uts/pid/mount namespaces, and sets the hostname', () => {
    const spec = pauseSpec(input());
    expect(namespaceTypes(spec)).toEqual({ network: '/run/netns/cni-1', ipc: undefined, uts: undefined, pid: undefined, mount: undefined });
    expect(spec.hostname).toBe('web');
  });

  it('uses the host network and uts for host-network pods, and the host pid/ipc when asked', () => {
    const spec = pauseSpec(input({ network: 'NODE', pid: 'NODE', ipc: 'NODE' }, { netnsPath: undefined, shmPath: undefined }));
    expect(Object.keys(namespaceTypes(spec)).sort()).toEqual(['mount']);
    expect(spec.hostname).toBeUndefined();
    expect(spec.mounts.find((m) => m.destination === '/dev/shm')!.source).toBe('/dev/shm');
  });

  it('runs the image process unprivileged on a read-only root with the pod shm', () => {
    const spec = pauseSpec(input());
    expect(spec.root).toEqual({ path: image.rootfs, readonly: true });
    expect(spec.process.args).toEqual(['/pause', '-P']);
    expect(spec.process.user).toEqual({ uid: 65535, gid: 65535 });
    expect(spec.process.capabilities).toEqual({ bounding: [], effective: [], permitted: [] });
    expect(spec.process.noNewPrivileges).toBe(true);
    expect(spec.mounts.find((m) => m.destination === '/dev/shm')).toMatchObject({ type: 'bind', source: '/run/tscri/sandboxes/sb1/shm' });
  });

  it('carries the cgroup path, sysctls and the sandbox annotations', () => {
    const spec = pauseSpec(input());
    expect(spec.linux.cgroupsPath).toBe('/kubepods/sb1');
    expect(spec.linux.sysctl).toEqual({ 'net.ipv4.ip_forward': '1' });
    expect(spec.annotations).toMatchObject({
      'io.kubernetes.cri.container-type': 'sandbox',
      'io.kubernetes.cri.sandbox-id': 'sb1',
      'io.kubernetes.cri.sandbox-name': 'web',
    });
  });

  it('never asks for an oom_score_adj below the daemon’s own', () => {
    expect(pauseSpec(input()).process.oomScoreAdj).toBe(0);
    expect(pauseSpec(input({}, { ownOomScoreAdj: -1000 })).process.oomScoreAdj).toBe(-998);
    expect(clampOomScoreAdj(-999, -500)).toBe(-500);
    expect(clampOomScoreAdj(1200, 0)).toBe(1000);
  });

  it('places cgroups below the parent (cgroupfs) or as slice:prefix:name (systemd)', () => {
    expect(cgroupsPathFor('cgroupfs', '/kubepods/besteffort/pod1', 'abc')).toBe('/kubepods/besteffort/pod1/abc');
    expect(cgroupsPathFor('cgroupfs', '', 'abc')).toBe('/abc');
    expect(cgroupsPathFor('systemd', 'kubepods-besteffort-pod1.slice', 'abc')).toBe('kubepods-besteffort-pod1.slice:tscri:abc');
  });
});
