import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_PLUGIN_TIMEOUT_MS,
  ProcessPluginExecutor,
  findPlugin,
  invokePlugin,
  pluginEnv,
  pluginFailure,
} from '../../src/network/cni/exec.js';
import { CniPluginError } from '../../src/network/cni/errors.js';
import { parseConfig } from '../../src/config/config.js';
import { expectAllDead } from './processes.js';

const TEST_PLUGIN = fileURLToPath(new URL('../fixtures/cni/tscri-test-plugin', import.meta.url));

let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-cni-exec-'));
});

afterAll(async () => {
  // Whatever a failed test left running.
  for (const pid of await writtenPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  await fs.rm(dir, { recursive: true, force: true });
});

/** The pids hostile plugins wrote to `<dir>/*.pids`. */
async function writtenPids(name?: string): Promise<number[]> {
  const files = (await fs.readdir(dir)).filter((f) => (name ? f === `${name}.pids` : f.endsWith('.pids')));
  const texts = await Promise.all(files.map((f) => fs.readFile(path.join(dir, f), 'utf8')));
  return texts.flatMap((t) => t.split(/\s+/).filter(Boolean).map(Number));
}

async function script(name: string, body: string, mode = 0o755): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, body, { mode });
  return file;
}

describe('CniPluginError', () => {
  it('puts the plugin\'s code, msg and details into the message', () => {
    const err = new CniPluginError({ plugin: 'bridge', command: 'ADD', cniCode: 11, cniMsg: 'try again', details: 'lock held' });
    expect(err.message).toBe('CNI plugin bridge failed on ADD (code 11): try again: lock held');
    expect(err.code).toBe('Internal');
    expect(err).toMatchObject({ plugin: 'bridge', command: 'ADD', cniCode: 11, cniMsg: 'try again', details: 'lock held' });
    expect(new CniPluginError({ plugin: 'portmap', command: 'DEL', cniMsg: 'boom' }).message).toBe('CNI plugin portmap failed on DEL: boom');
  });
});

describe('pluginFailure', () => {
  it('reads the spec\'s error JSON from stdout', () => {
    const stdout = JSON.stringify({ cniVersion: '1.0.0', code: 7, msg: 'invalid config', details: 'bridge name too long' });
    const err = pluginFailure('bridge', 'ADD', { stdout, stderr: 'log noise', exitCode: 1 });
    expect(err).toMatchObject({ cniCode: 7, cniMsg: 'invalid config', details: 'bridge name too long' });
  });

  it('falls back to stderr when stdout holds no error JSON', () => {
    const err = pluginFailure('calico', 'ADD', { stdout: '', stderr: 'panic: runtime error\n', exitCode: 2 });
    expect(err.cniCode).toBeUndefined();
    expect(err.cniMsg).toBe('exited with status 2');
    expect(err.details).toBe('panic: runtime error');
  });

  it('stringifies non-string details', () => {
    const stdout = JSON.stringify({ code: 100, msg: 'x', details: { a: 1 } });
    expect(pluginFailure('p', 'DEL', { stdout, stderr: '', exitCode: 1 }).details).toBe('{"a":1}');
  });
});

describe('pluginEnv', () => {
  it('sets the CNI variables and PATH, nothing else', () => {
    const env = pluginEnv({
      command: 'DEL',
      containerId: 'c1',
      netnsPath: '',
      ifName: 'eth0',
      cniArgs: 'IgnoreUnknown=1',
      binDirs: ['/opt/cni/bin', '/usr/lib/cni'],
    });
    expect(Object.keys(env).sort()).toEqual(['CNI_ARGS', 'CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_NETNS', 'CNI_PATH', 'PATH']);
    expect(env).toMatchObject({ CNI_COMMAND: 'DEL', CNI_NETNS: '', CNI_PATH: '/opt/cni/bin:/usr/lib/cni' });
  });
});

