import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { bridgeNetwork, podConfig, startTestDaemon, type TestDaemon } from './harness.js';
import { allocatedIps, bridgePorts, processesMatching } from './host.js';

/** What a failed RunPodSandbox must not leave: netns, IPs, veths, records, bundles, monitors. */
async function expectNothingLeft(daemon: TestDaemon, netnsBefore: string[]): Promise<void> {
  expect(await netnsList()).toEqual(netnsBefore);
  expect(await allocatedIps(daemon.plan.ipamDataDir, daemon.plan.networkName)).toEqual([]);
  expect(await bridgePorts(daemon.plan.bridge)).toEqual([]);
  expect(await fs.readdir(path.join(daemon.dirs.root, 'sandboxes'))).toEqual([]);
  expect(await fs.readdir(path.join(daemon.dirs.state, 'bundles'))).toEqual([]);
  expect(await fs.readdir(path.join(daemon.dirs.root, 'cni', 'results'))).toEqual([]);
  expect(await processesMatching(path.join(daemon.dirs.state, 'bundles'))).toEqual([]);
  expect((await daemon.runtime('ListPodSandbox', {})).items).toEqual([]);
}

async function netnsList(): Promise<string[]> {
  return (await fs.readdir('/run/netns').catch(() => [] as string[])).sort();
}

describe('a RunPodSandbox that fails halfway', () => {
  let daemon: TestDaemon | undefined;

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  it('returns the CNI plugin error and leaves nothing behind', async () => {
    daemon = await startTestDaemon({
      network: (plan, dirs) =>
        bridgeNetwork(plan, dirs, [
          { type: 'tscri-test-plugin', failOn: 'ADD', failCode: 11, failMsg: 'no more addresses', failDetails: 'pool exhausted' },
        ]),
    });
    const netnsBefore = await netnsList();
    const failure = daemon.runtime('RunPodSandbox', { config: podConfig('cni-fails') });
    await expect(failure).rejects.toMatchObject({
      code: grpcStatus.INTERNAL,
      details: expect.stringMatching(/tscri-test-plugin.*ADD.*code 11.*no more addresses.*pool exhausted/),
    });
    // The chain was deleted again: bridge ran DEL, so its IP and veth are gone too.
    const records = await daemon.cniRecords();
    expect(records.filter((r) => r.command === 'DEL').length).toBeGreaterThan(0);
    await expectNothingLeft(daemon, netnsBefore);

    // The name was released with the rest: the same pod can be tried again.
    const config = podConfig('cni-fails-retry');
    await expect(daemon.runtime('RunPodSandbox', { config })).rejects.toMatchObject({ code: grpcStatus.INTERNAL });
    await expect(daemon.runtime('RunPodSandbox', { config })).rejects.not.toMatchObject({ code: grpcStatus.ALREADY_EXISTS });
  });

  it('keeps a sandbox whose CNI DEL failed during the undo, NOTREADY, until Remove finishes the DEL', async () => {
    const broken = path.join(await fs.mkdtemp('/tmp/tscri-del-'), 'broken');
    await fs.writeFile(broken, '');
    daemon = await startTestDaemon({
      network: (plan, dirs) =>
        bridgeNetwork(plan, dirs, [
          { type: 'tscri-test-plugin', failOn: 'DEL', failMsg: 'cannot release', failWhileExists: broken },
          { type: 'tscri-test-plugin', failOn: 'ADD', failMsg: 'no more addresses' },
        ]),
    });
    const netnsBefore = await netnsList();
    await expect(daemon.runtime('RunPodSandbox', { config: podConfig('del-fails') })).rejects.toMatchObject({
      code: grpcStatus.INTERNAL,
      details: expect.stringMatching(/no more addresses/),
    });
    // DEL went through the rest of the chain, but the failed plugin's part is not undone: the
    // cached attachment and the record that names it stay for a retry.
    expect(await fs.readdir(path.join(daemon.dirs.root, 'cni', 'results'))).not.toEqual([]);
    const dels = async () => (await daemon!.cniRecords()).filter((r) => r.command === 'DEL').length;
    const delsAfterRun = await dels();
    const { items } = await daemon.runtime('ListPodSandbox', {});
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ state: 'SANDBOX_NOTREADY', metadata: { name: 'del-fails' } });
    // Remove retries the DEL, which now works, and everything goes.
    await fs.rm(path.dirname(broken), { recursive: true });
    await daemon.runtime('StopPodSandbox', { pod_sandbox_id: items[0]!.id });
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: items[0]!.id });
    expect(await dels()).toBeGreaterThan(delsAfterRun);
    await expectNothingLeft(daemon, netnsBefore);
  });

  it('returns the runc error when the pause container cannot start and undoes the network', async () => {
    daemon = await startTestDaemon();
    const netnsBefore = await netnsList();
    // runc refuses an unknown sysctl; the network is already attached by then.
    const config = podConfig('runc-fails', { linux: { sysctls: { 'net.tscri.no_such_key': '1' } } });
    await expect(daemon.runtime('RunPodSandbox', { config })).rejects.toMatchObject({
      code: grpcStatus.INTERNAL,
      details: expect.stringMatching(/^runc create failed: .*net\/tscri\/no_such_key/),
    });
    await expectNothingLeft(daemon, netnsBefore);
  });

  it('reports a missing plugin binary as not ready and fails pods with its name', async () => {
    daemon = await startTestDaemon({
      network: (plan) => ({
        cniVersion: '1.0.0',
        name: plan.networkName,
        plugins: [{ type: 'no-such-plugin' }],
      }),
    });
    const { status } = await daemon.runtime('Status', { verbose: false });
    const network = status!.conditions.find((c) => c.type === 'NetworkReady')!;
    expect(network).toMatchObject({ status: false, reason: 'NetworkPluginNotReady' });
    expect(network.message).toContain('no-such-plugin');
    const netnsBefore = await netnsList();
    await expect(daemon.runtime('RunPodSandbox', { config: podConfig('no-plugin') })).rejects.toMatchObject({
      details: expect.stringContaining('no-such-plugin'),
    });
    await expectNothingLeft(daemon, netnsBefore);
  });
});
