import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DEFAULT_NETWORK_FILE,
  compareCniVersions,
  defaultNetworkConfig,
  listConfigFiles,
  loadNetworkConfig,
  parseNetworkConfigList,
  parseNetworkFile,
} from '../../src/network/cni/config.js';

let dir: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-cni-config-'));
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function put(name: string, content: unknown): Promise<void> {
  await fs.writeFile(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
}

const list = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  cniVersion: '1.0.0',
  name,
  plugins: [{ type: 'bridge' }],
  ...extra,
});

describe('loadNetworkConfig', () => {
  it('picks the first file in byte order, not numeric or locale order', async () => {
    await put('5-c.conflist', list('net-c'));
    await put('20-b.conflist', list('net-b'));
    await put('10-a.conflist', list('net-a'));
    await put('Z-upper.conflist', list('net-upper'));
    expect(await listConfigFiles(dir)).toEqual(['10-a.conflist', '20-b.conflist', '5-c.conflist', 'Z-upper.conflist']);
    const scan = await loadNetworkConfig(dir);
    expect(scan.network?.config.name).toBe('net-a');
    expect(scan.network?.source).toBe(path.join(dir, '10-a.conflist'));
    expect(scan.rejected).toEqual([]);
  });

  it('only considers .conflist, .conf and .json files', async () => {
    await put('00-notes.txt', list('ignored'));
    await put('01-backup.conf.bak', list('ignored'));
    await put('99-last.json', list('json-net'));
    expect(await listConfigFiles(dir)).toEqual(['99-last.json']);
    expect((await loadNetworkConfig(dir)).network?.config.name).toBe('json-net');
  });

  it('skips invalid files and says why', async () => {
    await put('00-garbage.conflist', '{ not json');
    await put('01-noname.conflist', { cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] });
    await put('02-badversion.conflist', list('v', { cniVersion: '0.5.0' }));
    await put('03-noplugins.conflist', list('p', { plugins: [] }));
    await put('04-notype.conflist', list('t', { plugins: [{ bridge: 'x' }] }));
    await put('05-pathtype.conflist', list('t', { plugins: [{ type: '../bin/sh' }] }));
    await put('06-array.conf', [1, 2]);
    await put('07-good.conflist', list('good'));
    await put('08-never-read.conflist', '{');
    const scan = await loadNetworkConfig(dir);
    expect(scan.network?.config.name).toBe('good');
    expect(scan.rejected.map((r) => r.file)).toEqual([
      '00-garbage.conflist',
      '01-noname.conflist',
      '02-badversion.conflist',
      '03-noplugins.conflist',
      '04-notype.conflist',
      '05-pathtype.conflist',
      '06-array.conf',
    ]);
    const reasons = scan.rejected.map((r) => r.reason);
    expect(reasons[0]).toMatch(/^invalid JSON/);
    expect(reasons[1]).toMatch(/name/);
    expect(reasons[2]).toMatch(/unsupported cniVersion "0.5.0"/);
    expect(reasons[3]).toMatch(/no "plugins"/);
    expect(reasons[4]).toMatch(/plugin #0 has no "type"/);
    expect(reasons[5]).toMatch(/invalid type/);
  });

  it('returns no network for an empty or missing directory', async () => {
    expect(await loadNetworkConfig(dir)).toEqual({ rejected: [] });
    expect(await loadNetworkConfig(path.join(dir, 'absent'))).toEqual({ rejected: [] });
  });
});

