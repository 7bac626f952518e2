import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import {
  checkBenchSubnet,
  cniConflist,
  containerdConfig,
  formatMB,
  formatMs,
  formatRatio,
  networkRules,
  percentile,
  pluginConfig,
  ratio,
  ratiosOf,
  renderComparison,
  renderMarkdown,
  renderText,
  RESULT_SCHEMA,
  splitRuleLine,
  spread,
  summarize,
  tomlString,
  tscriConfig,
  type BenchResult,
} from '../../hack/lib/bench.mjs';
import { parseConfig } from '../../src/config/config.js';

describe('bench statistics', () => {
  it('interpolates percentiles between closest ranks', () => {
    expect(percentile([3, 1, 2], 0.5)).toBe(2);
    expect(percentile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9)).toBeCloseTo(9.1);
    expect(percentile([7], 0.9)).toBe(7);
    expect(percentile([5, 1], 0)).toBe(1);
    expect(percentile([5, 1], 1)).toBe(5);
    expect(percentile([], 0.5)).toBeNaN();
    expect(() => percentile([1], 1.5)).toThrow(RangeError);
  });

  it('does not reorder the caller’s samples', () => {
    const samples = [3, 1, 2];
    percentile(samples, 0.5);
    expect(samples).toEqual([3, 1, 2]);
  });

  it('summarizes samples rounded to hundredths', () => {
    const s = summarize([10.123, 20.456, 30.789, 40, 50]);
    expect(s).toMatchObject({ n: 5, p50: 30.79, p90: 46, min: 10.12, max: 50, mean: 30.27 });
    expect(s.samples).toEqual([10.12, 20.46, 30.79, 40, 50]);
    expect(summarize([])).toEqual({ n: 0 });
  });

  it('gives ratios only between present, positive figures', () => {
    expect(ratio(50, 100)).toBe(0.5);
    expect(ratio(50, 0)).toBeUndefined();
    expect(ratio(undefined, 10)).toBeUndefined();
    expect(ratio(10, NaN)).toBeUndefined();
  });

  it('writes ratios with two significant digits', () => {
    expect(formatRatio(0.456)).toBe('0.46×');
    expect(formatRatio(1)).toBe('1.0×');
    expect(formatRatio(2.345)).toBe('2.3×');
    expect(formatRatio(9.96)).toBe('10.0×');
    expect(formatRatio(12.4)).toBe('12×');
    expect(formatRatio(undefined)).toBe('–');
    expect(formatRatio(Infinity)).toBe('–');
  });

  it('writes milliseconds and megabytes', () => {
    expect(formatMs(9.87)).toBe('9.9');
    expect(formatMs(99.94)).toBe('99.9');
    expect(formatMs(106.4)).toBe('106');
    expect(formatMs(undefined)).toBe('–');
    expect(formatMB(3 * 1024 * 1024)).toBe('3.0 MB');
    expect(formatMB(undefined)).toBe('–');
  });

  it('measures the spread of one figure over runs', () => {
    expect(spread([100, 110, 105])).toEqual({ min: 100, max: 110, spread: 0.1 });
    expect(spread([undefined, 5])).toEqual({ min: 5, max: 5, spread: 0 });
    expect(spread([undefined])).toBeUndefined();
  });
});

const options = {
  socket: '/tmp/tsbench-x/tscri/tscri.sock',
  root: '/tmp/tsbench-x/tscri/root',
  state: '/tmp/tsbench-x/tscri/state',
  sandboxImage: 'bench.tscri.test/bench/pause:1.0',
  cniConfDir: '/tmp/tsbench-x/tscri/net.d',
  mirrorHost: 'bench.tscri.test',
  mirrorEndpoint: 'http://127.0.0.1:41234',
};

