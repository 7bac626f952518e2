import { describe, it, expect, afterEach } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CniNetworkManager, type CniNetworkManagerOptions } from '../../src/network/cni/manager.js';
import type { PluginExecutor, PluginOutput } from '../../src/network/cni/exec.js';
import { CniPluginError } from '../../src/network/cni/errors.js';
import { podCniArgs } from '../../src/network/cni/args.js';
import { DEFAULT_NETWORK_FILE } from '../../src/network/cni/config.js';
import { resultAsVersion } from '../../src/network/cni/result.js';
import type { Attachment, NetworkResult } from '../../src/network/cni/types.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';

/** Any nsfs path counts as a live netns; this one always exists. */
const LIVE_NETNS = '/proc/self/ns/net';

interface Call {
  type: string;
  command: string;
  env: Record<string, string>;
  config: Record<string, unknown>;
}

type Behaviour = (call: Call) => PluginOutput | Promise<PluginOutput>;

function ok(value?: unknown): PluginOutput {
  return { stdout: value === undefined ? '' : JSON.stringify(value), stderr: '', exitCode: 0 };
}

function fail(code: number, msg: string, details?: string): PluginOutput {
  return { stdout: JSON.stringify({ cniVersion: '1.0.0', code, msg, details }), stderr: '', exitCode: 1 };
}

const ADDRESS = '10.88.250.7/24';

const ipamResult: NetworkResult = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'tscnitest0', mac: '0a:00:00:00:00:01' }, { name: 'eth0', mac: '0a:00:00:00:00:02', sandbox: LIVE_NETNS }],
  ips: [{ address: ADDRESS, gateway: '10.88.250.1', interface: 1 }],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: {},
};

/** Like a well-behaved chained plugin: the first creates a result, the others echo prevResult. */
const chainedPlugin: Behaviour = (call) => {
  if (call.command !== 'ADD') return ok();
  const version = String(call.config['cniVersion']);
  return ok(call.config['prevResult'] ?? resultAsVersion(ipamResult, version));
};

class FakeExecutor implements PluginExecutor {
  readonly calls: Call[] = [];
  readonly behaviours = new Map<string, Behaviour>();

  async exec(pluginPath: string, env: Readonly<Record<string, string>>, stdin: string): Promise<PluginOutput> {
    const call: Call = {
      type: path.basename(pluginPath),
      command: env['CNI_COMMAND'] ?? '',
      env: { ...env },
      config: JSON.parse(stdin) as Record<string, unknown>,
    };
    this.calls.push(call);
    return (this.behaviours.get(call.type) ?? chainedPlugin)(call);
  }

  sequence(command?: string): string[] {
    return this.calls.filter((c) => command === undefined || c.command === command).map((c) => `${c.command} ${c.type}`);
  }

  reset(): void {
    this.calls.length = 0;
  }
}

interface Harness {
  root: string;
  confDir: string;
  binDir: string;
  cacheDir: string;
  executor: FakeExecutor;
  manager: CniNetworkManager;
  /** A second manager on the same dirs, as after a daemon restart. */
  restart(): Promise<CniNetworkManager>;
}

const harnesses: Array<{ root: string; managers: CniNetworkManager[] }> = [];

afterEach(async () => {
  for (const h of harnesses.splice(0)) {
    for (const m of h.managers) m.close();
    await fs.rm(h.root, { recursive: true, force: true });
  }
});

const STUB_PLUGINS = ['first', 'second', 'third', 'other', 'bridge', 'portmap'];