describe('parseNetworkFile', () => {
  it('turns a single-plugin .conf into a one-plugin list', () => {
    const conf = { cniVersion: '0.3.1', name: 'single', type: 'bridge', bridge: 'cni0', capabilities: { portMappings: true } };
    const network = parseNetworkFile('10-single.conf', JSON.stringify(conf));
    expect(network.name).toBe('single');
    expect(network.cniVersion).toBe('0.3.1');
    expect(network.disableCheck).toBe(false);
    expect(network.plugins).toHaveLength(1);
    expect(network.plugins[0]?.type).toBe('bridge');
    expect(network.plugins[0]?.raw).toEqual(conf);
    expect(network.plugins[0]?.capabilities).toEqual(['portMappings']);
    expect(network.raw).toEqual({ cniVersion: '0.3.1', name: 'single', plugins: [conf] });
  });

  it('rejects a .conf without type', () => {
    expect(() => parseNetworkFile('a.conf', JSON.stringify({ cniVersion: '1.0.0', name: 'x' }))).toThrow(/no "type"/);
  });

  it('accepts a conflist saved as .json', () => {
    expect(parseNetworkFile('a.json', JSON.stringify(list('in-json'))).plugins).toHaveLength(1);
  });

  it('rejects an unsupported or missing cniVersion', () => {
    expect(() => parseNetworkFile('a.conflist', JSON.stringify(list('x', { cniVersion: '2.0.0' })))).toThrow(/unsupported cniVersion/);
    expect(() => parseNetworkFile('a.conflist', JSON.stringify(list('x', { cniVersion: undefined })))).toThrow(/missing "cniVersion"/);
  });

  it('accepts every supported version', () => {
    for (const v of ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
      expect(parseNetworkFile('a.conflist', JSON.stringify(list('x', { cniVersion: v }))).cniVersion).toBe(v);
    }
  });

  it('picks the highest supported of cniVersions (spec 1.1)', () => {
    const network = parseNetworkFile('a.conflist', JSON.stringify(list('x', { cniVersion: undefined, cniVersions: ['0.4.0', '9.9.9', '1.0.0'] })));
    expect(network.cniVersion).toBe('1.0.0');
  });

  it('honours disableCheck as a boolean or the spec\'s string', () => {
    expect(parseNetworkConfigList(list('x', { disableCheck: true })).disableCheck).toBe(true);
    expect(parseNetworkConfigList(list('x', { disableCheck: 'true' })).disableCheck).toBe(true);
    expect(parseNetworkConfigList(list('x', { disableCheck: 'false' })).disableCheck).toBe(false);
    expect(() => parseNetworkConfigList(list('x', { disableCheck: 'yes' }))).toThrow(/disableCheck/);
  });

  it('keeps only capabilities declared true', () => {
    const network = parseNetworkConfigList(
      list('x', { plugins: [{ type: 'portmap', capabilities: { portMappings: true, bandwidth: false, dns: 'true' } }] }),
    );
    expect(network.plugins[0]?.capabilities).toEqual(['portMappings']);
  });

  it('rejects a network name the spec does not allow', () => {
    expect(() => parseNetworkConfigList(list('bad/name'))).toThrow(/network name/);
  });
});

describe('defaultNetworkConfig', () => {
  it('is a valid bridge + portmap conflist with the subnet and a default route', () => {
    const conf = defaultNetworkConfig({ name: 'tscri-default', bridge: 'tscri0', subnet: '10.88.0.0/16', dataDir: '/var/lib/tscri/ipam' });
    expect(conf).toEqual({
      cniVersion: '1.0.0',
      name: 'tscri-default',
      plugins: [
        {
          type: 'bridge',
          bridge: 'tscri0',
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '10.88.0.0/16' }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: '/var/lib/tscri/ipam',
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    });
    const parsed = parseNetworkFile(DEFAULT_NETWORK_FILE, JSON.stringify(conf));
    expect(parsed.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap']);
    expect(parsed.plugins[1]?.capabilities).toEqual(['portMappings']);
  });

  it('omits dataDir when not given', () => {
    const conf = defaultNetworkConfig({ name: 'n', bridge: 'b0', subnet: '10.1.0.0/24' });
    expect(conf.plugins[0]?.['ipam']).not.toHaveProperty('dataDir');
  });

  it('sorts after the usual numbered config names', () => {
    expect(Buffer.compare(Buffer.from('99-loopback.conf'), Buffer.from(DEFAULT_NETWORK_FILE))).toBeLessThan(0);
    expect(Buffer.compare(Buffer.from('calico.conflist'), Buffer.from(DEFAULT_NETWORK_FILE))).toBeLessThan(0);
  });
});

describe('compareCniVersions', () => {
  it('compares numerically', () => {
    expect(compareCniVersions('0.10.0', '0.9.0')).toBeGreaterThan(0);
    expect(compareCniVersions('0.4.0', '0.4.0')).toBe(0);
    expect(compareCniVersions('0.3.1', '1.0.0')).toBeLessThan(0);
  });
});