describe('bench configurations', () => {
  it('writes a tscri config that tscri itself accepts', () => {
    const config = parseConfig(tscriConfig({ ...options, cniBinDirs: ['/usr/lib/cni'], cgroupParent: '/tsbench-abc-tscri' }));
    expect(config).toMatchObject({
      socketPath: options.socket,
      root: options.root,
      state: options.state,
      sandboxImage: options.sandboxImage,
      logLevel: 'warn',
      cgroupDriver: 'cgroupfs',
      defaultCgroupParent: '/tsbench-abc-tscri',
      cni: { confDir: options.cniConfDir, binDirs: ['/usr/lib/cni'], defaultNetwork: false },
      registry: { mirrors: { 'bench.tscri.test': { endpoints: ['http://127.0.0.1:41234'] } } },
    });
  });

  it('writes a containerd 1.6 config with its own dirs, the mirror and cgroupfs', () => {
    const text = containerdConfig({
      ...options,
      socket: '/tmp/tsbench-x/containerd/containerd.sock',
      optDir: '/tmp/tsbench-x/containerd/opt',
      runcRoot: '/tmp/tsbench-x/containerd/runc',
      cniBinDir: '/usr/lib/cni',
    });
    const doc = parse(text) as Record<string, any>;
    expect(doc['version']).toBe(2);
    expect(doc['root']).toBe(options.root);
    expect(doc['grpc']).toEqual({ address: '/tmp/tsbench-x/containerd/containerd.sock' });
    expect(doc['ttrpc']).toEqual({ address: '/tmp/tsbench-x/containerd/containerd.sock.ttrpc' });
    expect(doc['plugins']['io.containerd.internal.v1.opt']).toEqual({ path: '/tmp/tsbench-x/containerd/opt' });
    const cri = doc['plugins']['io.containerd.grpc.v1.cri'];
    expect(cri.sandbox_image).toBe(options.sandboxImage);
    expect(cri.containerd.snapshotter).toBe('overlayfs');
    expect(cri.containerd.runtimes.runc).toMatchObject({ runtime_type: 'io.containerd.runc.v2', options: { SystemdCgroup: false, Root: '/tmp/tsbench-x/containerd/runc' } });
    expect(cri.cni).toEqual({ bin_dir: '/usr/lib/cni', conf_dir: options.cniConfDir, max_conf_num: 1 });
    expect(cri.registry.mirrors).toEqual({ 'bench.tscri.test': { endpoint: ['http://127.0.0.1:41234'] } });
  });

  it('escapes TOML strings', () => {
    expect(tomlString('a"b\\c\n')).toBe('"a\\"b\\\\c\\n"');
    expect(parse(`x = ${tomlString('q"\u0001\\')}`)).toEqual({ x: 'q"\u0001\\' });
  });

  it('builds the shared CNI chain on a /24 of 10.88.0.0/16 only', () => {
    const conflist = cniConflist({ name: 'tsbench-tscri-abc', bridge: 'tsbench-ts', subnet: '10.88.201.0/24', dataDir: '/tmp/x/ipam' });
    expect(conflist.plugins.map((p) => p['type'])).toEqual(['bridge', 'portmap']);
    expect(conflist.plugins[0]).toMatchObject({ bridge: 'tsbench-ts', ipam: { type: 'host-local', ranges: [[{ subnet: '10.88.201.0/24' }]], dataDir: '/tmp/x/ipam' } });
    expect(() => cniConflist({ name: 'n', bridge: 'b', subnet: '10.89.0.0/24', dataDir: '/x' })).toThrow(/10\.88\.0\.0\/16/);
    expect(() => cniConflist({ name: 'n', bridge: 'b', subnet: '10.88.0.0/16', dataDir: '/x' })).toThrow();
    expect(() => cniConflist({ name: 'n', bridge: 'a-name-that-is-too-long', subnet: '10.88.1.0/24', dataDir: '/x' })).toThrow(/interface name/);
    expect(checkBenchSubnet('10.88.255.0/24')).toBe('10.88.255.0/24');
    expect(() => checkBenchSubnet('10.88.256.0/24')).toThrow();
  });

  it('hands each plugin the chain’s name and version, port mappings and the previous result', () => {
    const conflist = cniConflist({ name: 'net', bridge: 'br', subnet: '10.88.9.0/24', dataDir: '/d' });
    expect(pluginConfig(conflist, 0)).toMatchObject({ type: 'bridge', name: 'net', cniVersion: '1.0.0' });
    expect(pluginConfig(conflist, 0)).not.toHaveProperty('prevResult');
    expect(pluginConfig(conflist, 1, { ips: [] })).toMatchObject({ type: 'portmap', runtimeConfig: { portMappings: [] }, prevResult: { ips: [] } });
  });
});