async function harness(
  confFiles: Record<string, unknown>,
  options: Partial<CniNetworkManagerOptions> = {},
): Promise<Harness> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-cni-manager-'));
  const confDir = path.join(root, 'net.d');
  const binDir = path.join(root, 'bin');
  const cacheDir = path.join(root, 'cache');
  await fs.mkdir(confDir);
  await fs.mkdir(binDir);
  for (const type of STUB_PLUGINS) await fs.writeFile(path.join(binDir, type), '#!/bin/false\n', { mode: 0o755 });
  for (const [name, content] of Object.entries(confFiles)) {
    await fs.writeFile(path.join(confDir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  const executor = new FakeExecutor();
  const managers: CniNetworkManager[] = [];
  harnesses.push({ root, managers });
  const make = async (): Promise<CniNetworkManager> => {
    const m = new CniNetworkManager({
      confDir,
      binDirs: [binDir],
      cacheDir,
      logger: silentLogger(),
      executor,
      reloadDebounceMs: 20,
      ...options,
    });
    managers.push(m);
    await m.start();
    return m;
  };
  const manager = await make();
  return { root, confDir, binDir, cacheDir, executor, manager, restart: make };
}

function conflist(name: string, plugins: Array<Record<string, unknown>>, cniVersion = '1.0.0', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion, name, plugins, ...extra };
}

const THREE_PLUGINS = [
  { type: 'first', cniVersion: '0.1.0', name: 'ignored', ipam: { type: 'host-local' } },
  { type: 'second', capabilities: { portMappings: true, bandwidth: false } },
  { type: 'third', capabilities: { bandwidth: true, dns: true } },
];

function attachment(overrides: Partial<Attachment> = {}): Attachment {
  return {
    containerId: 'sandbox1',
    netnsPath: LIVE_NETNS,
    ifName: 'eth0',
    args: podCniArgs({ namespace: 'default', name: 'web', uid: 'uid-1', sandboxId: 'sandbox1' }),
    capabilityArgs: {
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
      bandwidth: { ingressRate: 1000 },
    },
    ...overrides,
  };
}

async function cacheFile(h: Harness, containerId = 'sandbox1', ifName = 'eth0'): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(h.cacheDir, `${containerId}-${ifName}.json`), 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('CniNetworkManager.setUp', () => {
  it('runs the chain in order with name, cniVersion, prevResult and declared capabilities', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    const result = await h.manager.setUp(attachment());

    expect(h.executor.sequence()).toEqual(['ADD first', 'ADD second', 'ADD third']);
    const [first, second, third] = h.executor.calls;
    for (const call of [first, second, third]) {
      expect(call?.config['name']).toBe('testnet');
      expect(call?.config['cniVersion']).toBe('1.0.0');
      expect(call?.env).toMatchObject({
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: 'sandbox1',
        CNI_NETNS: LIVE_NETNS,
        CNI_IFNAME: 'eth0',
        CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sandbox1;K8S_POD_UID=uid-1',
        CNI_PATH: h.binDir,
      });
    }
    // The first plugin gets no prevResult; the others get the previous plugin's output.
    expect(first?.config).not.toHaveProperty('prevResult');
    expect(second?.config['prevResult']).toEqual(resultAsVersion(ipamResult, '1.0.0'));
    expect(third?.config['prevResult']).toEqual(resultAsVersion(ipamResult, '1.0.0'));
    // runtimeConfig carries only what each plugin declares true, and only what we have.
    expect(first?.config).not.toHaveProperty('runtimeConfig');
    expect(second?.config['runtimeConfig']).toEqual({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
    expect(third?.config['runtimeConfig']).toEqual({ bandwidth: { ingressRate: 1000 } });
    // The plugin's own config is otherwise passed through.
    expect(first?.config['ipam']).toEqual({ type: 'host-local' });

    expect(result.networkName).toBe('testnet');
    expect(result.networkSource).toBe(path.join(h.confDir, '10-test.conflist'));
    expect(result.result).toEqual(ipamResult);
    expect(result.rawResult).toEqual(resultAsVersion(ipamResult, '1.0.0'));
  });

  it('converts prevResult to the list\'s cniVersion', async () => {
    const h = await harness({ '10-test.conflist': conflist('oldnet', THREE_PLUGINS.slice(0, 2), '0.4.0') });
    // A plugin answering in another version than asked: the next one must still get 0.4.0.
    h.executor.behaviours.set('first', (call) => (call.command === 'ADD' ? ok(resultAsVersion(ipamResult, '1.0.0')) : ok()));
    const result = await h.manager.setUp(attachment());
    const prev = h.executor.calls[1]?.config['prevResult'] as Record<string, unknown>;
    expect(prev['cniVersion']).toBe('0.4.0');
    expect(prev['ips']).toEqual([{ version: '4', address: ADDRESS, gateway: '10.88.250.1', interface: 1 }]);
    expect(result.result.ips).toEqual(ipamResult.ips);
  });

  it('writes the cache entry before the first plugin runs and adds the result after the chain', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    let seenByFirst: Record<string, unknown> | undefined;
    h.executor.behaviours.set('first', async (call) => {
      seenByFirst = await cacheFile(h);
      return chainedPlugin(call);
    });
    await h.manager.setUp(attachment());

    expect(seenByFirst).toMatchObject({
      version: 1,
      containerId: 'sandbox1',
      ifName: 'eth0',
      netnsPath: LIVE_NETNS,
      networkName: 'testnet',
      source: path.join(h.confDir, '10-test.conflist'),
      config: conflist('testnet', THREE_PLUGINS),
      args: attachment().args,
      capabilityArgs: attachment().capabilityArgs,
    });
    expect(seenByFirst).not.toHaveProperty('result');
    const after = await cacheFile(h);
    expect(after?.['result']).toEqual(resultAsVersion(ipamResult, '1.0.0'));
  });

  it('on a failure in the 2nd plugin, DELs the whole chain in reverse and throws the plugin error', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    h.executor.behaviours.set('second', (call) =>
      call.command === 'ADD' ? fail(11, 'try again later', 'iptables lock held') : ok(),
    );
    const err = await h.manager.setUp(attachment()).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(CniPluginError);
    expect(err).toMatchObject({ plugin: 'second', command: 'ADD', cniCode: 11, cniMsg: 'try again later', details: 'iptables lock held', code: 'Internal' });
    expect((err as Error).message).toBe('CNI plugin second failed on ADD (code 11): try again later: iptables lock held');
    // Every plugin is deleted, including the third that never ran; there is no result to pass.
    expect(h.executor.sequence()).toEqual(['ADD first', 'ADD second', 'DEL third', 'DEL second', 'DEL first']);
    for (const call of h.executor.calls.filter((c) => c.command === 'DEL')) {
      expect(call.config).not.toHaveProperty('prevResult');
      expect(call.env['CNI_ARGS']).toContain('K8S_POD_NAME=web');
    }
    expect(await cacheFile(h)).toBeUndefined();
  });

  it('keeps the cache entry when the DEL after a failed ADD fails too', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    h.executor.behaviours.set('third', (call) => (call.command === 'ADD' ? fail(7, 'bad') : fail(5, 'io')));
    await expect(h.manager.setUp(attachment())).rejects.toMatchObject({ plugin: 'third', cniCode: 7 });
    expect(await cacheFile(h)).toMatchObject({ networkName: 'testnet' });
    // A later tearDown retries with the same inputs.
    h.executor.behaviours.delete('third');
    h.executor.reset();
    await h.manager.tearDown({ containerId: 'sandbox1', netnsPath: LIVE_NETNS, ifName: 'eth0' });
    expect(h.executor.sequence()).toEqual(['DEL third', 'DEL second', 'DEL first']);
    expect(await cacheFile(h)).toBeUndefined();
  });

  it('reports an unparsable result as a plugin error', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    h.executor.behaviours.set('first', (call) => (call.command === 'ADD' ? { stdout: 'ok!', stderr: '', exitCode: 0 } : ok()));
    const err = (await h.manager.setUp(attachment()).catch((e: unknown) => e)) as CniPluginError;
    expect(err).toBeInstanceOf(CniPluginError);
    expect(err.message).toMatch(/CNI plugin first failed on ADD: printed an unusable result: invalid CNI result: not JSON: ok!/);
  });

  it('uses stderr when a plugin fails without error JSON', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    h.executor.behaviours.set('first', () => ({ stdout: '', stderr: 'segmentation fault\n', exitCode: 139 }));
    await expect(h.manager.setUp(attachment())).rejects.toMatchObject({
      plugin: 'first',
      cniCode: undefined,
      message: 'CNI plugin first failed on ADD: exited with status 139: segmentation fault',
    });
  });

  it('fails before running anything when a plugin binary is missing', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', [{ type: 'first' }, { type: 'calico' }]) });
    await expect(h.manager.setUp(attachment())).rejects.toMatchObject({ plugin: 'calico', message: expect.stringMatching(/executable not found/) });
    expect(h.executor.calls).toEqual([]);
    expect(await cacheFile(h)).toBeUndefined();
  });

  it('rejects bad CNI args, container ids and interface names before running anything', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    await expect(h.manager.setUp(attachment({ args: [['K8S_POD_NAME', 'a;b']] }))).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(h.manager.setUp(attachment({ containerId: '../etc' }))).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(h.manager.setUp(attachment({ ifName: 'eth0/x' }))).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(h.manager.setUp(attachment({ ifName: 'a-very-long-ifname' }))).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(h.executor.calls).toEqual([]);
    expect(await fs.readdir(h.cacheDir)).toEqual([]);
  });

  it('refuses to set up without a network', async () => {
    const h = await harness({});
    await expect(h.manager.setUp(attachment())).rejects.toBeInstanceOf(FailedPreconditionError);
  });
});

