import { describe, it, expect } from 'vitest';
import {
  parseResult,
  parseResultOutput,
  prevResultFor,
  resultAsVersion,
} from '../../src/network/cni/result.js';
import { CniResultError } from '../../src/network/cni/errors.js';
import type { NetworkResult } from '../../src/network/cni/types.js';

const interfaces = [
  { name: 'cni0', mac: '00:11:22:33:44:55' },
  { name: 'veth1', mac: '55:44:33:22:11:11' },
  { name: 'eth0', mac: '99:88:77:66:55:44', sandbox: '/run/netns/blue' },
];

/** What every modern version below normalises to. */
const normalised: NetworkResult = {
  cniVersion: '1.0.0',
  interfaces,
  ips: [
    { address: '10.88.250.5/24', gateway: '10.88.250.1', interface: 2 },
    { address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
  ],
  routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::1' }],
  dns: { nameservers: ['10.88.250.1'], domain: 'example', search: ['a.example'], options: ['ndots:5'] },
};

function v04Shape(version: string): Record<string, unknown> {
  return {
    cniVersion: version,
    interfaces,
    ips: [
      { version: '4', address: '10.88.250.5/24', gateway: '10.88.250.1', interface: 2 },
      { version: '6', address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
    ],
    routes: normalised.routes,
    dns: normalised.dns,
  };
}

function v1Shape(version: string): Record<string, unknown> {
  return {
    cniVersion: version,
    interfaces,
    ips: [
      { address: '10.88.250.5/24', gateway: '10.88.250.1', interface: 2 },
      { address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
    ],
    routes: normalised.routes,
    dns: normalised.dns,
  };
}

describe('parseResult', () => {
  it.each(['0.3.0', '0.3.1', '0.4.0'])('parses a %s result', (version) => {
    expect(parseResult(v04Shape(version))).toEqual(normalised);
  });

  it.each(['1.0.0', '1.1.0'])('parses a %s result', (version) => {
    expect(parseResult(v1Shape(version))).toEqual(normalised);
  });

  it.each(['0.1.0', '0.2.0'])('parses a legacy %s result with ip4/ip6', (version) => {
    const legacy = {
      cniVersion: version,
      ip4: { ip: '10.88.250.5/24', gateway: '10.88.250.1', routes: [{ dst: '0.0.0.0/0' }] },
      ip6: { ip: 'fd00::5/64', gateway: 'fd00::1', routes: [{ dst: '::/0', gw: 'fd00::1' }] },
      dns: { nameservers: ['10.88.250.1'] },
    };
    expect(parseResult(legacy)).toEqual({
      cniVersion: '1.0.0',
      interfaces: [],
      ips: [
        { address: '10.88.250.5/24', gateway: '10.88.250.1' },
        { address: 'fd00::5/64', gateway: 'fd00::1' },
      ],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::1' }],
      dns: { nameservers: ['10.88.250.1'] },
    });
  });

  it('ignores fields it does not model (1.1.0 route attributes, plugin extras)', () => {
    const result = parseResult({
      cniVersion: '1.1.0',
      ips: [{ address: '10.88.250.5/24' }],
      routes: [{ dst: '0.0.0.0/0', mtu: 1400, table: 10 }],
      vendorExtra: { x: 1 },
    });
    expect(result).toEqual({ cniVersion: '1.0.0', interfaces: [], ips: [{ address: '10.88.250.5/24' }], routes: [{ dst: '0.0.0.0/0' }], dns: {} });
  });

  it('uses the fallback version when the result has none', () => {
    expect(parseResult({ ips: [{ version: '4', address: '10.0.0.1/8' }] }, '0.4.0').ips).toEqual([{ address: '10.0.0.1/8' }]);
    expect(() => parseResult({ ips: [] })).toThrow(/missing "cniVersion"/);
  });

  it('rejects garbage clearly', () => {
    expect(() => parseResultOutput('')).toThrow(/invalid CNI result: empty output/);
    expect(() => parseResultOutput('hello')).toThrow(/not JSON: hello/);
    expect(() => parseResult([])).toThrow(/not a JSON object/);
    expect(() => parseResult({ cniVersion: '0.5.0' })).toThrow(/unsupported cniVersion "0.5.0"/);
    expect(() => parseResult({ cniVersion: '1.0.0', ips: {} })).toThrow(/"ips" is not a list/);
    expect(() => parseResult({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.1' }] })).toThrow(/ips\[0\]\.address must be an address in CIDR/);
    expect(() => parseResult({ cniVersion: '0.4.0', ips: [{ version: 4, address: '10.0.0.1/8' }] })).toThrow(/version must be "4" or "6"/);
    expect(() => parseResult({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.1/8', interface: -1 }] })).toThrow(/interface/);
    expect(() => parseResult({ cniVersion: '1.0.0', interfaces: [{ mac: 'x' }] })).toThrow(/interfaces\[0\] has no "name"/);
    expect(() => parseResult({ cniVersion: '1.0.0', dns: { nameservers: 'x' } })).toThrow(/dns.nameservers/);
    expect(() => parseResult({ cniVersion: '0.2.0', ip4: { ip: 'nope' } })).toThrow(/ip4.ip/);
    expect(() => parseResult({ cniVersion: '1.0.0', routes: [{ gw: '10.0.0.1' }] })).toThrow(CniResultError);
  });

  it('keeps the raw output alongside the parsed result', () => {
    const raw = v1Shape('1.0.0');
    const parsed = parseResultOutput(JSON.stringify(raw) + '\n');
    expect(parsed.raw).toEqual(raw);
    expect(parsed.result).toEqual(normalised);
  });
});

describe('resultAsVersion', () => {
  it.each(['0.3.0', '0.3.1', '0.4.0'])('adds version "4"/"6" to each ip for %s', (version) => {
    expect(resultAsVersion(normalised, version)).toEqual(v04Shape(version));
  });

  it.each(['1.0.0', '1.1.0'])('has no version on the ips for %s', (version) => {
    const converted = resultAsVersion(normalised, version);
    expect(converted).toEqual(v1Shape(version));
    for (const ip of converted['ips'] as Array<Record<string, unknown>>) expect(ip).not.toHaveProperty('version');
  });

  it('renders the legacy ip4/ip6 shape for 0.2.0', () => {
    expect(resultAsVersion(normalised, '0.2.0')).toEqual({
      cniVersion: '0.2.0',
      ip4: { ip: '10.88.250.5/24', gateway: '10.88.250.1', routes: [{ dst: '0.0.0.0/0' }] },
      ip6: { ip: 'fd00::5/64', gateway: 'fd00::1', routes: [{ dst: '::/0', gw: 'fd00::1' }] },
      dns: normalised.dns,
    });
  });

  it('round-trips through every version', () => {
    for (const version of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
      expect(parseResult(resultAsVersion(normalised, version))).toEqual(normalised);
    }
  });
});

describe('prevResultFor', () => {
  it('passes a result already in the chain\'s version through verbatim, extras included', () => {
    const raw = { ...v1Shape('1.0.0'), pluginExtra: { keep: true } };
    expect(prevResultFor(raw, '1.0.0')).toBe(raw);
  });

  it('converts a result of another version', () => {
    expect(prevResultFor(v1Shape('1.0.0'), '0.4.0')).toEqual(v04Shape('0.4.0'));
    expect(prevResultFor(v04Shape('0.3.1'), '1.0.0')).toEqual(v1Shape('1.0.0'));
    expect(prevResultFor(v04Shape('0.3.1'), '0.4.0')).toEqual(v04Shape('0.4.0'));
  });
});
