/**
 * Building an application container's OCI spec (src/container/spec.ts) from resolved inputs:
 * process (args, env with TERM, user, capabilities), mounts, devices, resources, the pod's
 * namespaces joined, CDI edits and confinement.
 */
import { describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { emptyEdits } from '../../src/cdi/types.js';
import { containerCgroupsPath, containerSpec, type ContainerSpecInput, type PodContext } from '../../src/container/spec.js';
import type { ImageConfig } from '../../src/image/registry/manifest.js';
import { TERMINAL_ENV } from '../../src/oci/terminal-env.js';

const POD: PodContext = {
  sandboxId: 'pod1',
  config: { metadata: { name: 'web-0', namespace: 'ns', uid: 'uid', attempt: 0 } } as cri.PodSandboxConfig,
  namespaces: { network: 'POD', pid: 'POD', ipc: 'POD' } as cri.NamespaceOption,
  netnsPath: '/run/netns/cni-1',
  pausePid: 4242,
  shmPath: '/run/tscri/sandboxes/pod1/shm',
  files: { hostname: '/pod/hostname', hosts: '/pod/hosts', resolvConf: '/pod/resolv.conf' },
  hostname: 'web-0',
  cgroupParent: '/kubepods/pod1',
};

const IMAGE: ImageConfig = { config: { Entrypoint: ['/entry'], Cmd: ['serve'], Env: ['PATH=/usr/bin', 'LANG=C'], WorkingDir: '/srv' } } as unknown as ImageConfig;

function config(overrides: Partial<cri.ContainerConfig> = {}, security: Partial<cri.LinuxContainerSecurityContext> | null = null): cri.ContainerConfig {
  return {
    metadata: { name: 'app', attempt: 0 },
    command: [],
    args: [],
    working_dir: '',
    envs: [{ key: 'LANG', value: 'en_US.UTF-8' }],
    mounts: [],
    devices: [],
    labels: {},
    annotations: { team: 'a' },
    tty: false,
    linux: {
      resources: { memory_limit_in_bytes: '268435456', cpu_quota: '50000', cpu_period: '100000', oom_score_adj: '-1000', hugepage_limits: [], unified: {} },
      security_context: security && { masked_paths: [], readonly_paths: [], ...security },
    },
    ...overrides,
  } as unknown as cri.ContainerConfig;
}

function input(overrides: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  return {
    containerId: 'ctr1',
    config: config(),
    pod: POD,
    image: { ref: 'registry.test/app:1', config: IMAGE },
    rootfs: '/var/lib/tscri/containers/ctr1/rootfs',
    user: { uid: 1000, gid: 1000, additionalGids: [10] },
    capabilities: ['CAP_CHOWN', 'CAP_KILL'],
    seccomp: undefined,
    devices: { devices: [], rules: [] },
    mounts: [],
    ownOomScoreAdj: -999,
    cgroupDriver: 'cgroupfs',
    ...overrides,
  };
}

const namespaceOf = (spec: ReturnType<typeof containerSpec>, type: string) => spec.linux.namespaces.find((n) => n.type === type);

describe('container spec', () => {
  it('runs the image entrypoint and cmd, with the image env under the container’s, as the resolved user', () => {
    const spec = containerSpec(input());
    expect(spec.process.args).toEqual(['/entry', 'serve']);
    expect(spec.process.env).toEqual(['HOSTNAME=web-0', 'PATH=/usr/bin', 'LANG=en_US.UTF-8']);
    expect(spec.process.cwd).toBe('/srv');
    expect(spec.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10] });
    expect(spec.process.capabilities).toEqual({ bounding: ['CAP_CHOWN', 'CAP_KILL'], effective: ['CAP_CHOWN', 'CAP_KILL'], permitted: ['CAP_CHOWN', 'CAP_KILL'] });
    // The daemon's own oom_score_adj is the floor.
    expect(spec.process.oomScoreAdj).toBe(-999);
    expect(spec.root.path).toBe('/var/lib/tscri/containers/ctr1/rootfs');
  });

  it('gives a terminal TERM=xterm, which the container’s env may override', () => {
    expect(containerSpec(input({ config: config({ tty: true }) })).process.env).toContain(TERMINAL_ENV);
    expect(containerSpec(input({ config: config({ tty: false }) })).process.env.some((e) => e.startsWith('TERM='))).toBe(false);
    const own = containerSpec(input({ config: config({ tty: true, envs: [{ key: 'TERM', value: 'dumb' }] as unknown as cri.KeyValue[] }) }));
    expect(own.process.env).toContain('TERM=dumb');
    expect(own.process.terminal).toBe(true);
  });

  it('joins the pod’s network, IPC, UTS and PID namespaces; TARGET joins the target’s', () => {
    const spec = containerSpec(input());
    expect(namespaceOf(spec, 'network')?.path).toBe('/run/netns/cni-1');
    expect(namespaceOf(spec, 'ipc')?.path).toBe('/proc/4242/ns/ipc');
    expect(namespaceOf(spec, 'uts')?.path).toBe('/proc/4242/ns/uts');
    expect(namespaceOf(spec, 'pid')?.path).toBe('/proc/4242/ns/pid');

    const own = containerSpec(input({ config: config({}, { namespace_options: { pid: 'CONTAINER' } } as cri.LinuxContainerSecurityContext) }));
    expect(namespaceOf(own, 'pid')?.path).toBeUndefined();
    const target = containerSpec(input({ targetPid: 777, config: config({}, { namespace_options: { pid: 'TARGET', target_id: 'x' } } as cri.LinuxContainerSecurityContext) }));
    expect(namespaceOf(target, 'pid')?.path).toBe('/proc/777/ns/pid');
    expect(() => containerSpec(input({ config: config({}, { namespace_options: { pid: 'TARGET', target_id: 'x' } } as cri.LinuxContainerSecurityContext) }))).toThrow(/TARGET/);
  });

  it('uses the node’s namespaces for a host-network, host-IPC pod', () => {
    const spec = containerSpec(input({ pod: { ...POD, namespaces: { network: 'NODE', pid: 'NODE', ipc: 'NODE' } as cri.NamespaceOption } }));
    for (const type of ['network', 'uts', 'ipc', 'pid']) expect(namespaceOf(spec, type), type).toBeUndefined();
  });

  it('mounts the pod’s shm, hostname, hosts and resolv.conf unless the container brings its own, parents before children', () => {
    const own = { mount: { destination: '/etc/hosts', type: 'bind', source: '/mine/hosts', options: ['rbind', 'ro'] } };
    const nested = { mount: { destination: '/data/a/b', type: 'bind', source: '/host/b', options: ['rbind'] } };
    const parent = { mount: { destination: '/data', type: 'bind', source: '/host/data', options: ['rbind'] } };
    const spec = containerSpec(input({ mounts: [own, nested, parent] as ContainerSpecInput['mounts'] }));
    const byDestination = new Map(spec.mounts.map((m) => [m.destination, m]));
    expect(byDestination.get('/dev/shm')?.source).toBe(POD.shmPath);
    expect(byDestination.get('/etc/hostname')?.source).toBe('/pod/hostname');
    expect(byDestination.get('/etc/resolv.conf')?.source).toBe('/pod/resolv.conf');
    expect(byDestination.get('/etc/hosts')?.source).toBe('/mine/hosts');
    const destinations = spec.mounts.map((m) => m.destination);
    expect(destinations.indexOf('/data')).toBeLessThan(destinations.indexOf('/data/a/b'));
  });

  it('allows only the requested devices, and sets limits and the cgroup below the pod’s', () => {
    const devices = {
      devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }],
      rules: [{ allow: true, type: 'c', major: 10, minor: 229, access: 'rwm' }],
    } as ContainerSpecInput['devices'];
    const spec = containerSpec(input({ devices }));
    expect(spec.linux.devices).toEqual(devices.devices);
    expect(spec.linux.resources?.devices).toEqual([{ allow: false, access: 'rwm' }, ...devices.rules]);
    expect(spec.linux.resources?.memory?.limit).toBe(268435456);
    expect(spec.linux.resources?.cpu).toMatchObject({ quota: 50000, period: 100000 });
    expect(spec.linux.cgroupsPath).toBe(containerCgroupsPath('cgroupfs', '/kubepods/pod1', 'ctr1'));
    expect(spec.linux.cgroupsPath).toBe('/kubepods/pod1/ctr1');
  });

  it('adds ambient capabilities, read-only rootfs, no_new_privs and masked paths as asked; a privileged container has none masked', () => {
    const security = { capabilities: { add_ambient_capabilities: ['net_bind_service'] }, readonly_rootfs: true, no_new_privs: true, masked_paths: ['/proc/kcore'], readonly_paths: ['/proc/sys'] };
    const spec = containerSpec(input({ config: config({}, security as unknown as cri.LinuxContainerSecurityContext) }));
    expect(spec.process.capabilities?.ambient).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(spec.root.readonly).toBe(true);
    expect(spec.process.noNewPrivileges).toBe(true);
    expect(spec.linux.maskedPaths).toEqual(['/proc/kcore']);
    expect(spec.linux.readonlyPaths).toEqual(['/proc/sys']);
    const privileged = containerSpec(input({ config: config({}, { privileged: true } as cri.LinuxContainerSecurityContext) }));
    expect(privileged.linux.maskedPaths).toEqual([]);
    expect(privileged.linux.readonlyPaths).toEqual([]);
  });

  it('applies CDI edits last, so they win', () => {
    const cdi = { ...emptyEdits(), env: ['LANG=cdi'], deviceNodes: [{ path: '/dev/vendor0', type: 'c', major: 195, minor: 0 }] } as unknown as ContainerSpecInput['cdi'];
    const spec = containerSpec(input({ cdi }));
    expect(spec.process.env).toContain('LANG=cdi');
    expect(spec.process.env).not.toContain('LANG=en_US.UTF-8');
    expect(spec.linux.devices?.map((d) => d.path)).toContain('/dev/vendor0');
  });

  it('applies the resolved AppArmor profile and SELinux labels', () => {
    const spec = containerSpec(input({ confinement: { apparmorProfile: 'tscri-default', selinux: { processLabel: 'system_u:system_r:container_t:s0:c1,c2', mountLabel: 'system_u:object_r:container_file_t:s0:c1,c2' } } }));
    expect(spec.process.apparmorProfile).toBe('tscri-default');
    expect(spec.process.selinuxLabel).toBe('system_u:system_r:container_t:s0:c1,c2');
    expect(spec.linux.mountLabel).toBe('system_u:object_r:container_file_t:s0:c1,c2');
    const unconfined = containerSpec(input());
    expect(unconfined.process.apparmorProfile).toBeUndefined();
  });

  it('annotates the container with its pod and image', () => {
    const spec = containerSpec(input());
    expect(spec.annotations).toMatchObject({
      team: 'a',
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.container-name': 'app',
      'io.kubernetes.cri.sandbox-id': 'pod1',
      'io.kubernetes.cri.sandbox-name': 'web-0',
      'io.kubernetes.cri.image-name': 'registry.test/app:1',
    });
  });
});