describe('bench iptables sweep', () => {
  it('splits iptables-save lines as a shell would', () => {
    expect(splitRuleLine('-A POSTROUTING -s 10.88.201.5/32 -m comment --comment "name: \\"net\\" id: \\"abc\\"" -j CNI-0123')).toEqual([
      '-A', 'POSTROUTING', '-s', '10.88.201.5/32', '-m', 'comment', '--comment', 'name: "net" id: "abc"', '-j', 'CNI-0123',
    ]);
    expect(splitRuleLine('-A X  -j  ACCEPT ')).toEqual(['-A', 'X', '-j', 'ACCEPT']);
    expect(() => splitRuleLine('-A X --comment "open')).toThrow(/unterminated/);
  });

  it('finds only the rules and chains of its own network', () => {
    const save = [
      '*nat',
      ':CNI-aaaaaaaaaaaaaaaaaaaaaaaa - [0:0]',
      '-A POSTROUTING -s 10.88.201.5/32 -m comment --comment "name: \\"tsbench-tscri-abc\\" id: \\"p1\\"" -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa',
      '-A POSTROUTING -s 10.88.100.5/32 -m comment --comment "name: \\"tse2e-1\\" id: \\"p2\\"" -j CNI-bbbbbbbbbbbbbbbbbbbbbbbb',
      '-A POSTROUTING -s 10.88.201.9/32 -m comment --comment "name: \\"tsbench-tscri-abcd\\" id: \\"p3\\"" -j CNI-cccccccccccccccccccccccc',
      '-A CNI-aaaaaaaaaaaaaaaaaaaaaaaa -d 10.88.201.0/24 -m comment --comment "name: \\"tsbench-tscri-abc\\" id: \\"p1\\"" -j ACCEPT',
      'COMMIT',
    ].join('\n');
    const { rules, chains } = networkRules(save, 'tsbench-tscri-abc');
    expect(chains).toEqual(['CNI-aaaaaaaaaaaaaaaaaaaaaaaa']);
    expect(rules).toEqual([
      ['-D', 'POSTROUTING', '-s', '10.88.201.5/32', '-m', 'comment', '--comment', 'name: "tsbench-tscri-abc" id: "p1"', '-j', 'CNI-aaaaaaaaaaaaaaaaaaaaaaaa'],
      ['-D', 'CNI-aaaaaaaaaaaaaaaaaaaaaaaa', '-d', '10.88.201.0/24', '-m', 'comment', '--comment', 'name: "tsbench-tscri-abc" id: "p1"', '-j', 'ACCEPT'],
    ]);
  });
});

const op = (p50: number, p90: number) => ({ n: 50, p50, p90 });
const memory = (daemon: number, total: number) => ({
  podCount: 20,
  daemon: { rss: daemon, unique: daemon / 2, count: 1 },
  monitors: { rss: total - daemon, unique: (total - daemon) / 2, count: 20, names: ['conmon'] },
  pods: { rss: 0, unique: 0, count: 20, names: ['pause'] },
  perPod: { rss: (total - daemon) / 20, unique: (total - daemon) / 40 },
  total: { rss: total, unique: total / 2 },
});
const MB = 1024 * 1024;
const result: BenchResult = {
  schema: RESULT_SCHEMA,
  date: '2026-01-01T00:00:00Z',
  host: { os: 'Debian GNU/Linux 12 (bookworm)', kernel: '6.1.0', cpuModel: 'CPU', cores: 2, memoryBytes: 4096 * MB, cgroup: 'v1' },
  params: { pods: 50, parallel: 2, pulls: 20, memoryPods: 20, warmup: 2, stopTimeoutSeconds: 0 },
  tools: { node: 'v20', containerd: '1.6.20' },
  images: { pull: { reference: 'bench.tscri.test/bench/payload:1.0', layers: 4, compressedBytes: 3 * MB, unpackedBytes: 5 * MB } },
  floor: { operations: { netnsAdd: op(9.5, 11), cniAdd: op(64, 71) } },
  runtimes: {
    tscri: { operations: { RunPodSandbox: op(150, 180), PullImage: op(200, 220) }, memory: memory(100 * MB, 160 * MB) },
    containerd: { operations: { RunPodSandbox: op(200, 240), PullImage: op(100, 110) }, memory: memory(50 * MB, 320 * MB) },
  },
};

