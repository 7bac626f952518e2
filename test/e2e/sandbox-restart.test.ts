import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bridgeNetwork, podConfig, sleep, startTestDaemon, type TestDaemon } from './harness.js';
import { allocatedIps, bridgePorts, exists, isAlive, mountsUnder } from './host.js';
import { testImage } from './images.js';

interface Info {
  pid: number;
  netnsPath: string;
}

describe('sandboxes across daemon restarts', () => {
  let daemon: TestDaemon | undefined;

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  async function inspect(d: TestDaemon, id: string) {
    const res = await d.runtime('PodSandboxStatus', { pod_sandbox_id: id, verbose: true });
    return { status: res.status!, info: JSON.parse(res.info.info!) as Info };
  }

  it('keeps pods running through a graceful restart and manages them afterwards', async () => {
    daemon = await startTestDaemon();
    const { pod_sandbox_id: id } = await daemon.runtime('RunPodSandbox', { config: podConfig('survivor') });
    const before = await inspect(daemon, id);

    await daemon.terminate();
    expect(await isAlive(before.info.pid)).toBe(true);
    expect(await exists(before.info.netnsPath)).toBe(true);

    await daemon.start();
    const after = await inspect(daemon, id);
    expect(after.status.state).toBe('SANDBOX_READY');
    expect(after.status.network!.ip).toBe(before.status.network!.ip);
    expect(after.info.pid).toBe(before.info.pid);

    // An exit noticed by the restarted daemon: kill the pause process directly.
    process.kill(before.info.pid, 'SIGKILL');
    await waitUntil(async () => (await inspect(daemon!, id)).status.state === 'SANDBOX_NOTREADY');

    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id });
    expect(await exists(before.info.netnsPath)).toBe(false);
    expect(await allocatedIps(daemon.plan.ipamDataDir, daemon.plan.networkName)).toEqual([]);
  });

  it('reports a pod whose pause died while the daemon was down as NOTREADY', async () => {
    daemon = await startTestDaemon();
    const { pod_sandbox_id: id } = await daemon.runtime('RunPodSandbox', { config: podConfig('orphan') });
    const { info } = await inspect(daemon, id);
    await daemon.terminate();
    process.kill(info.pid, 'SIGKILL');
    await sleep(200);
    await daemon.start();
    expect((await inspect(daemon, id)).status.state).toBe('SANDBOX_NOTREADY');
  });

  it('cleans up a pod whose RunPodSandbox was cut short by SIGKILL in the middle of CNI ADD', async () => {
    daemon = await startTestDaemon({
      network: (plan, dirs) =>
        bridgeNetwork(plan, dirs, [{ type: 'tscri-test-plugin', recordFile: `${dirs.recordFile}.slow`, delayOn: 'ADD', delayMs: 4000 }]),
    });
    const d = daemon;
    const netnsBefore = await fs.readdir('/run/netns');
    const run = d.runtime('RunPodSandbox', { config: podConfig('interrupted') }).catch((err: unknown) => err);
    // Wait until bridge has attached the pod and the slow plugin is running, then kill.
    await waitUntil(async () => (await fs.readFile(`${d.dirs.recordFile}.slow`, 'utf8').catch(() => '')).includes('"ADD"'));
    expect((await bridgePorts(d.plan.bridge)).length).toBe(1);
    await d.kill9();
    await run;

    await d.start();
    const { items } = await d.runtime('ListPodSandbox', {});
    expect(items).toHaveLength(1);
    expect(items[0]!.state).toBe('SANDBOX_NOTREADY');

    // The kubelet's answer to a NOTREADY pod: stop and remove it. Everything goes, the IP too.
    await d.runtime('StopPodSandbox', { pod_sandbox_id: items[0]!.id });
    await d.runtime('RemovePodSandbox', { pod_sandbox_id: items[0]!.id });
    expect(await fs.readdir('/run/netns')).toEqual(netnsBefore);
    expect(await allocatedIps(d.plan.ipamDataDir, d.plan.networkName)).toEqual([]);
    expect(await bridgePorts(d.plan.bridge)).toEqual([]);
  });
});

describe('container removals across a SIGKILL', () => {
  let daemon: TestDaemon | undefined;

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  it('finishes at the next start a removal whose cleanup the daemon died in', async () => {
    daemon = await startTestDaemon();
    const image = testImage('busybox');
    await daemon.images('PullImage', { image: { image } });
    const config = podConfig('remover');
    const { pod_sandbox_id: pod } = await daemon.runtime('RunPodSandbox', { config });
    const { container_id: id } = await daemon.runtime('CreateContainer', {
      pod_sandbox_id: pod,
      config: { metadata: { name: 'gone', attempt: 0 }, image: { image }, command: ['sleep', '3600'], linux: {} },
      sandbox_config: config,
    });
    await daemon.runtime('StartContainer', { container_id: id });
    const containersDir = path.join(daemon.dirs.root, 'containers');
    // Answered before its cleanup (runc delete, unmount, files) is done; the daemon dies in it.
    await daemon.runtime('RemoveContainer', { container_id: id });
    await daemon.kill9();

    await daemon.start();
    expect((await daemon.runtime('ListContainers', {})).containers).toEqual([]);
    expect((await fs.readdir(containersDir)).filter((entry) => entry.startsWith(id))).toEqual([]);
    expect((await mountsUnder(daemon.dirs.base)).filter((m) => m.includes(id))).toEqual([]);
    expect(await exists(path.join(daemon.dirs.state, 'runc', id))).toBe(false);
    expect(await exists(path.join(daemon.dirs.state, 'bundles', id))).toBe(false);
  });
});

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await sleep(50);
  }
  throw new Error('condition not met in time');
}
