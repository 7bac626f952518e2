/**
 * The CRI's cgroup reader (metrics/cgroup-cri.ts) over fixture trees: the same answers as the
 * full reader (cgroups/stats.ts) for every field CRI stats carry, files kept open and read
 * afresh, limits read again only when their version changes, and the small-file reader.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cgroupDirs, detectHierarchy } from '../../src/cgroups/paths.js';
import { readCgroupStats } from '../../src/cgroups/stats.js';
import { parseKeyed, readSmallFile } from '../../src/cgroups/files.js';
import { parsePsi } from '../../src/cgroups/psi.js';
import { CriCgroupReader, keyedValue, parsePressure } from '../../src/metrics/cgroup-cri.js';
import { hybridUnified, PSI_CPU, PSI_IO, PSI_MEMORY, removeTree, v1Cgroup, v2Cgroup, writeTree, type Files } from './cgroup-fixtures.js';

const MiB = 1024 * 1024;
const CGROUP = '/kubepods/burstable/pod123/abc';

const LAYOUTS: Record<string, Files> = {
  'v1': v1Cgroup(CGROUP),
  'v1 hybrid': { ...v1Cgroup(CGROUP), ...hybridUnified(CGROUP) },
  'v1 without swap accounting or limits': v1Cgroup(CGROUP, {
    [`memory${CGROUP}/memory.limit_in_bytes`]: '9223372036854771712\n',
    [`memory${CGROUP}/memory.memsw.usage_in_bytes`]: null,
    [`memory${CGROUP}/memory.memsw.limit_in_bytes`]: null,
  }),
  'v2': v2Cgroup(CGROUP),
  'v2 with a limit': v2Cgroup(CGROUP, { [`${CGROUP}/memory.max`]: `${256 * MiB}\n` }),
};

describe('the CRI cgroup reader', () => {
  const trees: string[] = [];
  afterAll(() => Promise.all(trees.map(removeTree)));

  async function dirsOf(files: Files) {
    const root = await writeTree(files);
    trees.push(root);
    return { root, dirs: cgroupDirs(detectHierarchy(root), 'cgroupfs', CGROUP) };
  }

  for (const [name, files] of Object.entries(LAYOUTS)) {
    it(`answers what the full reader answers for the CRI's fields (${name})`, async () => {
      const { dirs } = await dirsOf(files);
      const full = (await readCgroupStats(dirs))!;
      const lean = new CriCgroupReader().read('abc', () => dirs, { processes: true, psi: true, limits: { version: {} } })!;
      expect(lean.cpu.usageNs).toBe(full.cpu.usageNs);
      for (const key of Object.keys(lean.memory) as (keyof typeof lean.memory)[]) expect(lean.memory[key], key).toBe(full.memory[key]);
      expect(lean.pids!.pids).toEqual(full.pids.pids);
      expect(lean.psi).toEqual(full.psi);
    });
  }

  it('leaves out what was not asked for: processes, PSI, limits and swap', async () => {
    const { dirs } = await dirsOf({ ...v1Cgroup(CGROUP), ...hybridUnified(CGROUP) });
    const lean = new CriCgroupReader().read('abc', () => dirs)!;
    expect(lean.pids).toBeUndefined();
    expect(lean.psi).toEqual({ cpu: undefined, memory: undefined, io: undefined });
    expect(lean.memory).toMatchObject({ usageBytes: 100 * MiB, workingSetBytes: 80 * MiB, limitBytes: undefined, swapBytes: undefined });
  });

  it('reads the limits again only when their version changes', async () => {
    const { root, dirs } = await dirsOf(v1Cgroup(CGROUP));
    const reader = new CriCgroupReader();
    const first = { memory_limit_in_bytes: '268435456' };
    const limitOf = (version: unknown) => reader.read('abc', () => dirs, { limits: { version } })!.memory.limitBytes;
    expect(limitOf(first)).toBe(256 * MiB);
    await fs.writeFile(path.join(root, 'memory', CGROUP, 'memory.limit_in_bytes'), `${128 * MiB}\n`);
    expect(limitOf(first)).toBe(256 * MiB);
    expect(limitOf({ ...first })).toBe(128 * MiB);
    // Forgotten once the container is gone: read again from the file.
    reader.retain(new Set());
    await fs.writeFile(path.join(root, 'memory', CGROUP, 'memory.limit_in_bytes'), `${64 * MiB}\n`);
    expect(limitOf(first)).toBe(64 * MiB);
  });

  it('answers undefined for a cgroup that is not (or no longer) there', async () => {
    for (const files of [v1Cgroup('/elsewhere'), v2Cgroup('/elsewhere')]) {
      const { dirs } = await dirsOf(files);
      const reader = new CriCgroupReader();
      expect(reader.read('abc', () => dirs, { processes: true, psi: true })).toBeUndefined();
      expect(reader.openFiles).toBe(0);
    }
    const unlocatable = new CriCgroupReader();
    expect(unlocatable.read('abc', () => { throw new Error('malformed slice'); })).toBeUndefined();
  });

  it('keeps each file open and reads it afresh, and closes them when told or when the cgroup is gone', async () => {
    const { root, dirs } = await dirsOf({ ...v1Cgroup(CGROUP), ...hybridUnified(CGROUP) });
    const reader = new CriCgroupReader();
    const read = () => reader.read('abc', () => dirs, { psi: true, limits: { version: null } })!;
    expect(read().cpu.usageNs).toBe(2_500_000_000);
    // cpuacct.usage, usage_in_bytes, memory.stat, memsw usage, three pressure files (not the
    // limits, read once).
    expect(reader.openFiles).toBe(7);
    await fs.writeFile(path.join(root, 'cpuacct', CGROUP, 'cpuacct.usage'), '3000000000\n');
    expect(read().cpu.usageNs).toBe(3_000_000_000);
    expect(reader.openFiles).toBe(7);
    reader.forget('abc');
    expect(reader.openFiles).toBe(0);
    expect(read().cpu.usageNs).toBe(3_000_000_000);
    // (On cgroupfs a held file of a removed cgroup fails to read, ENODEV; a fixture file does not.)
    reader.forget('abc');
    await fs.rm(path.join(root, 'cpuacct', CGROUP), { recursive: true });
    expect(reader.read('abc', () => dirs)).toBeUndefined();
    expect(reader.openFiles).toBe(0);
  });

  it('opens files for each read once it holds as many as it may', async () => {
    const { dirs } = await dirsOf(v1Cgroup(CGROUP));
    const reader = new CriCgroupReader(2);
    expect(reader.read('abc', () => dirs)!.memory.workingSetBytes).toBe(80 * MiB);
    expect(reader.openFiles).toBe(2);
  });

  it('parses a pressure file as parsePsi does', () => {
    const texts = [
      PSI_CPU,
      PSI_MEMORY,
      PSI_IO,
      PSI_CPU.trimEnd(),
      'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
      'some avg10=12.50 avg60=3.25 avg300=1.00 total=123456789012\nfull avg10=bad avg60=0.00 avg300=0.00 total=1\n',
      'some avg10=1 avg60=2 avg300=3\n',
      'some total=5 avg300=3.0 avg60=2.0 avg10=1.0 extra=x\n',
      'full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n',
      '',
    ];
    for (const text of texts) expect(parsePressure(text), JSON.stringify(text)).toEqual(parsePsi(text));
  });

  it('finds a key of a keyed file as parseKeyed does', () => {
    const text = 'rss 10\ntotal_rss 20\npgfault 30\nbad 1 2\nlast 40';
    for (const key of ['rss', 'total_rss', 'pgfault', 'bad', 'last', 'missing', 'total']) expect(keyedValue(text, key), key).toBe(parseKeyed(text)[key]);
  });

  it('reads a small file whole, however long, and answers undefined for what cannot be read', async () => {
    const { root } = await dirsOf({ 'long.txt': 'x'.repeat(100_000), 'dir/': null });
    expect(readSmallFile(path.join(root, 'long.txt'))).toBe('x'.repeat(100_000));
    expect(readSmallFile(path.join(root, 'missing'))).toBeUndefined();
    expect(readSmallFile(path.join(root, 'dir'))).toBeUndefined();
  });
});
