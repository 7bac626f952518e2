import { describe, it, expect, afterEach } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PluginChain, type ChainInputs } from '../../src/network/cni/chain.js';
import { parseNetworkConfigList } from '../../src/network/cni/config.js';
import type { PluginExecutor, PluginOutput } from '../../src/network/cni/exec.js';
import { CniPluginError } from '../../src/network/cni/errors.js';
import { createLogger } from '../../src/log.js';

const LIVE_NETNS = '/proc/self/ns/net';
const RESULT = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.1.0.2/24', interface: 0 }] };

/** Answers ADD with RESULT (or the prevResult it was given); `failing` plugins fail DEL, `failingAdd` ADD. */
class Executor implements PluginExecutor {
  readonly calls: string[] = [];
  readonly failing = new Set<string>();
  readonly failingAdd = new Set<string>();

  async exec(pluginPath: string, env: Readonly<Record<string, string>>, stdin: string): Promise<PluginOutput> {
    const type = path.basename(pluginPath);
    const command = env['CNI_COMMAND'] ?? '';
    this.calls.push(`${command} ${type}`);
    if ((this.failing.has(type) && command === 'DEL') || (this.failingAdd.has(type) && command === 'ADD')) {
      return { stdout: JSON.stringify({ code: 11, msg: `${type} cannot` }), stderr: '', exitCode: 1 };
    }
    const config = JSON.parse(stdin) as Record<string, unknown>;
    const stdout = command === 'ADD' ? JSON.stringify(config['prevResult'] ?? RESULT) : '';
    return { stdout, stderr: '', exitCode: 0 };
  }
}

const roots: string[] = [];
afterEach(async () => {
  for (const root of roots.splice(0)) await fs.rm(root, { recursive: true, force: true });
});

async function setup() {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-cni-chain-'));
  roots.push(root);
  const binDir = path.join(root, 'bin');
  const cacheDir = path.join(root, 'cache');
  await fs.mkdir(binDir);
  for (const type of ['one', 'two']) await fs.writeFile(path.join(binDir, type), '', { mode: 0o755 });
  const executor = new Executor();
  const chain = new PluginChain({ binDirs: [binDir], cacheDir, executor });
  await chain.init();
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('debug', 'json', {
    write: (line: string) => void lines.push(...line.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)),
  });
  const inputs: ChainInputs = {
    network: parseNetworkConfigList({ cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'one' }, { type: 'two' }] }),
    attachment: { containerId: 'pod1', netnsPath: LIVE_NETNS, ifName: 'eth0', args: [['IgnoreUnknown', '1']], capabilityArgs: {} },
  };
  return { chain, executor, cacheDir, log, lines, inputs };
}

describe('PluginChain', () => {
  it('records what an ADD ran with and returned, for the DEL that undoes it', async () => {
    const { chain, log, inputs } = await setup();
    const final = await chain.add(inputs, '/etc/cni/net.d/10-net.conflist', log);
    expect(final.result.ips).toEqual([{ address: '10.1.0.2/24', interface: 0 }]);
    const record = await chain.recorded('pod1', 'eth0', log);
    expect(record).toEqual({ network: inputs.network, attachment: inputs.attachment, result: RESULT });
  });

  it('returns DEL failures instead of throwing, runs every plugin, and keeps the record until a DEL succeeds', async () => {
    const { chain, executor, log, lines, inputs } = await setup();
    await chain.add(inputs, 'src', log);
    executor.failing.add('two');
    const failures = await chain.del({ ...inputs, result: RESULT }, log);
    expect(failures.map((f) => f instanceof CniPluginError && f.cniCode)).toEqual([11]);
    expect(executor.calls.slice(-2)).toEqual(['DEL two', 'DEL one']);
    expect(await chain.recorded('pod1', 'eth0', log)).toBeDefined();
    const logged = lines.find((l) => l['msg'] === 'CNI DEL failed');
    expect(logged?.['err']).toMatchObject({ type: 'CniPluginError', message: expect.stringContaining('two cannot'), stack: expect.any(String) });

    executor.failing.clear();
    expect(await chain.del({ ...inputs, result: RESULT }, log)).toEqual([]);
    expect(await chain.recorded('pod1', 'eth0', log)).toBeUndefined();
  });

  it('undoes a failed ADD, keeping the record when that DEL fails too and logging every failure whole', async () => {
    const { chain, executor, log, lines, inputs } = await setup();
    executor.failingAdd.add('two');
    executor.failing.add('one');
    await expect(chain.add(inputs, 'src', log)).rejects.toThrow('CNI plugin two failed on ADD (code 11): two cannot');
    expect(executor.calls).toEqual(['ADD one', 'ADD two', 'DEL two', 'DEL one']);
    expect(await chain.recorded('pod1', 'eth0', log)).toMatchObject({ network: inputs.network });
    const failed = lines.find((l) => l['msg'] === 'CNI ADD failed; deleting what the chain set up');
    expect(failed?.['err']).toMatchObject({ type: 'CniPluginError', stack: expect.any(String) });
    const kept = lines.find((l) => l['msg'] === 'DEL after the failed ADD failed too; keeping the cache entry for a later tearDown');
    expect(kept?.['err']).toMatchObject({ aggregateErrors: [{ type: 'CniPluginError', message: expect.stringContaining('one cannot') }] });

    executor.failing.clear();
    expect(await chain.del(inputs, log)).toEqual([]);
    expect(await chain.recorded('pod1', 'eth0', log)).toBeUndefined();
  });

  it('treats an unusable record as none, logging why with the stack', async () => {
    const { chain, cacheDir, log, lines } = await setup();
    await fs.writeFile(path.join(cacheDir, 'pod1-eth0.json'), '{"version": 7}');
    expect(await chain.recorded('pod1', 'eth0', log)).toBeUndefined();
    const logged = lines.find((l) => l['msg'] === 'ignoring unusable CNI cache entry');
    expect(logged?.['err']).toMatchObject({ message: expect.stringContaining('unknown version 7'), stack: expect.any(String) });
  });

  it('names the first plugin without an executable', async () => {
    const { chain, inputs } = await setup();
    expect(chain.missingPlugin(inputs.network)).toBeUndefined();
    const network = parseNetworkConfigList({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'one' }, { type: 'gone' }, { type: 'away' }] });
    expect(chain.missingPlugin(network)?.type).toBe('gone');
  });
});
