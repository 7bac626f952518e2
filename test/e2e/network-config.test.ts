import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bridgeNetwork, podConfig, sleep, startTestDaemon, type TestDaemon } from './harness.js';

describe('the CNI network config the daemon runs with', () => {
  let daemon: TestDaemon | undefined;

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  async function networkCondition(d: TestDaemon) {
    const { status } = await d.runtime('Status', { verbose: false });
    return status!.conditions.find((c) => c.type === 'NetworkReady')!;
  }

  it('is not ready with an empty conf dir, and becomes ready when a network is installed', async () => {
    daemon = await startTestDaemon({ network: 'none' });
    const before = await networkCondition(daemon);
    expect(before).toMatchObject({ status: false, reason: 'NetworkPluginNotReady' });
    expect(before.message).toContain(daemon.dirs.confDir);

    const file = path.join(daemon.dirs.confDir, '10-late.conflist');
    await fs.writeFile(file, JSON.stringify(bridgeNetwork(daemon.plan, daemon.dirs)));
    await waitFor(async () => (await networkCondition(daemon!)).status);
    const { pod_sandbox_id: id } = await daemon.runtime('RunPodSandbox', { config: podConfig('late-network') });
    const { status } = await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: id, verbose: false });
    expect(status!.network!.ip.startsWith(daemon.plan.subnet.split('.').slice(0, 3).join('.'))).toBe(true);

    // The network goes away: not ready again, and the running pod is still torn down with
    // the config it was set up with (from the CNI cache).
    await fs.rm(file);
    await waitFor(async () => !(await networkCondition(daemon!)).status);
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id });
    const records = await daemon.cniRecords();
    expect(records.some((r) => r.command === 'DEL' && r.containerId === id)).toBe(true);
  });

  it('writes a default bridge network of the lowest priority when the conf dir holds none', async () => {
    daemon = await startTestDaemon({ network: 'none', defaultNetwork: true });
    const files = await fs.readdir(daemon.dirs.confDir);
    expect(files).toEqual(['zz-tscri-default.conflist']);
    const conflist = JSON.parse(await fs.readFile(path.join(daemon.dirs.confDir, files[0]!), 'utf8'));
    expect(conflist.plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'portmap']);
    expect((await networkCondition(daemon)).status).toBe(true);

    const { pod_sandbox_id: id } = await daemon.runtime('RunPodSandbox', { config: podConfig('default-net') });
    const { status } = await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: id, verbose: false });
    expect(status!.network!.ip.startsWith('10.88.')).toBe(true);
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id });

    // A cluster network installed later sorts first and wins.
    await fs.writeFile(path.join(daemon.dirs.confDir, '10-cluster.conflist'), JSON.stringify(bridgeNetwork(daemon.plan, daemon.dirs)));
    await waitFor(async () => {
      const { info } = await daemon!.runtime('Status', { verbose: true });
      return (JSON.parse(info.network!).source as string).endsWith('/10-cluster.conflist');
    });
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await sleep(50);
  }
  throw new Error('condition not met in time');
}
