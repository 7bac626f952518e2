import { describe, expect, it } from 'vitest';
import { parseQualifiedName } from '../../src/cdi/names.js';
import { InvalidCdiSpecError, minimumVersion, parseSpec } from '../../src/cdi/parse.js';
import { cdiRequestsOf } from '../../src/cdi/requests.js';
import { InvalidArgumentError } from '../../src/errors.js';

const gpu = (extra: Record<string, unknown> = {}) => ({
  cdiVersion: '0.3.0',
  kind: 'vendor.com/gpu',
  devices: [{ name: 'gpu0', containerEdits: { env: ['GPU=0'] } }],
  ...extra,
});
const json = (value: unknown): string => JSON.stringify(value);
const problemOf = (text: string, format: 'json' | 'yaml' = 'json'): string => {
  try {
    parseSpec(text, format);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidCdiSpecError);
    return (err as Error).message;
  }
  throw new Error('expected the spec to be refused');
};

describe('CDI spec files', () => {
  it('reads a complete spec in JSON and the same spec in YAML', () => {
    const spec = {
      cdiVersion: '1.1.0',
      kind: 'vendor.com/gpu',
      annotations: { owner: 'driver' },
      containerEdits: { env: ['VENDOR=1'], hooks: [{ hookName: 'createContainer', path: '/usr/bin/hook', args: ['hook', 'x'], env: ['A=b'], timeout: 5 }] },
      devices: [
        {
          name: '0000:01:00.0',
          containerEdits: {
            deviceNodes: [{ path: '/dev/gpu0', hostPath: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666, permissions: 'rw', uid: 1, gid: 2 }],
            mounts: [{ hostPath: '/usr/lib/vendor', containerPath: '/usr/lib/vendor', options: ['ro', 'rbind'], type: 'bind' }],
            additionalGids: [44],
            intelRdt: { closID: 'gpu' },
          },
        },
      ],
    };
    expect(parseSpec(json(spec), 'json')).toEqual(spec);
    const yaml = `---
cdiVersion: "1.1.0"
kind: vendor.com/gpu
annotations:
  owner: driver
containerEdits:
  env: [VENDOR=1]
  hooks:
    - hookName: createContainer
      path: /usr/bin/hook
      args: [hook, x]
      env: [A=b]
      timeout: 5
devices:
  - name: "0000:01:00.0"
    containerEdits:
      deviceNodes:
        - {path: /dev/gpu0, hostPath: /dev/null, type: c, major: 1, minor: 3, fileMode: 0666, permissions: rw, uid: 1, gid: 2}
      mounts:
        - {hostPath: /usr/lib/vendor, containerPath: /usr/lib/vendor, options: [ro, rbind], type: bind}
      additionalGids: [44]
      intelRdt: {closID: gpu}
`;
    expect(parseSpec(yaml, 'yaml')).toEqual(spec);
  });

  it.each([
    ['an unknown version', gpu({ cdiVersion: '9.9.9' }), /not a known CDI version/],
    ['a missing version', gpu({ cdiVersion: undefined }), /cdiVersion is required/],
    ['a kind without a class', gpu({ kind: 'vendor.com' }), /vendor\/class/],
    ['a class with a slash', gpu({ kind: 'vendor.com/a/b' }), /invalid class/],
    ['a vendor starting with a digit', gpu({ kind: '1vendor/gpu' }), /invalid vendor/],
    ['no devices', gpu({ devices: [] }), /at least one device/],
    ['a device name with a slash', gpu({ devices: [{ name: 'a/b', containerEdits: { env: ['A=1'] } }] }), /not a valid device name/],
    ['a device without edits', gpu({ devices: [{ name: 'gpu0', containerEdits: {} }] }), /must not be empty/],
    ['the same device twice', gpu({ devices: [{ name: 'a', containerEdits: { env: ['A=1'] } }, { name: 'a', containerEdits: { env: ['A=1'] } }] }), /more than once/],
    ['an unknown field', gpu({ extra: true }), /unknown field "extra"/],
    ['an unknown edit field', gpu({ devices: [{ name: 'a', containerEdits: { env: ['A=1'], devices: [] } }] }), /unknown field "devices"/],
    ['env without "="', gpu({ devices: [{ name: 'a', containerEdits: { env: ['NOVALUE'] } }] }), /NAME=value/],
    ['a string major', gpu({ devices: [{ name: 'a', containerEdits: { deviceNodes: [{ path: '/dev/a', major: '1' }] } }] }), /major must be an integer/],
    ['a relative device path', gpu({ devices: [{ name: 'a', containerEdits: { deviceNodes: [{ path: 'dev/a' }] } }] }), /absolute path/],
    ['a bad device type', gpu({ devices: [{ name: 'a', containerEdits: { deviceNodes: [{ path: '/dev/a', type: 'x' }] } }] }), /one of b, c, u, p/],
    ['bad permissions', gpu({ devices: [{ name: 'a', containerEdits: { deviceNodes: [{ path: '/dev/a', permissions: 'rx' }] } }] }), /combination of r, w and m/],
    ['an unknown hook', gpu({ devices: [{ name: 'a', containerEdits: { hooks: [{ hookName: 'prerun', path: '/bin/true' }] } }] }), /hookName "prerun"/],
    ['a hook without a path', gpu({ devices: [{ name: 'a', containerEdits: { hooks: [{ hookName: 'poststop' }] } }] }), /path is required/],
    ['a NUL in a string', gpu({ devices: [{ name: 'a', containerEdits: { env: ['A=\0'] } }] }), /NUL/],
    ['a negative gid', gpu({ cdiVersion: '0.7.0', devices: [{ name: 'a', containerEdits: { additionalGids: [-1] } }] }), /between 0 and/],
    ['not an object', [1, 2], /must be an object/],
  ])('refuses %s', (_what, spec, problem) => {
    expect(problemOf(json(spec))).toMatch(problem);
  });

  it('refuses text that is not JSON or YAML, and several YAML documents', () => {
    expect(problemOf('{', 'json')).toMatch(/not valid JSON/);
    expect(problemOf('a: [', 'yaml')).toMatch(/not valid YAML/);
    expect(problemOf(`${json(gpu())}\n---\n${json(gpu())}`, 'yaml')).toMatch(/not valid YAML/);
    expect(problemOf('', 'yaml')).toMatch(/must be an object/);
  });

  it('refuses a field newer than the declared version, and accepts it from that version on', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ devices: [{ name: 'a', containerEdits: { mounts: [{ hostPath: '/a', containerPath: '/a', type: 'bind' }] } }] }, '0.4.0'],
      [{ devices: [{ name: 'a', containerEdits: { deviceNodes: [{ path: '/dev/a', hostPath: '/dev/b' }] } }] }, '0.5.0'],
      [{ devices: [{ name: '0a', containerEdits: { env: ['A=1'] } }] }, '0.5.0'],
      [{ annotations: { a: 'b' } }, '0.6.0'],
      [{ kind: 'vendor.com/gpu.v2' }, '0.6.0'],
      [{ containerEdits: { additionalGids: [5] } }, '0.7.0'],
      [{ devices: [{ name: 'a', containerEdits: { intelRdt: { closID: 'x' } } }] }, '0.7.0'],
      [{ devices: [{ name: 'a', containerEdits: { netDevices: [{ hostInterfaceName: 'eth1', name: 'net1' }] } }] }, '1.1.0'],
      [{ devices: [{ name: 'a', containerEdits: { intelRdt: { schemata: ['L3:0=f'] } } }] }, '1.1.0'],
    ];
    for (const [extra, needed] of cases) {
      expect(problemOf(json(gpu(extra)))).toContain(`need at least ${needed}`);
      const spec = parseSpec(json(gpu({ ...extra, cdiVersion: `v${needed}` })), 'json');
      expect(minimumVersion(spec)).toBe(needed);
    }
  });

  it('keeps a "__proto__" annotation a plain key', () => {
    const text = '{"cdiVersion":"0.6.0","kind":"v.com/c","annotations":{"__proto__":"x"},"devices":[{"name":"a","containerEdits":{"env":["A=1"]}}]}';
    const spec = parseSpec(text, 'json');
    expect(Object.getPrototypeOf(spec.annotations)).toBe(Object.prototype);
    expect(Object.keys(spec.annotations!)).toEqual(['__proto__']);
  });
});

