/**
 * What a kubelet of 1.33–1.35 asks of its runtime beyond the basics, against the real daemon
 * and runc: truthful features, the groups a process really got, recursive read-only mounts,
 * user namespaces refused honestly, the pod's own events, stop signals in status.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { cgroupParentOf, podConfig, sleep, startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { cgroupDirs } from './host.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');
const USER_IMAGE = testImage('user', 'uid'); // User 1000, a member of group 50000 in /etc/group

describe('what current kubelets ask of the runtime', () => {
  let daemon: TestDaemon;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    for (const image of [BUSYBOX, USER_IMAGE, testImage('stopsignal')]) await daemon.images('PullImage', { image: { image } });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function newPod(name: string, overrides: Record<string, unknown> = {}) {
    const config = podConfig(name, overrides);
    return { id: (await daemon.runtime('RunPodSandbox', { config })).pod_sandbox_id, config };
  }

  function create(pod: { id: string; config: Record<string, unknown> }, name: string, overrides: Record<string, unknown> = {}) {
    const config = { metadata: { name }, image: { image: BUSYBOX }, command: ['sleep', '3600'], linux: {}, ...overrides };
    return daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config });
  }

  async function run(pod: { id: string; config: Record<string, unknown> }, name: string, overrides: Record<string, unknown> = {}) {
    const { container_id } = await create(pod, name, overrides);
    await daemon.runtime('StartContainer', { container_id });
    return container_id;
  }

  const exec = async (id: string, cmd: string[]) => daemon.runtime('ExecSync', { container_id: id, cmd, timeout: 10 });
  const status = async (id: string) => (await daemon.runtime('ContainerStatus', { container_id: id, verbose: false })).status as cri.ContainerStatus;

  it('reports each runtime handler with the features runc and the kernel really have', async () => {
    const { runtime_handlers, features } = await daemon.runtime('Status', { verbose: false });
    const probed = JSON.parse(execFileSync('runc', ['features'], { encoding: 'utf8' })) as { mountOptions: string[] };
    expect(runtime_handlers.map((h) => h.name)).toEqual(['', 'runc']);
    for (const handler of runtime_handlers) {
      // runc 1.1 knows `rro` and this kernel has mount_setattr; it cannot make idmapped mounts.
      expect(handler.features).toEqual({ recursive_read_only_mounts: probed.mountOptions.includes('rro'), user_namespaces: false });
    }
    expect(features).toMatchObject({ supplemental_groups_policy: true });
  });

  it('reports the uid, gid and groups the process really got, for Merge and for Strict', async () => {
    const pod = await newPod('groups');
    const groups = async (id: string) => (await exec(id, ['id', '-G'])).stdout.toString().trim().split(' ').map(Number).sort((a, b) => a - b);
    const merged = await run(pod, 'merge', { image: { image: USER_IMAGE }, linux: { security_context: { supplemental_groups: [1234] } } });
    const strict = await run(pod, 'strict', { image: { image: USER_IMAGE }, linux: { security_context: { supplemental_groups: [1234], supplemental_groups_policy: 'Strict' } } });
    expect(await groups(merged)).toEqual([1000, 1234, 50000]);
    expect(await groups(strict)).toEqual([1000, 1234]);
    const reported = async (id: string) => {
      const user = (await status(id)).user!.linux!;
      return { uid: Number(user.uid), gid: Number(user.gid), groups: user.supplemental_groups.map(Number).sort((a, b) => a - b) };
    };
    expect(await reported(merged)).toEqual({ uid: 1000, gid: 1000, groups: [1234, 50000] });
    expect(await reported(strict)).toEqual({ uid: 1000, gid: 1000, groups: [1234] });
  });

  it('makes a recursive read-only mount read-only all the way down, and refuses what the API forbids', async () => {
    const pod = await newPod('rro');
    const host = await tempDir('rro-');
    await fs.mkdir(path.join(host, 'sub'));
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', path.join(host, 'sub')]);
    try {
      const mount = (extra: Record<string, unknown>) => ({ mounts: [{ container_path: '/data', host_path: host, readonly: true, ...extra }] });
      const plain = await run(pod, 'plain-ro', mount({}));
      const recursive = await run(pod, 'rro', mount({ recursive_read_only: true }));
      // Plain read-only: the top is read-only, the submount below it is not.
      expect((await exec(plain, ['touch', '/data/x'])).exit_code).not.toBe(0);
      expect((await exec(plain, ['touch', '/data/sub/y'])).exit_code).toBe(0);
      // Recursive read-only: the submount too.
      const write = await exec(recursive, ['touch', '/data/sub/z']);
      expect(write.exit_code).not.toBe(0);
      expect(write.stderr.toString()).toMatch(/Read-only file system/);

      await expect(create(pod, 'rw-rro', mount({ readonly: false, recursive_read_only: true }))).rejects.toMatchObject({
        code: grpcStatus.INVALID_ARGUMENT,
        details: expect.stringMatching(/config\.mounts\[0\]\.recursive_read_only needs readonly/),
      });
      await expect(create(pod, 'shared-rro', mount({ recursive_read_only: true, propagation: 'PROPAGATION_HOST_TO_CONTAINER' }))).rejects.toMatchObject({
        code: grpcStatus.INVALID_ARGUMENT,
        details: expect.stringMatching(/recursive_read_only needs PROPAGATION_PRIVATE/),
      });
      for (const id of [plain, recursive]) await daemon.runtime('RemoveContainer', { container_id: id });
    } finally {
      execFileSync('umount', [path.join(host, 'sub')]);
    }
  });

  it('refuses pods in a user namespace of their own, naming what runc lacks, and validates the mappings', async () => {
    const userns = (options: Record<string, unknown>) => podConfig('userns', { linux: { security_context: { namespace_options: { userns_options: options } } } });
    const mapping = [{ host_id: 100000, container_id: 0, length: 65536 }];
    await expect(daemon.runtime('RunPodSandbox', { config: userns({ mode: 'POD', uids: mapping, gids: mapping }) })).rejects.toMatchObject({
      code: grpcStatus.FAILED_PRECONDITION,
      details: expect.stringMatching(/user namespaces for pods .* not available here \(runtime handler runc\): the OCI runtime \(1\.1\.\d[^)]*\) cannot make idmapped mounts/),
    });
    await expect(daemon.runtime('RunPodSandbox', { config: userns({ mode: 'POD', uids: mapping, gids: [] }) })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(/userns_options\.gids POD mode needs exactly one mapping, not 0/),
    });
    await expect(daemon.runtime('RunPodSandbox', { config: userns({ mode: 'POD', uids: [{ host_id: 100000, container_id: 5, length: 10 }], gids: mapping }) })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(/uids\[0\]\.container_id 5: the mapping must start at the pod's root/),
    });
    await expect(daemon.runtime('RunPodSandbox', { config: userns({ mode: 'CONTAINER' }) })).rejects.toMatchObject({ code: grpcStatus.INVALID_ARGUMENT });
    // NODE: the host's user namespace, as without the option.
    const { pod_sandbox_id } = await daemon.runtime('RunPodSandbox', { config: userns({ mode: 'NODE' }) });
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id });
  });

  it('streams the pod’s own created, started, stopped and deleted events with its status', async () => {
    const events: cri.ContainerEventResponse[] = [];
    const stream = daemon.clients.runtime.GetContainerEvents({});
    stream.on('data', (e: cri.ContainerEventResponse) => events.push(e));
    stream.on('error', () => undefined);
    await sleep(100);
    const pod = await newPod('evented');
    const container = await run(pod, 'c');
    await daemon.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    await sleep(200);
    stream.cancel();
    const own = events.filter((e) => e.container_id === pod.id);
    expect(own.map((e) => e.container_event_type)).toEqual(['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
    expect(own.map((e) => e.pod_sandbox_status?.state)).toEqual(['SANDBOX_READY', 'SANDBOX_READY', 'SANDBOX_NOTREADY', 'SANDBOX_NOTREADY']);
    expect(own.every((e) => e.pod_sandbox_status?.id === pod.id)).toBe(true);
    // The stopped event carries the pod's containers as they were then.
    expect(own[2]!.containers_statuses.map((c) => [c.id, c.state])).toEqual([[container, 'CONTAINER_EXITED']]);
  });

  it('mounts a pulled image, or a sub-path of it, read-only, keeps it through RemoveImage, and unmounts it with the container', async () => {
    const pod = await newPod('image-volumes');
    const layered = testImage('whiteout'); // two layers: an overlay, with the upper layer's whiteouts
    const single = testImage('pause'); // one layer: a read-only bind
    await expect(create(pod, 'unpulled', { mounts: [{ container_path: '/vol', image: { image: layered } }] })).rejects.toMatchObject({ code: grpcStatus.NOT_FOUND });
    for (const image of [layered, single]) await daemon.images('PullImage', { image: { image } });
    const volumes = [
      { container_path: '/vol', image: { image: layered } },
      { container_path: '/sub', image: { image: layered }, image_sub_path: 'dir' },
      { container_path: '/one', image: { image: single } },
    ];
    const id = await run(pod, 'reader', { mounts: volumes });
    const sh = async (script: string) => (await exec(id, ['sh', '-c', script])).stdout.toString().trim();
    // The upper layer's whiteouts hide /etc/hidden and the old /dir: the image as a container sees it.
    expect(await sh('cat /vol/etc/kept; ls /vol/etc; ls /sub; ls /one')).toBe('kept\nkept\nc\npause');
    expect((await exec(id, ['touch', '/vol/new'])).stderr.toString()).toMatch(/Read-only file system/);
    expect((await exec(id, ['touch', '/one/new'])).stderr.toString()).toMatch(/Read-only file system/);

    await expect(create(pod, 'escape', { mounts: [{ container_path: '/x', image: { image: layered }, image_sub_path: 'dir/../../..' }] })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
    });
    await expect(create(pod, 'missing', { mounts: [{ container_path: '/x', image: { image: layered }, image_sub_path: 'nothing-here' }] })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(/image_sub_path "nothing-here" does not exist in the image/),
    });

    // The image goes from the store's list; the mount and its layers stay while the container does.
    const { image: before, info: details } = await daemon.images('ImageStatus', { image: { image: layered }, verbose: true });
    const layerDirs = (JSON.parse(details.info!).layers as Array<{ diffId: string }>).map((l) => path.join(daemon.dirs.root, 'images', 'layers', l.diffId.slice(7)));
    await daemon.images('RemoveImage', { image: { image: before!.id } });
    expect((await daemon.images('ImageStatus', { image: { image: layered }, verbose: false })).image).toBeNull();
    expect(await sh('cat /vol/etc/kept')).toBe('kept');
    const info = JSON.parse((await daemon.runtime('ContainerStatus', { container_id: id, verbose: true })).info.info!) as { rootfs: string };
    const volumeDir = path.join(path.dirname(info.rootfs), 'image-volumes');
    expect((await fs.readdir(volumeDir)).sort()).toEqual(['0', '1', '2']);
    await daemon.runtime('RemoveContainer', { container_id: id });
    await expect(fs.access(volumeDir)).rejects.toThrow();
    // The removal unmounts the volumes and frees their layers after its answer.
    const present = async (): Promise<string[]> => (await Promise.all(layerDirs.map((dir) => fs.access(dir).then(() => dir, () => '')))).filter(Boolean);
    await expect.poll(present, { timeout: 5000 }).toEqual([]);
  });

  it('resizes a pod in place: its cgroup gets the containers’ sum plus the overhead', async () => {
    const parent = `/${cgroupParentOf(inject('runId'))}/pod-resize`;
    const pod = await newPod('resize', { linux: { cgroup_parent: parent } });
    const mib = 1024 * 1024;
    await daemon.runtime('UpdatePodSandboxResources', {
      pod_sandbox_id: pod.id,
      resources: { cpu_period: 100_000, cpu_quota: 50_000, cpu_shares: 512, memory_limit_in_bytes: 128 * mib },
      overhead: { cpu_quota: 10_000, cpu_shares: 64, memory_limit_in_bytes: 16 * mib },
    });
    const read = async (controller: string, file: string) => (await fs.readFile(path.join('/sys/fs/cgroup', controller, parent, file), 'utf8')).trim();
    expect(await read('cpu', 'cpu.cfs_period_us')).toBe('100000');
    expect(await read('cpu', 'cpu.cfs_quota_us')).toBe('60000');
    expect(await read('cpu', 'cpu.shares')).toBe('576');
    expect(await read('memory', 'memory.limit_in_bytes')).toBe(String(144 * mib));
    const info = JSON.parse((await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true })).info.info!) as { resources: unknown };
    expect(info.resources).toMatchObject({ resources: { cpu_quota: '50000' }, overhead: { cpu_quota: '10000' } });

    await expect(daemon.runtime('UpdatePodSandboxResources', { pod_sandbox_id: pod.id, resources: { cpu_period: 7 } })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(/resources\.cpu_period 7 is below/),
    });
    await expect(daemon.runtime('UpdatePodSandboxResources', { pod_sandbox_id: 'f'.repeat(64), resources: {} })).rejects.toMatchObject({ code: grpcStatus.NOT_FOUND });
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    // The pod's cgroup is the kubelet's (here, the test's) to remove, as it made it.
    for (const dir of await cgroupDirs(parent.slice(1))) await fs.rmdir(dir);
  });

  it('reports the stop signal it applies', async () => {
    const pod = await newPod('signals');
    const fromImage = await run(pod, 'image', { image: { image: testImage('stopsignal') } });
    const fromDefault = await run(pod, 'default');
    const fromConfig = await run(pod, 'config', { stop_signal: 'SIGINT' });
    expect((await status(fromImage)).stop_signal).toBe('SIGUSR1');
    expect((await status(fromDefault)).stop_signal).toBe('SIGTERM');
    expect((await status(fromConfig)).stop_signal).toBe('SIGINT');
  });
});
