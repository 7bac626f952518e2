import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../src/errors.js';
import { RuntimeInfoService } from '../../src/info/service.js';
import type { NetworkManager } from '../../src/network/cni/types.js';
import { probeHandlers, RuntimeHandlers, type RuntimeHandler } from '../../src/oci/handlers.js';
import { Runc } from '../../src/oci/runc.js';

const log = pino({ level: 'silent' });

function handler(name: string, overrides: Partial<RuntimeHandler> = {}): RuntimeHandler {
  const features = { recursiveReadOnlyMounts: name === 'runc', idmappedMounts: false, userNamespaces: false, runtimeVersion: '1', missing: {} };
  return { name, cli: new Runc(`/bin/${name}`, `/run/${name}`), version: `${name} version 1`, features, ...overrides };
}

describe('RuntimeHandlers.select', () => {
  const handlers = new RuntimeHandlers('runc', [handler('runc'), handler('kata'), handler('crun', { unusable: 'cgroups in hybrid mode not supported' })]);

  it('gives "" the default handler and a name its own', () => {
    expect(handlers.select('').name).toBe('runc');
    expect(handlers.select('kata').name).toBe('kata');
  });

  it('refuses an unknown name as the request\'s mistake, naming what is configured', () => {
    expect(() => handlers.select('gvisor')).toThrow(InvalidArgumentError);
    expect(() => handlers.select('gvisor')).toThrow('runtime_handler: "gvisor" is not configured (this node has: crun, kata, runc)');
  });

  it('refuses a configured runtime that cannot work here as the node\'s, with its reason', () => {
    expect(() => handlers.select('crun')).toThrow(FailedPreconditionError);
    expect(() => handlers.select('crun')).toThrow(/"crun" cannot run containers on this node: cgroups in hybrid mode/);
  });

  it('finds a pod made before handlers existed on runc', () => {
    expect(handlers.get(undefined)?.name).toBe('runc');
  });
});

describe('Status runtime_handlers', () => {
  const network = { status: () => ({ ready: true, reason: '', message: '' }) } as unknown as NetworkManager;

  it('lists usable handlers sorted, the default once more under "", each with its own features', () => {
    const handlers = new RuntimeHandlers('kata', [handler('runc'), handler('kata'), handler('crun', { unusable: 'no' })]);
    const info = new RuntimeInfoService(parseConfig(''), network, handlers);
    const { runtime_handlers } = info.status(false);
    expect(runtime_handlers).toEqual([
      { name: '', features: { recursive_read_only_mounts: false, user_namespaces: false } },
      { name: 'kata', features: { recursive_read_only_mounts: false, user_namespaces: false } },
      { name: 'runc', features: { recursive_read_only_mounts: true, user_namespaces: false } },
    ]);
    const described = JSON.parse(info.status(true).info!.runtimeHandlers!) as Array<Record<string, unknown>>;
    expect(described.find((h) => h.name === 'crun')).toMatchObject({ binary: '/bin/crun', root: '/run/crun', unusable: 'no' });
  });
});

describe('probeHandlers', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-handlers-'));
  });

  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** A runtime with runc's command line whose create fails the way crun 1.8 does on hybrid cgroups. */
  async function fakeRuntime(name: string, createFails: boolean): Promise<string> {
    const file = path.join(dir, name);
    const script = `#!/bin/sh
case "$*" in
  --version) echo "${name} version 9.9"; exit 0;;
  features) echo '{"mountOptions":["rro"],"annotations":{"org.opencontainers.runc.version":"9.9"}}'; exit 0;;
esac
for arg in "$@"; do
  case "$arg" in
    --log=*) log="\${arg#--log=}";;
    create)
      if [ "${createFails}" = true ]; then
        echo '{"msg":"cgroups in hybrid mode not supported, drop all controllers from cgroupv2","level":"error"}' > "$log"; exit 1
      fi
      echo "$*" >> ${path.join(dir, `${name}.creates`)}; exit 0;;
  esac
done
exit 0
`;
    await fs.writeFile(file, script, { mode: 0o755 });
    return file;
  }

  const options = () => ({ scratchDir: path.join(dir, 'probes'), cgroupDriver: 'cgroupfs' as const, cgroupParent: '/tscri-test', log });

  it('probes each handler for its version and features, and marks one whose trial create fails unusable', async () => {
    const good = await fakeRuntime('good', false);
    const bad = await fakeRuntime('bad', true);
    const config = parseConfig(`[runtime.handlers.runc]\npath = "${good}"\n[runtime.handlers.bad]\npath = "${bad}"\n[runtime.handlers.gone]\npath = "${dir}/absent"`);
    const handlers = await probeHandlers(config, options());
    const runc = handlers.get('runc')!;
    expect(runc.version).toBe('good version 9.9');
    expect(runc.features.recursiveReadOnlyMounts).toBe(true);
    expect(runc.unusable).toBeUndefined();
    expect(handlers.get('bad')!.unusable).toBe('cgroups in hybrid mode not supported, drop all controllers from cgroupv2');
    expect(handlers.get('gone')!.unusable).toMatch(/absent is not an executable file/);
    // The trial container is created below the default cgroup parent, and its bundle is gone.
    const created = await fs.readFile(path.join(dir, 'good.creates'), 'utf8');
    expect(created).toMatch(/create --bundle \S+\/probes\/tscri-probe-[0-9a-f]{12} tscri-probe-/);
    expect(await fs.readdir(path.join(dir, 'probes'))).toEqual([]);
  });

  it('refuses to start without the default handler\'s binary', async () => {
    const config = parseConfig(`[runtime.handlers.runc]\npath = "${dir}/absent"`);
    await expect(probeHandlers(config, options())).rejects.toThrow(/runtime handler runc \(the default\): .*absent is not an executable file/);
  });
});