describe('CniNetworkManager.tearDown', () => {
  it('runs DEL in reverse order with the cached result as prevResult and removes the cache entry', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    await h.manager.setUp(attachment());
    h.executor.reset();
    await h.manager.tearDown({ containerId: 'sandbox1', netnsPath: LIVE_NETNS, ifName: 'eth0' });

    expect(h.executor.sequence()).toEqual(['DEL third', 'DEL second', 'DEL first']);
    for (const call of h.executor.calls) {
      expect(call.config['prevResult']).toEqual(resultAsVersion(ipamResult, '1.0.0'));
      expect(call.env['CNI_NETNS']).toBe(LIVE_NETNS);
      expect(call.env['CNI_ARGS']).toContain('K8S_POD_UID=uid-1');
    }
    expect(h.executor.calls[1]?.config['runtimeConfig']).toEqual({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
    expect(await cacheFile(h)).toBeUndefined();
  });

  it('passes no prevResult on DEL for lists older than 0.4.0', async () => {
    const h = await harness({ '10-test.conflist': conflist('oldnet', THREE_PLUGINS, '0.3.1') });
    await h.manager.setUp(attachment());
    h.executor.reset();
    await h.manager.tearDown({ containerId: 'sandbox1', netnsPath: LIVE_NETNS, ifName: 'eth0' });
    expect(h.executor.sequence()).toEqual(['DEL third', 'DEL second', 'DEL first']);
    for (const call of h.executor.calls) expect(call.config).not.toHaveProperty('prevResult');
  });

  it('replays the cached config and args after the conf dir changed and the daemon restarted', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    await h.manager.setUp(attachment());
    h.manager.close();
    await fs.rm(path.join(h.confDir, '10-test.conflist'));
    await fs.writeFile(path.join(h.confDir, '05-new.conflist'), JSON.stringify(conflist('newnet', [{ type: 'other' }])));

    const restarted = await h.restart();
    expect(restarted.status().networkName).toBe('newnet');
    h.executor.reset();
    // The caller knows nothing but the ids, as after a restart.
    await restarted.tearDown({ containerId: 'sandbox1', netnsPath: LIVE_NETNS, ifName: 'eth0' });

    expect(h.executor.sequence()).toEqual(['DEL third', 'DEL second', 'DEL first']);
    for (const call of h.executor.calls) {
      expect(call.config['name']).toBe('testnet');
      expect(call.env['CNI_ARGS']).toContain('K8S_POD_NAMESPACE=default');
    }
    expect(await cacheFile(h)).toBeUndefined();
  });

  it('passes an empty CNI_NETNS when the netns is gone', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    const notANetns = path.join(h.root, 'stale-netns');
    await fs.writeFile(notANetns, '');
    await h.manager.setUp(attachment({ netnsPath: notANetns }));
    h.executor.reset();
    await h.manager.tearDown({ containerId: 'sandbox1', netnsPath: notANetns, ifName: 'eth0' });
    for (const call of h.executor.calls) expect(call.env['CNI_NETNS']).toBe('');

    await h.manager.setUp(attachment({ netnsPath: path.join(h.root, 'missing') }));
    h.executor.reset();
    await h.manager.tearDown({ containerId: 'sandbox1', netnsPath: path.join(h.root, 'missing'), ifName: 'eth0' });
    expect(h.executor.calls.map((c) => c.env['CNI_NETNS'])).toEqual(['', '', '']);
  });

  it('without a cache entry, uses the current network and the caller\'s args', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    await h.manager.tearDown({ containerId: 'sandbox9', netnsPath: '', ifName: 'eth0', args: [['IgnoreUnknown', '1']] });
    expect(h.executor.sequence()).toEqual(['DEL third', 'DEL second', 'DEL first']);
    for (const call of h.executor.calls) {
      expect(call.env['CNI_ARGS']).toBe('IgnoreUnknown=1');
      expect(call.config).not.toHaveProperty('prevResult');
    }
  });

  it('without a cache entry and without a network, does nothing', async () => {
    const h = await harness({});
    await h.manager.tearDown({ containerId: 'sandbox1', netnsPath: '', ifName: 'eth0' });
    expect(h.executor.calls).toEqual([]);
  });

  it('attempts every plugin, throws the first DEL failure and keeps the cache entry for a retry', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    await h.manager.setUp(attachment());
    h.executor.reset();
    h.executor.behaviours.set('second', (call) => (call.command === 'DEL' ? fail(11, 'busy', 'xtables lock') : chainedPlugin(call)));
    h.executor.behaviours.set('first', (call) => (call.command === 'DEL' ? fail(5, 'io error') : chainedPlugin(call)));

    const err = await h.manager.tearDown({ containerId: 'sandbox1', netnsPath: LIVE_NETNS, ifName: 'eth0' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniPluginError);
    expect(err).toMatchObject({ plugin: 'second', command: 'DEL', cniCode: 11, cniMsg: 'busy', details: 'xtables lock' });
    expect(h.executor.sequence()).toEqual(['DEL third', 'DEL second', 'DEL first']);
    expect(await cacheFile(h)).toMatchObject({ networkName: 'testnet' });

    h.executor.behaviours.clear();
    h.executor.reset();
    await h.manager.tearDown({ containerId: 'sandbox1', netnsPath: LIVE_NETNS, ifName: 'eth0' });
    expect(h.executor.sequence()).toEqual(['DEL third', 'DEL second', 'DEL first']);
    expect(h.executor.calls[0]?.config['prevResult']).toEqual(resultAsVersion(ipamResult, '1.0.0'));
    expect(await cacheFile(h)).toBeUndefined();
  });

  it('falls back to the current network when the cache entry is corrupt', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', [{ type: 'first' }]) });
    await fs.mkdir(h.cacheDir, { recursive: true });
    await fs.writeFile(path.join(h.cacheDir, 'sandbox1-eth0.json'), '{"version": 1, "containerId": ');
    await h.manager.tearDown({ containerId: 'sandbox1', netnsPath: '', ifName: 'eth0' });
    expect(h.executor.sequence()).toEqual(['DEL first']);
    expect(await cacheFile(h)).toBeUndefined();
  });

  it('runs DEL with the cached inputs when ADD was interrupted before finishing', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    const entry = {
      version: 1,
      containerId: 'sandbox1',
      ifName: 'eth0',
      netnsPath: '',
      networkName: 'crashed',
      source: '/gone.conflist',
      config: conflist('crashed', [{ type: 'other' }]),
      args: [['K8S_POD_NAME', 'web']],
      capabilityArgs: {},
    };
    await fs.writeFile(path.join(h.cacheDir, 'sandbox1-eth0.json'), JSON.stringify(entry));
    await h.manager.tearDown({ containerId: 'sandbox1', netnsPath: '', ifName: 'eth0' });
    expect(h.executor.sequence()).toEqual(['DEL other']);
    expect(h.executor.calls[0]?.config).not.toHaveProperty('prevResult');
    expect(h.executor.calls[0]?.config['name']).toBe('crashed');
    expect(h.executor.calls[0]?.env['CNI_ARGS']).toBe('K8S_POD_NAME=web');
  });
});