describe('CDI device names', () => {
  it.each(['vendor.com/gpu=0', 'a/b=c', 'nvidia.com/gpu=GPU-4e7f:1', 'v.com/class.v2=dev_1-x'])('accepts %s', (name) => {
    expect(parseQualifiedName(name)).not.toHaveProperty('problem');
  });

  it.each(['', 'gpu0', '/dev/gpu0', 'vendor.com/gpu', 'vendor.com/gpu=', 'vendor.com/=gpu0', '/gpu=0', 'vendor.com/a/b=0', 'vendor.com/gpu=a=b', 'vendor.com/gpu=-a', '1v/gpu=0'])(
    'refuses %j',
    (name) => {
      expect(parseQualifiedName(name)).toHaveProperty('problem');
    },
  );
});

describe('CDI requests of a container', () => {
  it('takes CDI_devices in order, then annotation names it lacks, without duplicates', () => {
    const requests = cdiRequestsOf({
      CDI_devices: [{ name: 'vendor.com/gpu=1' }, { name: 'vendor.com/gpu=0' }, { name: 'vendor.com/gpu=1' }],
      annotations: { 'cdi.k8s.io/plugin_b': 'vendor.com/nic=a,vendor.com/gpu=0', 'cdi.k8s.io/plugin_a': 'vendor.com/nic=z', other: 'x=y' },
    });
    expect(requests).toEqual([
      { name: 'vendor.com/gpu=1', field: 'config.CDI_devices[0].name', source: 'config' },
      { name: 'vendor.com/gpu=0', field: 'config.CDI_devices[1].name', source: 'config' },
      { name: 'vendor.com/nic=z', field: 'config.annotations["cdi.k8s.io/plugin_a"]', source: 'annotation' },
      { name: 'vendor.com/nic=a', field: 'config.annotations["cdi.k8s.io/plugin_b"]', source: 'annotation' },
    ]);
  });

  it('refuses a bad name with the field that holds it', () => {
    expect(() => cdiRequestsOf({ CDI_devices: [{ name: 'vendor.com/gpu=0' }, { name: 'gpu1' }], annotations: {} })).toThrow(
      new InvalidArgumentError('config.CDI_devices[1].name "gpu1" is not a qualified CDI device name ("vendor.com/class=name")'),
    );
    expect(() => cdiRequestsOf({ CDI_devices: [], annotations: { 'cdi.k8s.io/x': 'vendor.com/gpu=0,' } })).toThrow(/config.annotations\["cdi.k8s.io\/x"\] "" is not a qualified/);
    expect(() => cdiRequestsOf({ CDI_devices: [], annotations: { 'cdi.k8s.io/x': '' } })).toThrow(InvalidArgumentError);
  });
});
