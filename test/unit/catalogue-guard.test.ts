import { describe, expect, it } from 'vitest';
import { callArguments, checkFileAgainstCatalogue, nameTag } from '../e2e/catalogue-guard.js';
import { isPodIptablesLine, leftoversSince } from '../e2e/host.js';

const CATALOGUE = ['busybox:1.0', 'busybox:latest', 'user:uid', 'user:name', 'stopsignal:1.0'];
const check = (text: string) => checkFileAgainstCatalogue('test/e2e/x.test.ts', text, CATALOGUE);

describe('the test image catalogue guard', () => {
  it('accepts images the catalogue builds, with the default tag or an explicit one', () => {
    expect(check(`const a = testImage('busybox');\nconst b = testImage("busybox", 'latest'); testImage('user:uid');`)).toEqual([]);
  });

  it('names the file, the line and the image a test pulls but no run builds', () => {
    expect(check(`import x;\n\n  await pull(testImage('stopsignal', '2.0'));\n  testImage('gone')`)).toEqual([
      { file: 'test/e2e/x.test.ts', line: 3, message: 'pulls tscri-test/stopsignal:2.0, which hack/test-images.mjs does not build' },
      { file: 'test/e2e/x.test.ts', line: 4, message: 'pulls tscri-test/gone:1.0, which hack/test-images.mjs does not build' },
    ]);
  });

  it('checks only the name when the tag is computed, and refuses a computed name', () => {
    expect(check(`for (const tag of tags) testImage('user', tag);`)).toEqual([]);
    expect(check(`for (const tag of tags) testImage('nobody', tag);`)[0]!.message).toMatch(/builds no nobody image/);
    expect(check('testImage(name)')[0]!.message).toMatch(/testImage\(name\): write the image name as a string literal/);
    expect(check('testImage(`${name}`)')[0]!.message).toMatch(/string literal/);
  });

  it('insists that an image meant to be absent is absent', () => {
    expect(check(`absentTestImage('no-such-image')`)).toEqual([]);
    expect(check(`absentTestImage('busybox')`)[0]!.message).toMatch(/names an image the catalogue builds/);
  });

  it('checks references spelled out in full', () => {
    expect(check(`const ref = 'mirror.invalid/tscri-test/busybox:1.0';`)).toEqual([]);
    expect(check(`const ref = 'mirror.invalid/tscri-test/stopsignal:9';`)[0]!.message).toMatch(/tscri-test\/stopsignal:9/);
  });

  it('skips the definition of testImage itself and names in comments', () => {
    expect(check('export function testImage(name: string, tag?: string): string {')).toEqual([]);
    expect(check(`/** What testImage(name) pulls */\n// testImage('gone')\nconst url = 'http://x'; testImage('gone2')`)).toEqual([
      { file: 'test/e2e/x.test.ts', line: 3, message: 'pulls tscri-test/gone2:1.0, which hack/test-images.mjs does not build' },
    ]);
  });

  it('reads arguments past nested calls and strings with commas', () => {
    const text = `f(g(1, 2), 'a,b', [x, y])`;
    expect(callArguments(text, 2)).toEqual([{ expression: 'g(1, 2)' }, { literal: 'a,b' }, { expression: '[x, y]' }]);
  });

  it('gives an untagged name the tag 1.0', () => {
    expect([nameTag('busybox'), nameTag('user:uid'), nameTag('user', 'name')]).toEqual(['busybox:1.0', 'user:uid', 'user:name']);
  });
});

describe('what a test run leaves on the host', () => {
  it('counts per-pod iptables chains and rules, not portmap’s shared chains', () => {
    expect(isPodIptablesLine(':CNI-HOSTPORT-DNAT - [0:0]')).toBe(false);
    expect(isPodIptablesLine('-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT')).toBe(false);
    expect(isPodIptablesLine(':CNI-DN-1f2e3d4c5b6a79880a1b2 - [0:0]')).toBe(true);
    expect(isPodIptablesLine('-A CNI-HOSTPORT-DNAT -p tcp -j CNI-DN-1f2e3d4c5b6a79880a1b2')).toBe(true);
    expect(isPodIptablesLine('-A INPUT -j ACCEPT')).toBe(false);
  });

  it('reports only what appeared during the run', () => {
    const before = { netns: new Set(['old']), links: new Set(['lo', 'eth0']), iptables: new Set<string>(), cgroups: new Set(['memory/process_api']), cniState: new Set(['.']) };
    const after = {
      netns: new Set(['old', 'cni-1']),
      links: new Set(['lo', 'eth0', 'veth1']),
      iptables: new Set([':CNI-DN-x - [0:0]']),
      cgroups: new Set(['memory/process_api', 'memory/etc']),
      cniState: new Set(['.', 'networks', 'networks/pods']),
    };
    expect(leftoversSince(before, after)).toEqual([
      'netns cni-1',
      'link veth1',
      'iptables :CNI-DN-x - [0:0]',
      'cgroup memory/etc',
      '/var/lib/cni networks',
      '/var/lib/cni networks/pods',
    ]);
  });
});