describe('findPlugin', () => {
  it('takes the first executable file over the dirs in order', async () => {
    const first = path.join(dir, 'first');
    const second = path.join(dir, 'second');
    await fs.mkdir(first);
    await fs.mkdir(second);
    await fs.writeFile(path.join(first, 'noexec'), '', { mode: 0o644 });
    await fs.writeFile(path.join(second, 'noexec'), '', { mode: 0o755 });
    await fs.mkdir(path.join(first, 'adir'));
    await fs.writeFile(path.join(second, 'both'), '', { mode: 0o755 });
    await fs.writeFile(path.join(first, 'both'), '', { mode: 0o755 });
    const dirs = [first, second];
    expect(await findPlugin('both', dirs)).toBe(path.join(first, 'both'));
    expect(await findPlugin('noexec', dirs)).toBe(path.join(second, 'noexec'));
    expect(await findPlugin('adir', dirs)).toBeUndefined();
    expect(await findPlugin('absent', dirs)).toBeUndefined();
    expect(findPlugin('noexec', dirs)).toBe(path.join(second, 'noexec'));
    expect(findPlugin('absent', dirs)).toBeUndefined();
  });
});

describe('ProcessPluginExecutor', () => {
  const executor = new ProcessPluginExecutor(10_000);
  let env: Record<string, string>;
  beforeAll(() => {
    env = pluginEnv({ command: 'ADD', containerId: 'c1', netnsPath: '/x', ifName: 'eth0', cniArgs: '', binDirs: [dir] });
  });

  it('feeds the config on stdin and returns stdout', async () => {
    const stdout = await invokePlugin(executor, 'ADD', { type: 'tscri-test-plugin', pluginPath: TEST_PLUGIN, env, config: { cniVersion: '0.4.0', name: 'n', type: 't' } });
    expect(JSON.parse(stdout)).toEqual({ cniVersion: '0.4.0', interfaces: [], ips: [], routes: [], dns: {} });
  });

  it('turns the plugin\'s error JSON into a CniPluginError', async () => {
    const config = { cniVersion: '1.0.0', name: 'n', type: 't', failOn: 'ADD', failCode: 11, failMsg: 'busy', failDetails: 'retry later' };
    const err = await invokePlugin(executor, 'ADD', { type: 'tscri-test-plugin', pluginPath: TEST_PLUGIN, env, config }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniPluginError);
    expect((err as CniPluginError).message).toBe('CNI plugin tscri-test-plugin failed on ADD (code 11): busy: retry later');
  });

  it('passes exactly the given environment', async () => {
    process.env['TSCRI_SHOULD_NOT_LEAK'] = '1';
    try {
      // PATH left out: under npx it is long, and errors quote only the start of stderr.
      const plugin = await script('env-dump', '#!/bin/sh\nenv | grep -v ^PATH= >&2\nexit 3\n');
      const err = (await invokePlugin(executor, 'ADD', { type: 'env-dump', pluginPath: plugin, env, config: {} }).catch((e: unknown) => e)) as CniPluginError;
      expect(err.cniMsg).toBe('exited with status 3');
      expect(err.details).toContain('CNI_COMMAND=ADD');
      expect(err.details).toContain(`CNI_PATH=${dir}`);
      expect(err.details).not.toContain('TSCRI_SHOULD_NOT_LEAK');
    } finally {
      delete process.env['TSCRI_SHOULD_NOT_LEAK'];
    }
  });

  it('gives up on a plugin that hangs, and kills it with the processes it started', async () => {
    const pids = path.join(dir, 'hang.pids');
    const plugin = await script('hang', `#!/bin/sh\necho $$ >> ${pids}\nsleep 30 &\necho $! >> ${pids}\nwait\n`);
    const started = Date.now();
    const err = (await invokePlugin(new ProcessPluginExecutor(200), 'DEL', { type: 'hang', pluginPath: plugin, env, config: {} }).catch((e: unknown) => e)) as CniPluginError;
    expect(Date.now() - started).toBeLessThan(2500);
    expect(err).toBeInstanceOf(CniPluginError);
    expect(err.message).toMatch(/^CNI plugin hang failed on DEL: could not run .*hang: timed out after 200 ms/);
    const all = await writtenPids('hang');
    expect(all).toHaveLength(2);
    await expectAllDead(all);
  }, 10_000);

  it('answers when the plugin exits though a child of its holds stdout, and kills that child', async () => {
    const pids = path.join(dir, 'fork.pids');
    const plugin = await script(
      'fork-and-exit',
      `#!/bin/sh\ncat >/dev/null\nsleep 30 &\necho $! >> ${pids}\necho '{"cniVersion":"1.0.0","ips":[]}'\n`,
    );
    const started = Date.now();
    const stdout = await invokePlugin(new ProcessPluginExecutor(20_000), 'ADD', { type: 'fork', pluginPath: plugin, env, config: {} });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(JSON.parse(stdout)).toEqual({ cniVersion: '1.0.0', ips: [] });
    await expectAllDead(await writtenPids('fork'));
  }, 10_000);

  it('kills a plugin that prints megabytes and quotes only a little of it', async () => {
    const plugin = await script('flood', '#!/bin/sh\nhead -c 52428800 /dev/zero | tr "\\0" x\n');
    const started = Date.now();
    const err = (await invokePlugin(executor, 'ADD', { type: 'flood', pluginPath: plugin, env, config: {} }).catch((e: unknown) => e)) as CniPluginError;
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err).toBeInstanceOf(CniPluginError);
    expect(err.message).toBe(`CNI plugin flood failed on ADD: could not run ${plugin}: printed more than 1048576 bytes on stdout; killed`);
  }, 10_000);

  it('quotes at most a few hundred characters of a failed plugin\'s output or message', async () => {
    const noisy = await script('noisy', '#!/bin/sh\nhead -c 100000 /dev/zero | tr "\\0" e >&2\nexit 1\n');
    const err = (await invokePlugin(executor, 'ADD', { type: 'noisy', pluginPath: noisy, env, config: {} }).catch((e: unknown) => e)) as CniPluginError;
    expect(err.message).toMatch(/^CNI plugin noisy failed on ADD: exited with status 1: eeee/);
    expect(err.message.length).toBeLessThan(600);
    const msg = 'm'.repeat(100_000);
    const verbose = pluginFailure('verbose', 'ADD', { stdout: JSON.stringify({ code: 1, msg, details: msg }), stderr: '', exitCode: 1 });
    expect(verbose.message.length).toBeLessThan(1000);
  });

  it('reports a plugin that cannot be started', async () => {
    const plugin = await script('not-exec', '#!/bin/sh\n', 0o644);
    const err = (await invokePlugin(executor, 'ADD', { type: 'not-exec', pluginPath: plugin, env, config: {} }).catch((e: unknown) => e)) as CniPluginError;
    expect(err).toBeInstanceOf(CniPluginError);
    expect(err.message).toMatch(/could not run/);
  });
});

describe('[cni] plugin_timeout_seconds', () => {
  it('sets the plugin timeout, 180 s unless given, and refuses what is not 1 to 3600 seconds', () => {
    expect(parseConfig('').cni.pluginTimeoutMs).toBe(DEFAULT_PLUGIN_TIMEOUT_MS);
    expect(parseConfig('[cni]\nplugin_timeout_seconds = 3').cni.pluginTimeoutMs).toBe(3000);
    expect(() => parseConfig('[cni]\nplugin_timeout_seconds = 0')).toThrow('config.cni.plugin_timeout_seconds: must be between 1 and 3600');
    expect(() => parseConfig('[cni]\nplugin_timeout_seconds = 3601')).toThrow('must be between 1 and 3600');
    expect(() => parseConfig('[cni]\nplugin_timeout_seconds = "3"')).toThrow('config.cni.plugin_timeout_seconds: must be an integer');
  });
});
