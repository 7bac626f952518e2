/**
 * Writable-layer usage and cgroup reads of CRI stats against the real daemon: a layer of
 * thousands of files is counted, served from the cache while the container is idle and
 * measured again once it writes; a small layer is exact at every call; the cgroup files the
 * daemon holds open for stats are closed when a container exits and when it is removed.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { podConfig, startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');
/** More than the cache measures at every call (SMALL_LAYER_INODES, 64). */
const MANY_FILES = 3000;

describe('container stats at scale', () => {
  let daemon: TestDaemon;
  let logDir: string;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    logDir = await tempDir('logs-');
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
  });

  afterAll(async () => {
    await daemon?.stop();
    await fs.rm(logDir, { recursive: true, force: true });
  });

  async function runContainer(name: string): Promise<{ pod: string; id: string }> {
    const config = podConfig(name, { log_directory: path.join(logDir, name) });
    const { pod_sandbox_id: pod } = await daemon.runtime('RunPodSandbox', { config });
    const container = { metadata: { name, attempt: 0 }, image: { image: BUSYBOX }, command: ['sleep', '3600'], log_path: `${name}.log`, linux: {} };
    const { container_id: id } = await daemon.runtime('CreateContainer', { pod_sandbox_id: pod, config: container, sandbox_config: config });
    await daemon.runtime('StartContainer', { container_id: id });
    return { pod, id };
  }

  const exec = (id: string, script: string) => daemon.runtime('ExecSync', { container_id: id, cmd: ['sh', '-c', script], timeout: 60 });
  const layerOf = async (id: string) => {
    const stats = (await daemon.runtime('ContainerStats', { container_id: id })).stats as cri.ContainerStats;
    return { bytes: Number(stats.writable_layer!.used_bytes!.value), inodes: Number(stats.writable_layer!.inodes_used!.value) };
  };
  /** The daemon's descriptors open on files of a container's cgroups. */
  const cgroupFilesOpen = async (containerId: string) => {
    const fdDir = `/proc/${daemon.pid}/fd`;
    const targets = await Promise.all((await fs.readdir(fdDir)).map((fd) => fs.readlink(path.join(fdDir, fd)).catch(() => '')));
    return targets.filter((t) => t.startsWith('/sys/fs/cgroup/') && t.includes(containerId));
  };

  it('counts a large layer, and answers from the cache while the container is idle', async () => {
    const { id } = await runContainer('many-files');
    await exec(id, `mkdir /data && cd /data && i=0; while [ $i -lt ${MANY_FILES} ]; do echo $i > f$i; i=$((i+1)); done`);
    const first = await layerOf(id);
    expect(first.inodes).toBeGreaterThanOrEqual(MANY_FILES + 1);
    expect(first.bytes).toBeGreaterThanOrEqual(MANY_FILES * 512);
    // Idle: the same figures, from the cache.
    expect(await layerOf(id)).toEqual(first);
    const listed = (await daemon.runtime('ListContainerStats', { filter: { id } })).stats;
    expect(Number(listed[0]!.writable_layer!.inodes_used!.value)).toBe(first.inodes);
  });

  it('reports a small layer exactly at every call', async () => {
    const { id } = await runContainer('small-layer');
    const before = await layerOf(id);
    await exec(id, 'dd if=/dev/zero of=/tmp/fill bs=1M count=2 2>/dev/null');
    const after = await layerOf(id);
    expect(after.bytes).toBeGreaterThanOrEqual(before.bytes + 2 * 1024 * 1024);
    await exec(id, 'rm /tmp/fill');
    expect((await layerOf(id)).bytes).toBeLessThan(after.bytes - 1024 * 1024);
  });

  it('closes the cgroup files it holds for stats when a container exits and when it is removed', async () => {
    const { id } = await runContainer('fds');
    await daemon.runtime('ListContainerStats', {});
    expect((await cgroupFilesOpen(id)).length).toBeGreaterThan(0);
    await daemon.runtime('StopContainer', { container_id: id, timeout: 0 });
    await daemon.runtime('ListContainerStats', {});
    expect(await cgroupFilesOpen(id)).toEqual([]);

    const second = await runContainer('fds-removed');
    await daemon.runtime('ContainerStats', { container_id: second.id });
    expect((await cgroupFilesOpen(second.id)).length).toBeGreaterThan(0);
    await daemon.runtime('StopPodSandbox', { pod_sandbox_id: second.pod });
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: second.pod });
    await daemon.runtime('ListContainerStats', {});
    expect(await cgroupFilesOpen(second.id)).toEqual([]);
  });
});
