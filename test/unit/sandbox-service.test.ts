/**
 * The sandbox service over fakes: the OCI runtime, the CNI layer and the host (netns, shm,
 * cgroups) are in-memory, records live in temp dirs. One journal shared by the fakes shows
 * the order of every side effect and undo.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { parseConfig } from '../../src/config/config.js';
import { ContainerEvents } from '../../src/container/events.js';
import type { SandboxImage } from '../../src/image/builtin-pause.js';
import { DaemonLayout } from '../../src/layout.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { AppArmor } from '../../src/oci/apparmor.js';
import { RuntimeHandlers } from '../../src/oci/handlers.js';
import type { Runc } from '../../src/oci/runc.js';
import { Selinux } from '../../src/oci/selinux.js';
import type { SandboxHost } from '../../src/sandbox/host.js';
import { SandboxService } from '../../src/sandbox/service.js';
import { FakeNetworkManager } from './fakes/network.js';
import { FakeOciRuntime } from './fakes/oci-runtime.js';

const log = silentLogger();

function podConfig(name = 'web', overrides: Partial<cri.PodSandboxConfig> = {}): cri.PodSandboxConfig {
  return {
    metadata: { name, namespace: 'default', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: '',
    dns_config: null,
    port_mappings: [],
    labels: { app: name },
    annotations: {},
    linux: null,
    windows: null,
    ...overrides,
  };
}

const hostNetwork: Partial<cri.PodSandboxConfig> = {
  linux: {
    cgroup_parent: '',
    security_context: {
      namespace_options: { network: 'NODE', pid: 'POD', ipc: 'NODE', target_id: '', userns_options: null },
      selinux_options: null,
      run_as_user: null,
      run_as_group: null,
      readonly_rootfs: false,
      supplemental_groups: [],
      supplemental_groups_policy: 'Merge',
      privileged: false,
      seccomp_profile_path: '',
      seccomp: null,
      apparmor: null,
    },
    sysctls: {},
    overhead: null,
    resources: null,
  } as unknown as cri.LinuxPodSandboxConfig,
};

/** Netns, shm and cgroups in memory, each call in the journal; a step fails when told. */
class FakeHost implements SandboxHost {
  readonly netns = new Set<string>();
  readonly shm = new Set<string>();
  fail = new Map<string, Error>();
  private next = 0;

  constructor(private readonly journal: string[]) {}

  newNetnsPath(): string {
    return `/run/netns/cni-00000000-0000-0000-0000-${String(++this.next).padStart(12, '0')}`;
  }

  async createNetns(netnsPath: string): Promise<void> {
    this.step('createNetns');
    this.netns.add(netnsPath);
  }

  async bringUpLoopback(): Promise<void> {
    this.step('bringUpLoopback');
  }

  async removeNetns(netnsPath: string): Promise<void> {
    this.step('removeNetns');
    this.netns.delete(netnsPath);
  }

  async mountShm(shmPath: string): Promise<void> {
    this.step('mountShm');
    this.shm.add(shmPath);
  }

  async unmountShm(shmPath: string): Promise<void> {
    this.step('unmountShm');
    this.shm.delete(shmPath);
  }

  async limitPod(_driver: string, parent: string): Promise<string> {
    this.step('limitPod');
    return parent;
  }

  private step(name: string): void {
    this.journal.push(`host.${name}`);
    const error = this.fail.get(name);
    if (error) {
      this.fail.delete(name);
      throw error;
    }
  }
}

interface World {
  dir: string;
  layout: DaemonLayout;
  journal: string[];
  runtime: FakeOciRuntime;
  network: FakeNetworkManager;
  host: FakeHost;
  events: ContainerEvents;
  selinux: Selinux;
  service: SandboxService;
}

