/**
 * ContainerService over fakes: the OCI runtime (fakes/oci-runtime.ts), the host's mounts, the
 * image service and the pod, with records in a temporary root. CreateContainer's steps and
 * what a failure at each leaves (nothing), and the Start, Stop and Remove paths.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import type * as wire from '../../src/api/wire.js';
import { emptyEdits } from '../../src/cdi/types.js';
import type { Config } from '../../src/config/config.js';
import type { ContainerImages, PodLookup } from '../../src/container/deps.js';
import { ContainerEvents } from '../../src/container/events.js';
import type { ContainerMounts } from '../../src/container/host.js';
import { ContainerService } from '../../src/container/service.js';
import type { ImageRecord } from '../../src/image/store/images.js';
import { DaemonLayout } from '../../src/layout.js';
import { silentLogger } from '../../src/log.js';
import type { RuntimeHandlers } from '../../src/oci/handlers.js';
import { AppArmor } from '../../src/oci/apparmor.js';
import { Selinux } from '../../src/oci/selinux.js';
import type { Sandbox } from '../../src/sandbox/sandbox.js';
import { FakeOciRuntime } from './fakes/oci-runtime.js';
import { readyPodRecord } from './fakes/pod-record.js';

const POD_ID = 'a'.repeat(64);
const IMAGE_ID = `sha256:${'1'.repeat(64)}`;
const VOLUME_IMAGE_ID = `sha256:${'2'.repeat(64)}`;
const log = silentLogger();
const SECURITY = {
  capabilities: null, privileged: false, namespace_options: null, selinux_options: null, run_as_user: null, run_as_username: '',
  readonly_rootfs: false, supplemental_groups: [], apparmor_profile: '', seccomp_profile_path: '', no_new_privs: false,
  run_as_group: null, masked_paths: [], readonly_paths: [], seccomp: null, apparmor: null, supplemental_groups_policy: 'Merge',
} as unknown as cri.LinuxContainerSecurityContext;

/** Mounts that only make and delete directories, noting each call in `trace`. */
class FakeMounts implements ContainerMounts {
  readonly failures = new Map<string, Error>();
  constructor(private readonly trace: string[]) {}

  private note(call: string): void {
    this.trace.push(call);
    const failure = this.failures.get(call.split(' ')[0]!);
    if (failure) throw failure;
  }

  async mountOverlay(options: { target: string }): Promise<void> {
    this.note(`mountOverlay ${options.target}`);
    await fs.mkdir(options.target, { recursive: true });
  }

  async unmountAll(target: string): Promise<void> {
    this.note(`unmountAll ${target}`);
  }

  async mountImage(_layers: string[], mountPoint: string): Promise<void> {
    this.note(`mountImage ${mountPoint}`);
    await fs.mkdir(mountPoint, { recursive: true });
  }

  async unmountImage(mountPoint: string): Promise<void> {
    this.note(`unmountImage ${mountPoint}`);
  }

  async unmountBelow(dir: string): Promise<void> {
    this.note(`unmountBelow ${path.basename(dir).split('.')[0]}`);
  }
}

function image(id: string, name: string): ImageRecord {
  return {
    version: 1,
    id,
    repoTags: [name],
    repoDigests: [],
    size: 1,
    manifestDigests: [],
    config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['sleep', '1000'], Env: ['PATH=/bin'], StopSignal: 'SIGQUIT' }, rootfs: { type: 'layers', diff_ids: [] } },
    layers: [{ diffId: `sha256:${id.slice(-1).repeat(63)}f` }],
    pinned: false,
    pulledAt: 0,
  } as unknown as ImageRecord;
}