describe('CniNetworkManager.check', () => {
  it('runs CHECK in order with the cached result', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS, '0.4.0') });
    await h.manager.setUp(attachment());
    h.executor.reset();
    await h.manager.check({ containerId: 'sandbox1', netnsPath: LIVE_NETNS, ifName: 'eth0' });
    expect(h.executor.sequence()).toEqual(['CHECK first', 'CHECK second', 'CHECK third']);
    for (const call of h.executor.calls) expect(call.config['prevResult']).toEqual(resultAsVersion(ipamResult, '0.4.0'));
  });

  it('throws the first CHECK failure', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    await h.manager.setUp(attachment());
    h.executor.reset();
    h.executor.behaviours.set('second', (call) => (call.command === 'CHECK' ? fail(3, 'interface eth0 missing') : chainedPlugin(call)));
    await expect(h.manager.check({ containerId: 'sandbox1', netnsPath: LIVE_NETNS, ifName: 'eth0' })).rejects.toMatchObject({ command: 'CHECK', plugin: 'second', cniCode: 3 });
    expect(h.executor.sequence()).toEqual(['CHECK first', 'CHECK second']);
  });

  it('skips CHECK when disabled or before spec 0.4.0', async () => {
    for (const list of [conflist('n', THREE_PLUGINS, '1.0.0', { disableCheck: true }), conflist('n', THREE_PLUGINS, '0.3.1')]) {
      const h = await harness({ '10-test.conflist': list });
      await h.manager.setUp(attachment());
      h.executor.reset();
      await h.manager.check({ containerId: 'sandbox1', netnsPath: LIVE_NETNS, ifName: 'eth0' });
      expect(h.executor.calls).toEqual([]);
    }
  });

  it('needs a completed ADD', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) });
    await expect(h.manager.check({ containerId: 'sandbox1', netnsPath: LIVE_NETNS, ifName: 'eth0' })).rejects.toBeInstanceOf(FailedPreconditionError);
  });
});

