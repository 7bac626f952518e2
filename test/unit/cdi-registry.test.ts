import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CdiRegistry } from '../../src/cdi/registry.js';
import type { CdiRequest } from '../../src/cdi/types.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../src/errors.js';

const log = pino({ level: 'silent' });

const spec = (kind: string, devices: Record<string, string[]>, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    cdiVersion: '1.1.0',
    kind,
    devices: Object.entries(devices).map(([name, env]) => ({ name, containerEdits: { env } })),
    ...extra,
  });
const asked = (...names: string[]): CdiRequest[] => names.map((name, i) => ({ name, field: `config.CDI_devices[${i}].name`, source: 'config' }));

async function until(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('CDI registry', () => {
  let base: string;
  let etc: string;
  let run: string;
  let registry: CdiRegistry | undefined;

  beforeEach(async () => {
    base = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-cdi-'));
    etc = path.join(base, 'etc');
    run = path.join(base, 'run');
    await fs.mkdir(etc);
  });

  afterEach(async () => {
    registry?.close();
    registry = undefined;
    await fs.rm(base, { recursive: true, force: true });
  });

  async function open(dirs = [etc, run]): Promise<CdiRegistry> {
    registry = new CdiRegistry({ specDirs: dirs, log, debounceMs: 20, recheckMs: 50 });
    await registry.start();
    return registry;
  }

  it('reads .json and .yaml files, skips other names, subdirectories and a missing directory', async () => {
    await fs.writeFile(path.join(etc, 'a.json'), spec('vendor.com/gpu', { g0: ['G=0'] }));
    await fs.writeFile(path.join(etc, 'b.yaml'), 'cdiVersion: 0.3.0\nkind: vendor.com/nic\ndevices:\n  - name: n0\n    containerEdits:\n      env: [N=0]\n');
    await fs.writeFile(path.join(etc, 'c.yml'), spec('vendor.com/yml', { y: ['Y=1'] }));
    await fs.mkdir(path.join(etc, 'sub.json'));
    const r = await open();
    expect(r.deviceNames()).toEqual(['vendor.com/gpu=g0', 'vendor.com/nic=n0']);
    expect(r.problems()).toEqual([]);
  });

  it('skips a bad file with its name and keeps the others', async () => {
    await fs.writeFile(path.join(etc, 'bad.json'), spec('vendor.com/gpu', { g0: ['G=0'] }, { cdiVersion: '7.0.0' }));
    await fs.writeFile(path.join(etc, 'big.json'), ' '.repeat(1024 * 1024 + 1));
    await fs.symlink(path.join(etc, 'good.json'), path.join(etc, 'link.json'));
    await fs.writeFile(path.join(etc, 'good.json'), spec('vendor.com/nic', { n0: ['N=0'] }));
    const r = await open();
    expect(r.deviceNames()).toEqual(['vendor.com/nic=n0']);
    const problems = Object.fromEntries(r.problems().map((p) => [path.basename(p.path), p.reason]));
    expect(problems['bad.json']).toMatch(/not a known CDI version/);
    expect(problems['big.json']).toMatch(/more than 1048576/);
    expect(problems['link.json']).toMatch(/symlink/);
  });

  it('lets a later directory win and makes a device defined twice in one directory unusable', async () => {
    await fs.mkdir(run);
    await fs.writeFile(path.join(etc, 'a.json'), spec('vendor.com/gpu', { g0: ['FROM=etc'], g1: ['FROM=etc'] }));
    await fs.writeFile(path.join(run, 'a.json'), spec('vendor.com/gpu', { g0: ['FROM=run'] }));
    await fs.writeFile(path.join(etc, 'b.json'), spec('vendor.com/gpu', { g1: ['FROM=etc-b'], g2: ['X=1'] }));
    const r = await open();
    expect((await r.resolve(asked('vendor.com/gpu=g0'))).edits.env).toEqual(['FROM=run']);
    expect(r.deviceNames()).toEqual(['vendor.com/gpu=g0', 'vendor.com/gpu=g2']);
    const ambiguous = r.resolve(asked('vendor.com/gpu=g2', 'vendor.com/gpu=g1'));
    await expect(ambiguous).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(ambiguous).rejects.toThrow(`config.CDI_devices[1].name: CDI device "vendor.com/gpu=g1" is ambiguous: conflicting definitions in ${etc}/a.json and ${etc}/b.json`);
    expect(r.problems().map((p) => path.basename(p.path)).sort()).toEqual(['a.json', 'b.json']);
  });

  it('refuses an unknown device by name and field, applying nothing', async () => {
    await fs.writeFile(path.join(etc, 'a.json'), spec('vendor.com/gpu', { '0': ['G=0'] }));
    const r = await open();
    await expect(r.resolve(asked('vendor.com/gpu=0', 'vendor.com/gpu=9'))).rejects.toMatchObject({
      code: 'InvalidArgument',
      message: 'config.CDI_devices[1].name: unknown CDI device "vendor.com/gpu=9"',
    });
  });

  it('applies spec-level edits once, before the first device of that spec', async () => {
    await fs.writeFile(path.join(etc, 'a.json'), spec('vendor.com/gpu', { g0: ['G0=1'], g1: ['G1=1'] }, { containerEdits: { env: ['SPEC=gpu'] } }));
    await fs.writeFile(path.join(etc, 'b.json'), spec('vendor.com/nic', { n0: ['N0=1'] }, { containerEdits: { env: ['SPEC=nic'] } }));
    const r = await open();
    const { devices, edits } = await r.resolve(asked('vendor.com/gpu=g1', 'vendor.com/nic=n0', 'vendor.com/gpu=g0'));
    expect(devices).toEqual(['vendor.com/gpu=g1', 'vendor.com/nic=n0', 'vendor.com/gpu=g0']);
    expect(edits.env).toEqual(['SPEC=gpu', 'G1=1', 'SPEC=nic', 'N0=1', 'G0=1']);
  });

  it('completes device nodes from the host and refuses one the host lacks', async () => {
    const nodes = [
      { path: '/dev/vendor0', hostPath: '/dev/null', permissions: 'rw' },
      { path: '/dev/given', type: 'b', major: 7, minor: 1, hostPath: '/nonexistent/node' },
    ];
    await fs.writeFile(path.join(etc, 'a.json'), spec('vendor.com/gpu', {}, { devices: [{ name: 'g0', containerEdits: { deviceNodes: nodes } }] }));
    await fs.writeFile(path.join(etc, 'b.json'), spec('vendor.com/gone', {}, { devices: [{ name: 'x', containerEdits: { deviceNodes: [{ path: '/dev/nonexistent-tscri' }] } }] }));
    await fs.writeFile(path.join(etc, 'c.json'), spec('vendor.com/file', {}, { devices: [{ name: 'x', containerEdits: { deviceNodes: [{ path: '/dev/f', hostPath: path.join(etc, 'a.json') }] } }] }));
    const r = await open();
    const { edits } = await r.resolve(asked('vendor.com/gpu=g0'));
    const nullMode = Number((await fs.stat('/dev/null')).mode & 0o777);
    expect(edits.deviceNodes).toEqual([
      { path: '/dev/vendor0', hostPath: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: nullMode, permissions: 'rw' },
      { path: '/dev/given', hostPath: '/nonexistent/node', type: 'b', major: 7, minor: 1 },
    ]);
    await expect(r.resolve(asked('vendor.com/gone=x'))).rejects.toThrow(FailedPreconditionError);
    await expect(r.resolve(asked('vendor.com/file=x'))).rejects.toThrow(/is not a device node/);
  });

  it('refuses edits the OCI runtime cannot apply', async () => {
    await fs.writeFile(path.join(etc, 'a.json'), spec('vendor.com/nic', {}, { devices: [{ name: 'n', containerEdits: { netDevices: [{ hostInterfaceName: 'eth9', name: 'net0' }] } }] }));
    const r = await open();
    await expect(r.resolve(asked('vendor.com/nic=n'))).rejects.toThrow(/needs netDevices/);
  });

  it('reloads when a file is written, changed or removed', async () => {
    const r = await open();
    expect(r.deviceNames()).toEqual([]);
    const file = path.join(etc, 'late.json');
    await fs.writeFile(file, spec('vendor.com/gpu', { g0: ['V=1'] }));
    await until(() => r.deviceNames().length === 1, 'the new file');
    await fs.writeFile(file, spec('vendor.com/gpu', { g0: ['V=2'], g1: ['V=2'] }));
    await until(() => r.deviceNames().length === 2, 'the changed file');
    expect((await r.resolve(asked('vendor.com/gpu=g1'))).edits.env).toEqual(['V=2']);
    await fs.rm(file);
    await until(() => r.deviceNames().length === 0, 'the removal');
  });

  it('resolves against a change seen but not yet reloaded', async () => {
    registry = new CdiRegistry({ specDirs: [etc], log, debounceMs: 60_000, recheckMs: 60_000 });
    await registry.start();
    await fs.writeFile(path.join(etc, 'a.json'), spec('vendor.com/gpu', { g0: ['G=0'] }));
    // The watch event arrives within a few milliseconds; the debounce would wait a minute.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await registry.resolve(asked('vendor.com/gpu=g0'))).edits.env).toEqual(['G=0']);
  });

  it('watches a directory made after the start, and again after it was removed and made anew', async () => {
    const r = await open();
    await fs.mkdir(run);
    await fs.writeFile(path.join(run, 'a.json'), spec('vendor.com/gpu', { g0: ['G=0'] }));
    await until(() => r.deviceNames().length === 1, 'the new directory');
    await fs.rm(run, { recursive: true });
    await until(() => r.deviceNames().length === 0, 'the removed directory');
    await fs.mkdir(run);
    await fs.writeFile(path.join(run, 'b.json'), spec('vendor.com/nic', { n0: ['N=0'] }));
    await until(() => r.deviceNames().join() === 'vendor.com/nic=n0', 'the directory made anew');
    await fs.writeFile(path.join(run, 'c.json'), spec('vendor.com/nic', { n1: ['N=1'] }));
    await until(() => r.deviceNames().length === 2, 'a file in the directory made anew');
    // Removed and made again at once, before any reload: the old watch must not be trusted.
    await fs.rm(run, { recursive: true });
    await fs.mkdir(run);
    await fs.writeFile(path.join(run, 'd.json'), spec('vendor.com/fast', { f: ['F=1'] }));
    await until(() => r.deviceNames().join() === 'vendor.com/fast=f', 'the directory replaced at once');
    await fs.writeFile(path.join(run, 'e.json'), spec('vendor.com/fast', { g: ['G=1'] }));
    await until(() => r.deviceNames().length === 2, 'a file in the replaced directory');
  });

  it('with CDI off, refuses CDI_devices and ignores annotations', async () => {
    const r = await open([]);
    await expect(r.resolve(asked('vendor.com/gpu=0'))).rejects.toThrow(FailedPreconditionError);
    const fromAnnotation = await r.resolve([{ name: 'vendor.com/gpu=0', field: 'config.annotations["cdi.k8s.io/x"]', source: 'annotation' }]);
    expect(fromAnnotation.devices).toEqual([]);
  });
});