async function world(dir: string, options: { sandboxImage?: () => Promise<SandboxImage> } = {}): Promise<World> {
  const journal: string[] = [];
  const layout = new DaemonLayout(path.join(dir, 'root'), path.join(dir, 'state'));
  const runtime = new FakeOciRuntime({ journal });
  const network = new FakeNetworkManager({ journal });
  const host = new FakeHost(journal);
  const events = new ContainerEvents();
  const selinux = new Selinux(undefined);
  const features = { recursiveReadOnlyMounts: false, idmappedMounts: false, userNamespaces: false, runtimeVersion: 'fake', missing: { userNamespaces: 'fake runtime' } };
  const handlers = new RuntimeHandlers('runc', [{ name: 'runc', cli: {} as Runc, version: 'fake', features }]);
  const service = new SandboxService({
    config: parseConfig(''),
    layout,
    events,
    handlers,
    network,
    runtime,
    sandboxImage: options.sandboxImage ?? (async () => pauseImage(dir)),
    ownOomScoreAdj: 0,
    lsm: { apparmor: new AppArmor(undefined), selinux },
    log,
    host,
  });
  return { dir, layout, journal, runtime, network, host, events, selinux, service };
}

function pauseImage(dir: string): SandboxImage {
  return { ref: 'test/pause:1', rootfs: path.join(dir, 'pause'), args: ['/pause'], env: [], cwd: '/', user: { uid: 65535, gid: 65535 } };
}

async function recordIds(layout: DaemonLayout): Promise<string[]> {
  return fs.readdir(layout.sandboxRecords).catch(() => []);
}