describe('CniNetworkManager.status and conf dir handling', () => {
  it('is not ready without any config', async () => {
    const h = await harness({});
    expect(h.manager.status()).toEqual({
      ready: false,
      reason: 'NetworkPluginNotReady',
      message: `no CNI network config in ${h.confDir} (no *.conflist, *.conf or *.json file)`,
    });
  });

  it('says which files were rejected and why', async () => {
    const h = await harness({ '10-x.conf': '{ nope', '20-y.conflist': conflist('y', [], '1.0.0') });
    const status = h.manager.status();
    expect(status.ready).toBe(false);
    expect(status.message).toMatch(new RegExp(`^no valid CNI network config in ${h.confDir} \\(10-x.conf: invalid JSON.*; 20-y.conflist: network "y" has no "plugins"\\)$`));
  });

  it('keeps the first valid network selected while its plugin binary is missing', async () => {
    const h = await harness({
      '10-calico.conflist': conflist('k8s-pod-network', [{ type: 'calico' }, { type: 'portmap' }]),
      '20-fallback.conflist': conflist('fallback', [{ type: 'first' }]),
    });
    expect(h.manager.status()).toEqual({
      ready: false,
      reason: 'NetworkPluginNotReady',
      message: `plugin "calico" of network "k8s-pod-network" not found in ${h.binDir}`,
      networkName: 'k8s-pod-network',
      source: path.join(h.confDir, '10-calico.conflist'),
    });
    // Installing the binary is enough; no conf dir change is needed.
    await fs.writeFile(path.join(h.binDir, 'calico'), '', { mode: 0o755 });
    expect(h.manager.status()).toMatchObject({ ready: true, networkName: 'k8s-pod-network' });
  });

  it('writes the default network when the conf dir holds no valid one', async () => {
    const h = await harness({ '10-broken.conflist': '{' }, { defaultNetwork: { name: 'tscri-default', bridge: 'tscri0', subnet: '10.88.0.0/16' } });
    const written = JSON.parse(await fs.readFile(path.join(h.confDir, DEFAULT_NETWORK_FILE), 'utf8')) as Record<string, unknown>;
    expect(written['name']).toBe('tscri-default');
    expect(h.manager.status()).toEqual({
      ready: true,
      reason: '',
      message: '',
      networkName: 'tscri-default',
      source: path.join(h.confDir, DEFAULT_NETWORK_FILE),
    });
  });

  it('does not write the default network when a valid one exists', async () => {
    const h = await harness({ '10-test.conflist': conflist('testnet', THREE_PLUGINS) }, { defaultNetwork: { name: 'd', bridge: 'b0', subnet: '10.1.0.0/16' } });
    expect(await fs.readdir(h.confDir)).toEqual(['10-test.conflist']);
  });

  it('reloads when the conf dir changes', async () => {
    const h = await harness({ '20-test.conflist': conflist('testnet', THREE_PLUGINS) });
    expect(h.manager.status().networkName).toBe('testnet');
    await fs.writeFile(path.join(h.confDir, '10-new.conflist'), JSON.stringify(conflist('newnet', [{ type: 'other' }])));
    await until(() => h.manager.status().networkName === 'newnet');
    await fs.rm(path.join(h.confDir, '10-new.conflist'));
    await until(() => h.manager.status().networkName === 'testnet');
  });

  it('lets an operation finish with the network it started with while a reload happens', async () => {
    const h = await harness({ '20-test.conflist': conflist('testnet', THREE_PLUGINS) });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    h.executor.behaviours.set('first', async (call) => {
      if (call.command === 'ADD') await gate;
      return chainedPlugin(call);
    });
    const pending = h.manager.setUp(attachment());
    await until(() => h.executor.calls.length === 1);

    await fs.writeFile(path.join(h.confDir, '10-new.conflist'), JSON.stringify(conflist('newnet', [{ type: 'other' }])));
    await until(() => h.manager.status().networkName === 'newnet');
    release();

    const result = await pending;
    expect(result.networkName).toBe('testnet');
    expect(h.executor.sequence()).toEqual(['ADD first', 'ADD second', 'ADD third']);
    expect(h.executor.calls.every((c) => c.config['name'] === 'testnet')).toBe(true);

    h.executor.reset();
    await h.manager.setUp(attachment({ containerId: 'sandbox2' }));
    expect(h.executor.sequence()).toEqual(['ADD other']);
  });
});