describe('bench reports', () => {
  it('computes tscri/containerd ratios per operation and for memory', () => {
    const r = ratiosOf(result);
    expect(r.operations?.['RunPodSandbox']).toEqual({ p50: 0.75, p90: 0.75 });
    expect(r.operations?.['PullImage']).toEqual({ p50: 2, p90: 2 });
    expect(r.operations).not.toHaveProperty('StopPodSandbox');
    expect(r.memory).toMatchObject({ daemonRss: 2, totalRss: 0.5, totalUnique: 0.5 });
    expect(ratiosOf({ ...result, runtimes: { tscri: result.runtimes.tscri! } })).toEqual({});
  });

  it('renders a text table with both runtimes, ratios, memory and the floor', () => {
    const text = renderText(result);
    expect(text).toMatch(/kernel 6\.1\.0 · CPU × 2 cores/);
    expect(text).toMatch(/RunPodSandbox\s+│\s+150\s+180\s+│\s+200\s+240\s+│\s+0\.75×\s+0\.75×/);
    expect(text).toMatch(/PullImage\s+│\s+200\s+220\s+│\s+100\s+110\s+│\s+2\.0×\s+2\.0×/);
    expect(text).not.toMatch(/StopPodSandbox/);
    expect(text).toMatch(/daemon\s+│\s+100\.0 MB\s+50\.0 MB\s+│\s+50\.0 MB\s+25\.0 MB\s+│\s+2\.0×/);
    expect(text).toMatch(/total\s+│\s+160\.0 MB\s+80\.0 MB\s+│\s+320\.0 MB\s+160\.0 MB\s+│\s+0\.50×\s+0\.50×/);
    expect(text).toMatch(/ip netns add\s+│\s+9\.5\s+11\.0/);
  });

  it('renders one runtime without ratio columns', () => {
    const text = renderText({ ...result, runtimes: { tscri: result.runtimes.tscri! } });
    expect(text).toMatch(/RunPodSandbox\s+│\s+150\s+180$/m);
    expect(text).not.toMatch(/containerd p50/);
  });

  it('renders Markdown tables for the README', () => {
    const md = renderMarkdown(result);
    expect(md).toContain('| operation, ms | tscri p50 | tscri p90 | containerd p50 | containerd p90 | tscri/containerd p50 | p90 |');
    expect(md).toContain('| RunPodSandbox | 150 | 180 | 200 | 240 | 0.75× | 0.75× |');
    expect(md).toContain('| total | 160.0 MB (80.0 MB) | 320.0 MB (160.0 MB) | 0.50× (0.50×) |');
    expect(md).toContain('| CNI ADD (bridge, portmap) | 64.0 | 71.0 |');
  });

  it('compares runs with the spread of each p50', () => {
    const second = structuredClone(result);
    second.runtimes.tscri!.operations['RunPodSandbox'] = op(165, 190);
    const text = renderComparison([result, second]);
    expect(text).toMatch(/RunPodSandbox\s+│\s+150\s+165\s+│ 10%/);
    expect(text).toMatch(/tscri\/containerd p50/);
    expect(text).toMatch(/RunPodSandbox\s+│\s+0\.75×\s+0\.82×/);
  });
});