describe('SandboxService over fakes', () => {
  let dir: string;
  let w: World;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-sandbox-'));
    w = await world(dir);
  });

  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('RunPodSandbox makes the netns before CNI ADD, and the files, netns and shm before the pause container', async () => {
    const id = await w.service.run(podConfig(), '', log);
    const sandbox = w.service.get(id);
    expect(sandbox.record.phase).toBe('ready');
    expect(sandbox.record.network?.ip).toBe('10.88.0.2');
    expect(sandbox.record.pausePid).toBe(1000);
    expect(sandbox.record.hostname).toBe('web');
    expect(sandbox.record.shmPath).toBe(w.layout.sandboxShm(id));
    expect(w.journal.indexOf('host.createNetns')).toBeLessThan(w.journal.indexOf('network.setUp ' + id));
    expect(w.journal.indexOf('host.mountShm')).toBeLessThan(w.journal.indexOf('runtime.run ' + id));
    expect(w.journal.indexOf('host.createNetns')).toBeLessThan(w.journal.indexOf('runtime.run ' + id));
    expect(w.journal).toContain('host.bringUpLoopback');
    // The record on disk says ready, with what was made, and the pod's files are beside it.
    const onDisk = JSON.parse(await fs.readFile(path.join(w.layout.sandboxRecords, id, 'sandbox.json'), 'utf8'));
    expect(onDisk).toMatchObject({ phase: 'ready', hostname: 'web', pausePid: 1000, sandboxImage: 'test/pause:1', network: { ip: '10.88.0.2' } });
    expect(await fs.readFile(path.join(w.layout.sandboxRecords, id, 'hostname'), 'utf8')).toBe('web\n');
    expect(Object.keys(onDisk.timings)).toEqual(expect.arrayContaining(['sandboxImage', 'record', 'netns', 'files', 'shm', 'cni', 'pauseRun']));
    expect(w.service.list(null)).toEqual([expect.objectContaining({ id, state: 'SANDBOX_READY' })]);
  });

  it('sends CREATED and STARTED events for a new pod', async () => {
    const seen: string[] = [];
    w.events.subscribe((event) => seen.push(String(event.container_event_type)));
    await w.service.run(podConfig(), '', log);
    expect(seen).toEqual(['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT']);
  });

  it('a host-network pod gets no netns, no CNI and no shm', async () => {
    const id = await w.service.run(podConfig('host', hostNetwork), '', log);
    expect(w.service.get(id).record).toMatchObject({ phase: 'ready', netnsPath: undefined, shmPath: undefined });
    expect(w.network.calls).toEqual([]);
    expect(w.journal.filter((c) => c.startsWith('host.'))).toEqual([]);
  });

  it('refuses a second pod with the same name while the first exists, and frees it on removal', async () => {
    const id = await w.service.run(podConfig(), '', log);
    await expect(w.service.run(podConfig(), '', log)).rejects.toThrow(/is reserved for/);
    await w.service.remove(id, log);
    await expect(w.service.run(podConfig(), '', log)).resolves.toMatch(/^[0-9a-f]{64}$/);
  });

  describe('a failure at each step leaves nothing behind', () => {
    const everythingUndone = async (): Promise<void> => {
      expect(w.service.listSandboxes()).toEqual([]);
      expect(await recordIds(w.layout)).toEqual([]);
      expect(w.host.netns.size).toBe(0);
      expect(w.host.shm.size).toBe(0);
      expect(w.network.attached.size).toBe(0);
      expect(w.runtime.containers.size).toBe(0);
      // The name is free again.
      await expect(w.service.run(podConfig(), '', log)).resolves.toMatch(/^[0-9a-f]{64}$/);
    };

    it('the netns: shm is unmounted and the record removed; no CNI and no pause', async () => {
      w.host.fail.set('createNetns', new Error('ip netns add failed'));
      await expect(w.service.run(podConfig(), '', log)).rejects.toThrow('ip netns add failed');
      expect(w.network.calls).toEqual([]);
      expect(w.runtime.methods()).toEqual([]);
      expect(w.journal.slice(-2)).toEqual(['host.unmountShm', 'host.removeNetns']);
      await everythingUndone();
    });

    it('CNI ADD: DEL runs, then shm and netns go, and the pause container is deleted first', async () => {
      w.network.failOn('setUp', new Error('plugin bridge failed'));
      await expect(w.service.run(podConfig(), '', log)).rejects.toThrow('plugin bridge failed');
      const undos = w.journal.slice(w.journal.lastIndexOf('runtime.run ' + w.runtime.calls.find((c) => c.method === 'run')?.id) + 1);
      expect(undos.map((c) => c.split(' ')[0])).toEqual(['runtime.delete', 'network.tearDown', 'host.unmountShm', 'host.removeNetns']);
      await everythingUndone();
    });

    it('the pause container: deleted, then DEL, shm and netns, in that order whatever finished first', async () => {
      w.runtime.failOn('run', new Error('runc create failed'));
      await expect(w.service.run(podConfig(), '', log)).rejects.toThrow('runc create failed');
      const tail = w.journal.slice(-4).map((c) => c.split(' ')[0]);
      expect(tail).toEqual(['runtime.delete', 'network.tearDown', 'host.unmountShm', 'host.removeNetns']);
      await everythingUndone();
    });

    it('shm: no pause container is tried; the netns and its attachment go', async () => {
      w.host.fail.set('mountShm', new Error('mount failed'));
      await expect(w.service.run(podConfig(), '', log)).rejects.toThrow('mount failed');
      expect(w.runtime.methods()).toEqual([]);
      await everythingUndone();
    });

    it('an undo that fails keeps the record, NOTREADY, for Stop and Remove to finish', async () => {
      w.runtime.failOn('run', new Error('runc create failed'));
      w.network.failOn('tearDown', new Error('DEL failed'));
      await expect(w.service.run(podConfig(), '', log)).rejects.toThrow('runc create failed');
      const [left] = w.service.listSandboxes();
      expect(left?.record.phase).toBe('creating');
      expect(w.service.list(null)).toEqual([expect.objectContaining({ state: 'SANDBOX_NOTREADY' })]);
      expect(await recordIds(w.layout)).toEqual([left!.record.id]);
      await w.service.remove(left!.record.id, log);
      await everythingUndone();
    });
  });

  it('a failing sandbox image leaves no record, makes nothing and frees the name', async () => {
    let fail = true;
    const failing = await world(dir, { sandboxImage: async () => (fail ? Promise.reject(new Error('no pause image')) : pauseImage(dir)) });
    await expect(failing.service.run(podConfig(), '', log)).rejects.toThrow('no pause image');
    expect(failing.service.listSandboxes()).toEqual([]);
    expect(await recordIds(failing.layout)).toEqual([]);
    expect(failing.journal).toEqual([]);
    fail = false;
    await expect(failing.service.run(podConfig(), '', log)).resolves.toMatch(/^[0-9a-f]{64}$/);
  });

  it('StopPodSandbox kills pause, detaches, unmounts and removes the netns; a second Stop does nothing', async () => {
    const id = await w.service.run(podConfig(), '', log);
    const seen: string[] = [];
    w.events.subscribe((event) => seen.push(String(event.container_event_type)));
    w.journal.length = 0;
    await w.service.stop(id.slice(0, 13), log);
    expect(w.service.get(id).record.phase).toBe('stopped');
    expect(w.service.get(id).pauseExit?.exitCode).toBe(137);
    expect(w.journal).toEqual(expect.arrayContaining([`runtime.kill ${id}`, `runtime.release ${id}`, `network.tearDown ${id}`, 'host.unmountShm', 'host.removeNetns']));
    expect(w.journal.indexOf(`network.tearDown ${id}`)).toBeLessThan(w.journal.indexOf('host.removeNetns'));
    expect(w.journal.indexOf(`runtime.kill ${id}`)).toBeLessThan(w.journal.indexOf('host.unmountShm'));
    expect(w.service.list(null)).toEqual([expect.objectContaining({ id, state: 'SANDBOX_NOTREADY' })]);
    expect(seen).toEqual(['CONTAINER_STOPPED_EVENT']);

    w.journal.length = 0;
    await w.service.stop(id, log);
    expect(w.journal).toEqual([]);
    expect(seen).toEqual(['CONTAINER_STOPPED_EVENT']);
    // Unknown ids are success.
    await expect(w.service.stop('f'.repeat(64), log)).resolves.toBeUndefined();
  });

  it('a Stop that fails halfway is finished by the next one', async () => {
    const id = await w.service.run(podConfig(), '', log);
    w.network.failOn('tearDown', new Error('DEL failed'));
    await expect(w.service.stop(id, log)).rejects.toThrow('DEL failed');
    expect(w.service.get(id).record.phase).toBe('ready');
    await w.service.stop(id, log);
    expect(w.service.get(id).record.phase).toBe('stopped');
    expect(w.network.attached.size).toBe(0);
  });

  it('RemovePodSandbox stops, deletes the pause container and forgets the pod; again is success', async () => {
    const id = await w.service.run(podConfig(), '', log);
    const seen: string[] = [];
    w.events.subscribe((event) => seen.push(String(event.container_event_type)));
    await w.service.remove(id, log);
    expect(w.service.find(id)).toBeUndefined();
    expect(await recordIds(w.layout)).toEqual([]);
    await expect(fs.stat(w.layout.sandboxStateDir(id))).rejects.toThrow(/ENOENT/);
    expect(w.runtime.methods(id).slice(-1)).toEqual(['delete']);
    expect(w.host.netns.size + w.host.shm.size + w.network.attached.size).toBe(0);
    expect(seen).toEqual(['CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
    await expect(w.service.remove(id, log)).resolves.toBeUndefined();
    expect(() => w.service.get(id)).toThrow(/not found/);
  });

  it('the pause container exiting on its own makes the pod NOTREADY and sends STOPPED once', async () => {
    const id = await w.service.run(podConfig(), '', log);
    const seen: string[] = [];
    w.events.subscribe((event) => seen.push(String(event.container_event_type)));
    w.runtime.exit(id, 2);
    expect(w.service.get(id).pauseExit?.exitCode).toBe(2);
    expect(w.service.listSandboxes({ state: 'SANDBOX_READY' })).toEqual([]);
    await w.service.stop(id, log);
    expect(seen).toEqual(['CONTAINER_STOPPED_EVENT']);
    expect(w.runtime.methods(id)).not.toContain('kill');
  });

  it('lists by id prefix, state and labels', async () => {
    const a = await w.service.run(podConfig('a'), '', log);
    const b = await w.service.run(podConfig('b'), '', log);
    await w.service.stop(b, log);
    const ids = (filter: cri.PodSandboxFilter | null): string[] => w.service.list(filter).map((s) => s.id!).sort();
    expect(ids(null)).toEqual([a, b].sort());
    expect(ids({ id: a.slice(0, 10), state: null, label_selector: {} })).toEqual([a]);
    expect(ids({ id: '', state: { state: 'SANDBOX_READY' }, label_selector: {} })).toEqual([a]);
    expect(ids({ id: '', state: null, label_selector: { app: 'b' } })).toEqual([b]);
    expect(w.service.listSandboxes({ labels: { app: 'a' } }).map((s) => s.record.id)).toEqual([a]);
  });

  it('UpdatePodSandboxResources records the values; a pod with its own parent gets its cgroup written', async () => {
    const id = await w.service.run(podConfig(), '', log);
    const resources: cri.LinuxContainerResources = {
      cpu_period: '100000', cpu_quota: '50000', cpu_shares: '512', memory_limit_in_bytes: '0', oom_score_adj: '0', cpuset_cpus: '', cpuset_mems: '',
      hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: '0',
    };
    await w.service.updateResources(id, resources, null, log);
    expect(w.service.get(id).record.resources).toEqual({ resources, overhead: null });
    expect(w.journal).not.toContain('host.limitPod');
    const own = await w.service.run(podConfig('own', { linux: { ...hostNetwork.linux!, cgroup_parent: '/kubepods/pod-own', security_context: null } }), '', log);
    await w.service.updateResources(own, resources, null, log);
    expect(w.journal).toContain('host.limitPod');
    await w.service.stop(id, log);
    await expect(w.service.updateResources(id, resources, null, log)).rejects.toThrow(/not ready/);
  });

  describe('recovery', () => {
    it('rebuilds pods from their records: a live pause keeps the pod READY, a gone one makes it NOTREADY', async () => {
      const live = await w.service.run(podConfig('live'), '', log);
      const gone = await w.service.run(podConfig('gone'), '', log);
      const stopped = await w.service.run(podConfig('stopped'), '', log);
      await w.service.stop(stopped, log);
      w.runtime.containers.delete(gone); // the pause container died with the old daemon

      const restarted = await world(dir);
      for (const [id, container] of w.runtime.containers) restarted.runtime.containers.set(id, container);
      await restarted.service.recover();
      const state = (id: string): string | undefined => String(restarted.service.list(null).find((s) => s.id === id)?.state);
      expect(state(live)).toBe('SANDBOX_READY');
      expect(state(gone)).toBe('SANDBOX_NOTREADY');
      expect(restarted.service.get(gone).pauseExit?.exitCode).toBe(255);
      expect(state(stopped)).toBe('SANDBOX_NOTREADY');
      // Names are held again, and Remove works on what was recovered.
      await expect(restarted.service.run(podConfig('live'), '', log)).rejects.toThrow();
      await restarted.service.remove(gone, log);
      expect(restarted.service.find(gone)).toBeUndefined();
    });

    it('a pause container whose state cannot be read leaves the pod NOTREADY, not the daemon down', async () => {
      const id = await w.service.run(podConfig(), '', log);
      const restarted = await world(dir);
      restarted.runtime.failOn('state', new Error('runc state failed'));
      await restarted.service.recover();
      expect(restarted.service.get(id).pauseExit?.exitCode).toBe(255);
    });

    it('a record that fails its schema is set aside, and the rest recover', async () => {
      const id = await w.service.run(podConfig(), '', log);
      const bad = 'a'.repeat(64);
      await fs.mkdir(path.join(w.layout.sandboxRecords, bad));
      await fs.writeFile(path.join(w.layout.sandboxRecords, bad, 'sandbox.json'), JSON.stringify({ version: 1, id: bad, netnsPath: '/etc' }));
      const restarted = await world(dir);
      await restarted.service.recover();
      expect(restarted.service.listSandboxes().map((s) => s.record.id)).toEqual([id]);
      expect(restarted.service.setAsideRecords()).toEqual([expect.objectContaining({ id: bad })]);
    });
  });
});

describe('errors logged under err', () => {
  it('keep their message, stack and cause in the written line', () => {
    const lines: string[] = [];
    const out = new Writable({ write: (chunk, _encoding, done) => void (lines.push(String(chunk)), done()) });
    const logger = createLogger('info', 'json', out as never);
    logger.error({ err: new Error('CNI DEL failed', { cause: new Error('plugin exited 1') }) }, 'undo failed');
    const entry = JSON.parse(lines[0]!);
    expect(entry.err).toMatchObject({ message: 'CNI DEL failed', type: 'Error' });
    expect(entry.err.stack).toMatch(/CNI DEL failed\n\s+at /);
    expect(JSON.stringify(entry.err)).toContain('plugin exited 1');
  });
});