function containerConfig(name: string, overrides: Partial<cri.ContainerConfig> = {}): cri.ContainerConfig {
  return {
    metadata: { name, attempt: 0 },
    image: { image: 'busybox', annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' },
    command: [],
    args: [],
    working_dir: '',
    envs: [],
    mounts: [],
    devices: [],
    labels: { app: name },
    annotations: {},
    log_path: `${name}/0.log`,
    stdin: false,
    stdin_once: false,
    tty: false,
    linux: null,
    windows: null,
    stop_signal: 'RUNTIME_DEFAULT',
    CDI_devices: [],
    ...overrides,
  } as unknown as cri.ContainerConfig;
}

interface Harness {
  createdIds: string[];
  service: ContainerService;
  runtime: FakeOciRuntime;
  mounts: FakeMounts;
  layout: DaemonLayout;
  trace: string[];
  events: wire.ContainerEventResponse[];
  held: Map<string, string[]>;
  logDir: string;
  create(name: string, overrides?: Partial<cri.ContainerConfig>): Promise<string>;
}

describe('ContainerService', () => {
  let dir: string;
  let h: Harness;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-containers-'));
    h = await harness(dir);
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  describe('CreateContainer', () => {
    it('runs its steps in order and leaves a created container with its record written', async () => {
      const id = await h.create('web');
      expect(h.trace).toEqual([`mountOverlay ${h.layout.containerRootfs(id)}`, `runtime create ${id}`]);
      const record = h.service.get(id.slice(0, 12));
      expect(record).toMatchObject({ id, sandboxId: POD_ID, phase: 'created', pid: 1000, stopSignal: 'SIGQUIT', user: { uid: 0, gid: 0, additionalGids: [] } });
      expect(Object.keys(record.timings!)).toEqual(['record', 'rootfs', 'logFile', 'imageVolumes', 'spec', 'runtimeCreate']);
      const onDisk = JSON.parse(await fs.readFile(path.join(h.layout.containerDir(id), 'container.json'), 'utf8'));
      expect(onDisk).toMatchObject({ id, phase: 'created', pid: 1000 });
      await expect(fs.stat(path.join(h.logDir, 'web/0.log'))).resolves.toBeTruthy();
      await expect(fs.stat(h.layout.containerUpper(id))).resolves.toBeTruthy();
      expect(h.held.get(id)).toEqual(image(IMAGE_ID, 'x').layers.map((l) => l.diffId));
      expect(h.events.map((e) => e.container_event_type)).toEqual(['CONTAINER_CREATED_EVENT']);
      const spec = h.runtime.containers.get(id)!.spec;
      expect(spec.linux.cgroupsPath).toBe(`/kubepods/pod1/${id}`);
      expect(spec.root.path).toBe(h.layout.containerRootfs(id));
    });

    it('refuses a second container with the same metadata while the first exists', async () => {
      await h.create('web');
      await expect(h.create('web')).rejects.toMatchObject({ code: 'AlreadyExists' });
    });

    it('mounts image volumes below the container, recorded before they are mounted', async () => {
      const volume = { container_path: '/vol', host_path: '', readonly: true, selinux_relabel: false, propagation: 'PROPAGATION_PRIVATE', recursive_read_only: false, image: { image: 'vol' }, image_sub_path: '' } as unknown as cri.Mount;
      const id = await h.create('web', { mounts: [volume] });
      const mountPoint = h.layout.imageVolume(id, 0);
      expect(h.trace).toContain(`mountImage ${mountPoint}`);
      expect(h.service.get(id).imageVolumes).toEqual([{ index: 0, imageId: VOLUME_IMAGE_ID, layers: image(VOLUME_IMAGE_ID, 'x').layers.map((l) => l.diffId), mountPoint }]);
      expect(h.held.get(id)).toHaveLength(2);
      expect(h.runtime.containers.get(id)!.spec.mounts.find((m) => m.destination === '/vol')?.source).toBe(mountPoint);
    });

    const volume = { container_path: '/vol', host_path: '', readonly: true, selinux_relabel: false, propagation: 'PROPAGATION_PRIVATE', recursive_read_only: false, image: { image: 'vol' }, image_sub_path: '' } as unknown as cri.Mount;
    const failures: Array<{ step: string; fail: (h: Harness) => Promise<void> | void; config?: Partial<cri.ContainerConfig>; undone: (id: string, h: Harness) => string[] }> = [
      {
        step: 'record',
        fail: (h) => fs.writeFile(h.layout.containerRecords, 'not a directory'),
        undone: () => [],
      },
      {
        step: 'rootfs',
        fail: (h) => void h.mounts.failures.set('mountOverlay', new Error('overlay: boom')),
        undone: (id, h) => [`unmountAll ${h.layout.containerRootfs(id)}`],
      },
      {
        step: 'logFile',
        fail: async (h) => {
          await fs.mkdir(path.join(h.logDir, 'web'), { recursive: true });
          await fs.symlink('/etc/passwd', path.join(h.logDir, 'web/0.log'));
        },
        undone: (id, h) => [`unmountAll ${h.layout.containerRootfs(id)}`],
      },
      {
        step: 'imageVolumes',
        config: { mounts: [volume] },
        fail: (h) => void h.mounts.failures.set('mountImage', new Error('mount: boom')),
        undone: (id, h) => [`unmountImage ${h.layout.imageVolume(id, 0)}`, `unmountAll ${h.layout.containerRootfs(id)}`],
      },
      {
        step: 'spec',
        // A privileged container in a pod that is not: refused while the spec is built.
        config: { linux: { resources: null, security_context: { ...SECURITY, privileged: true } } as unknown as cri.LinuxContainerConfig },
        fail: () => undefined,
        undone: (id, h) => [`unmountAll ${h.layout.containerRootfs(id)}`],
      },
      {
        step: 'runtimeCreate',
        config: { mounts: [volume] },
        fail: (h) => void h.runtime.failOn('create', new Error('runc create: boom')),
        undone: (id, h) => [`runtime delete ${id}`, `unmountImage ${h.layout.imageVolume(id, 0)}`, `unmountAll ${h.layout.containerRootfs(id)}`],
      },
    ];

    for (const failure of failures) {
      it(`a failure at the ${failure.step} step undoes the steps before it, newest first, and leaves nothing`, async () => {
        await failure.fail(h);
        const before = h.trace.length;
        await expect(h.create('web', failure.config)).rejects.toThrow();
        const id = h.createdIds.at(-1)!;
        const undos = h.trace.slice(before).filter((call) => /^(unmount|runtime delete)/.test(call));
        expect(undos).toEqual(failure.undone(id, h));
        // Record removed (from memory and disk), layers released, log file (if new) removed.
        expect(h.service.find(id)).toBeUndefined();
        expect(h.service.list(null)).toEqual([]);
        await expect(fs.stat(h.layout.containerDir(id))).rejects.toMatchObject({ code: failure.step === 'record' ? 'ENOTDIR' : 'ENOENT' });
        expect(h.held.get(id) ?? []).toEqual([]);
        if (failure.step !== 'logFile') await expect(fs.lstat(path.join(h.logDir, 'web/0.log'))).rejects.toMatchObject({ code: 'ENOENT' });
        else expect((await fs.lstat(path.join(h.logDir, 'web/0.log'))).isSymbolicLink()).toBe(true); // not ours: kept
        expect(h.events).toEqual([]);
        // The name is free again: the same metadata can be created (once what failed is fixed).
        h.mounts.failures.clear();
        if (failure.step === 'record') await fs.rm(h.layout.containerRecords);
        if (failure.step === 'logFile') await fs.rm(path.join(h.logDir, 'web/0.log'));
        if (failure.step === 'spec') return;
        await expect(h.create('web', failure.config)).resolves.toMatch(/^[0-9a-f]{64}$/);
      });
    }

    it('refuses a pod that is not ready, and an unknown image, before anything is made', async () => {
      await expect(h.create('web', { image: { image: 'nope' } as cri.ImageSpec })).rejects.toMatchObject({ code: 'NotFound' });
      expect(h.trace).toEqual([]);
      expect(h.createdIds).toEqual([]);
    });
  });

  describe('Start, Stop and Remove', () => {
    it('starts a created container once, and reports its exit', async () => {
      const id = await h.create('web');
      await h.service.start(id, log);
      expect(h.service.get(id).startedAt).toMatch(/^\d+$/);
      await expect(h.service.start(id, log)).rejects.toMatchObject({ code: 'FailedPrecondition' });
      h.runtime.exit(id, 3);
      await h.service.stop(id, 0, log); // takes the container's lock: the exit is recorded by then
      expect(h.service.get(id).exit).toMatchObject({ exitCode: 3, reason: 'Error' });
      const onDisk = JSON.parse(await fs.readFile(path.join(h.layout.containerDir(id), 'container.json'), 'utf8'));
      expect(onDisk.exit).toMatchObject({ exitCode: 3 });
      expect(h.events.map((e) => e.container_event_type)).toEqual(['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT']);
    });

    it('stops with the stop signal first, then SIGKILL when the grace period runs out', async () => {
      const id = await h.create('web');
      await h.service.start(id, log);
      h.runtime.exitOnKill = false;
      const stopping = h.service.stop(id, 50, log);
      await new Promise((resolve) => setTimeout(resolve, 100));
      h.runtime.exit(id, 137);
      await stopping;
      const kills = h.runtime.calls.filter((c) => c.method === 'kill').map((c) => (c.detail as { signal: string }).signal);
      expect(kills).toEqual(['SIGQUIT', 'SIGKILL']);
      expect(h.service.get(id).exit?.exitCode).toBe(137);
    });

    it('an unknown id is stopped and removed already', async () => {
      await expect(h.service.stop('f'.repeat(64), 10, log)).resolves.toBeUndefined();
      await expect(h.service.remove('f'.repeat(64), log)).resolves.toBeUndefined();
    });

    it('removes a running container: killed, record retired at once, host state deleted after', async () => {
      const id = await h.create('web');
      await h.service.start(id, log);
      await h.service.remove(id, log);
      expect(h.service.find(id)).toBeUndefined();
      await h.service.removalsFinished(POD_ID);
      expect(h.runtime.methods(id)).toEqual(expect.arrayContaining(['kill', 'delete']));
      expect(h.trace.at(-1)).toBe(`unmountBelow ${id}`);
      await expect(fs.readdir(h.layout.containerRecords)).resolves.toEqual([]);
      expect(h.held.get(id) ?? []).toEqual([]);
      expect(h.events.map((e) => e.container_event_type)).toEqual(['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
      // The name is free again.
      await expect(h.create('web')).resolves.toMatch(/^[0-9a-f]{64}$/);
    });

    it('lists by id prefix, pod, state and labels', async () => {
      const a = await h.create('a');
      const b = await h.create('b');
      await h.service.start(b, log);
      const ids = (filter: Partial<cri.ContainerFilter>) => h.service.list({ id: '', pod_sandbox_id: '', state: null, label_selector: {}, ...filter } as cri.ContainerFilter).map((c) => c.id).sort();
      expect(ids({})).toEqual([a, b].sort());
      expect(ids({ id: a.slice(0, 10) })).toEqual([a]);
      expect(ids({ pod_sandbox_id: POD_ID.slice(0, 8) })).toEqual([a, b].sort());
      expect(ids({ pod_sandbox_id: 'b'.repeat(10) })).toEqual([]);
      expect(ids({ state: { state: 'CONTAINER_RUNNING' } as cri.ContainerStateValue })).toEqual([b]);
      expect(ids({ label_selector: { app: 'a' } })).toEqual([a]);
      expect(h.service.listFacts({ podSandboxId: POD_ID }).map((f) => f.writableLayer).sort()).toEqual([a, b].map((id) => h.layout.containerUpper(id)).sort());
    });

    it('recovers records after a restart: a container gone while the daemon was down is exited with reason Unknown', async () => {
      const id = await h.create('web');
      await h.service.start(id, log);
      h.runtime.containers.delete(id);
      const again = await harness(dir, h.runtime);
      await again.service.recover();
      expect(again.service.get(id).exit).toMatchObject({ exitCode: 255, reason: 'Unknown' });
      await expect(again.create('web')).rejects.toMatchObject({ code: 'AlreadyExists' });
    });
  });
});

async function harness(dir: string, runtime = new FakeOciRuntime()): Promise<Harness> {
  const layout = new DaemonLayout(path.join(dir, 'root'), path.join(dir, 'state'));
  const logDir = path.join(dir, 'logs');
  const podDir = path.join(dir, 'pod');
  await fs.mkdir(logDir, { recursive: true });
  await fs.mkdir(layout.root, { recursive: true });
  await fs.mkdir(podDir, { recursive: true });
  const trace: string[] = [];
  const mounts = new FakeMounts(trace);
  const createdIds: string[] = [];
  const create = runtime.create.bind(runtime);
  runtime.create = async (request) => {
    trace.push(`runtime create ${request.id}`);
    return create(request);
  };
  const remove = runtime.delete.bind(runtime);
  runtime.delete = async (id) => {
    trace.push(`runtime delete ${id}`);
    return remove(id);
  };
  const held = new Map<string, string[]>();
  const images: ContainerImages = {
    get: (name: string) => {
      if (name === 'busybox') return image(IMAGE_ID, 'docker.io/library/busybox:latest');
      if (name === 'vol') return image(VOLUME_IMAGE_ID, 'docker.io/library/vol:latest');
      throw Object.assign(new Error(`image ${name} not found`), { code: 'NotFound' });
    },
    layerDirs: (record: ImageRecord) => record.layers.map((l) => path.join(dir, 'layers', l.diffId)),
    retainLayers: (owner: string, diffIds: string[]) => void held.set(owner, [...diffIds]),
    releaseLayers: async (owner: string) => void held.delete(owner),
  } as unknown as ContainerImages;
  const sandbox: Sandbox = {
    record: readyPodRecord(POD_ID, { cgroupParent: '/kubepods/pod1', cgroupsPath: `/kubepods/pod1/${POD_ID}`, pausePid: 4242 }, { log_directory: logDir }),
  };
  const pods: PodLookup = {
    get: (id) => {
      if (POD_ID.startsWith(id)) return sandbox;
      throw Object.assign(new Error(`sandbox ${id} not found`), { code: 'NotFound' });
    },
    find: (id) => (POD_ID.startsWith(id) ? sandbox : undefined),
    criStatus: () => ({ id: POD_ID }) as wire.PodSandboxStatus,
    dirOf: () => podDir,
  };
  const events = new ContainerEvents();
  const seen: wire.ContainerEventResponse[] = [];
  events.subscribe((e) => seen.push(e));
  const service = new ContainerService({
    config: { root: layout.root, cgroupDriver: 'cgroupfs', seccompProfileRoot: dir } as Config,
    layout,
    handlers: { get: () => ({ name: 'runc', features: { recursiveReadOnlyMounts: true, missing: {} } }) } as unknown as RuntimeHandlers,
    runtime,
    images,
    sandboxes: pods,
    events,
    cdi: { resolve: async () => ({ devices: [], edits: emptyEdits() }) },
    ownOomScoreAdj: -999,
    lsm: { apparmor: new AppArmor(undefined), selinux: new Selinux(undefined) },
    log,
    mounts,
  });
  const createWith = async (name: string, overrides: Partial<cri.ContainerConfig> = {}): Promise<string> => {
    // The id of a container whose creation failed is known from the failure's log line.
    const lines: string[] = [];
    const callLog = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    try {
      const id = await service.create({ pod_sandbox_id: POD_ID.slice(0, 6), config: containerConfig(name, overrides), sandbox_config: null } as cri.CreateContainerRequest, callLog);
      createdIds.push(id);
      return id;
    } catch (err) {
      const failed = lines.map((l) => JSON.parse(l) as { msg: string; containerId?: string }).find((l) => l.msg === 'CreateContainer failed; undoing');
      if (failed?.containerId) createdIds.push(failed.containerId);
      throw err;
    }
  };
  return { service, runtime, mounts, layout, trace, events: seen, held, logDir, create: createWith, createdIds };
}
