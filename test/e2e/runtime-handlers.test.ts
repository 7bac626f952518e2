/**
 * Runtime handlers end to end: a daemon with runc, a second runc-compatible handler (runc
 * behind a wrapper that records its calls, with its own state directory) and crun. A pod
 * runs all its containers, the pause container included, on the handler it asked for, also
 * after a restart; unknown handlers are refused naming the known ones; a runtime that cannot
 * work on this host (crun 1.8 on hybrid cgroups) is reported and refused with its reason.
 */
import { existsSync, readFileSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { findExecutable } from '../../src/util/executable.js';
import { podConfig, startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');

/** crun 1.8 refuses a host whose unified hierarchy sits beside v1 ones and has controllers. */
function crunRefusesThisHost(): boolean {
  const controllers = '/sys/fs/cgroup/unified/cgroup.controllers';
  return existsSync(controllers) && readFileSync(controllers, 'utf8').trim() !== '';
}

describe('runtime handlers', () => {
  let daemon: TestDaemon;
  let calls: string;
  let crun: string | undefined;

  beforeAll(async () => {
    const dir = await tempDir('handlers-');
    calls = path.join(dir, 'calls');
    const wrapper = path.join(dir, 'second-runtime');
    const runc = await findExecutable('runc');
    await fs.writeFile(wrapper, `#!/bin/sh\necho "$*" >> ${calls}\nexec ${runc} "$@"\n`, { mode: 0o755 });
    crun = await findExecutable('crun');
    const crunTable = crun ? `[runtime.handlers.crun]\npath = "${crun}"\n` : '';
    daemon = await startTestDaemon({ extraToml: `[runtime.handlers.second]\npath = "${wrapper}"\n${crunTable}` });
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function runPod(name: string, handler: string) {
    const config = podConfig(name);
    const { pod_sandbox_id } = await daemon.runtime('RunPodSandbox', { config, runtime_handler: handler });
    return { id: pod_sandbox_id, config };
  }

  async function runContainer(pod: { id: string; config: Record<string, unknown> }, name: string) {
    const config = { metadata: { name }, image: { image: BUSYBOX }, command: ['sleep', '3600'], linux: {} };
    const { container_id } = await daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config });
    await daemon.runtime('StartContainer', { container_id });
    return container_id;
  }

  /** Whether a handler's runtime keeps state for this container (its `--root` has a directory for it). */
  const knownTo = (root: string, id: string) => existsSync(path.join(daemon.dirs.state, root, id));
  const callsFor = async (id: string) => (await fs.readFile(calls, 'utf8')).split('\n').filter((line) => line.includes(id));

  it('lists every usable handler with its probed features, and the default once more under ""', async () => {
    const { runtime_handlers, info } = await daemon.runtime('Status', { verbose: true });
    const names = runtime_handlers.map((h) => h.name);
    expect(names.slice(0, 3)).toEqual(['', 'runc', 'second']);
    const described = JSON.parse(info.runtimeHandlers!) as Array<{ name: string; binary: string; version: string; unusable?: string }>;
    expect(described.find((h) => h.name === 'second')).toMatchObject({ version: expect.stringMatching(/^runc version/) });
    if (!crun) return;
    const crunEntry = described.find((h) => h.name === 'crun')!;
    expect(crunEntry.version).toMatch(/^crun version/);
    if (crunRefusesThisHost()) {
      expect(names).not.toContain('crun');
      expect(crunEntry.unusable).toMatch(/hybrid/);
    } else {
      expect(names).toContain('crun');
      expect(crunEntry.unusable).toBeUndefined();
    }
  });

  it('refuses an unknown handler with InvalidArgument naming those configured, before making anything', async () => {
    const config = podConfig('unknown-handler');
    await expect(daemon.runtime('RunPodSandbox', { config, runtime_handler: 'kata' })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(/runtime_handler: "kata" is not configured \(this node has: (crun, )?runc, second\)/),
    });
    const { items } = await daemon.runtime('ListPodSandbox', {});
    expect(items.filter((pod) => pod.metadata?.name === 'unknown-handler')).toEqual([]);
  });

  it('runs a pod and all its containers on the handler it asked for, also after a restart', async () => {
    const pod = await runPod('on-second', 'second');
    const container = await runContainer(pod, 'app');
    // The pause container and the app container live in the second handler's state directory only.
    for (const id of [pod.id, container]) {
      expect(knownTo('runtime-second', id)).toBe(true);
      expect(knownTo('runc', id)).toBe(false);
    }
    expect((await callsFor(pod.id)).some((line) => /\brun --detach\b/.test(line))).toBe(true);
    expect((await callsFor(container)).some((line) => /\bcreate\b/.test(line))).toBe(true);
    const exec = await daemon.runtime('ExecSync', { container_id: container, cmd: ['echo', 'hello'], timeout: 10 });
    expect(exec.stdout.toString()).toBe('hello\n');
    expect((await callsFor(container)).some((line) => /\bexec\b/.test(line))).toBe(true);

    const podStatus = await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: false });
    expect(podStatus.status!.runtime_handler).toBe('second');
    const listed = (await daemon.runtime('ListPodSandbox', {})).items.find((item) => item.id === pod.id);
    expect(listed?.runtime_handler).toBe('second');

    await daemon.restart();
    const afterRestart = await runContainer(pod, 'after-restart');
    expect(knownTo('runtime-second', afterRestart)).toBe(true);
    const state = async (id: string) => ((await daemon.runtime('ContainerStatus', { container_id: id, verbose: false })).status as cri.ContainerStatus).state;
    expect(await state(container)).toBe('CONTAINER_RUNNING');
    await daemon.runtime('StopContainer', { container_id: container, timeout: 1 });
    expect(await state(container)).toBe('CONTAINER_EXITED');
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    // Removal finishes in the background; the runtime's state goes with it.
    for (let i = 0; i < 100 && [pod.id, container, afterRestart].some((id) => knownTo('runtime-second', id)); i++) await new Promise((r) => setTimeout(r, 50));
    expect([pod.id, container, afterRestart].filter((id) => knownTo('runtime-second', id))).toEqual([]);
    expect((await callsFor(container)).some((line) => /\bdelete\b/.test(line))).toBe(true);
  });

  it('gives a pod that names no handler the default one', async () => {
    const pod = await runPod('on-default', '');
    const container = await runContainer(pod, 'app');
    expect(knownTo('runc', pod.id)).toBe(true);
    expect(knownTo('runc', container)).toBe(true);
    const podStatus = await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: false });
    expect(podStatus.status!.runtime_handler).toBe('');
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('refuses crun with its own reason where it cannot run here, and runs pods on it where it can', async () => {
    if (!crun) throw new Error('crun is not installed: hack/setup.sh installs it');
    if (crunRefusesThisHost()) {
      const config = podConfig('on-crun');
      await expect(daemon.runtime('RunPodSandbox', { config, runtime_handler: 'crun' })).rejects.toMatchObject({
        code: grpcStatus.FAILED_PRECONDITION,
        details: expect.stringMatching(/runtime_handler "crun" cannot run containers on this node: .*hybrid mode not supported/),
      });
      return;
    }
    const pod = await runPod('on-crun', 'crun');
    const container = await runContainer(pod, 'app');
    const exec = await daemon.runtime('ExecSync', { container_id: container, cmd: ['echo', 'on crun'], timeout: 10 });
    expect(exec.stdout.toString()).toBe('on crun\n');
    expect(knownTo('runtime-crun', container)).toBe(true);
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });
});
