import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cgroupDirs, detectHierarchy } from '../../src/cgroups/paths.js';
import { readCgroupStats } from '../../src/cgroups/stats.js';
import { hybridUnified, removeTree, SYSTEMD_POD_SLICE, systemdScopePath, v1Cgroup, v2Cgroup, writeTree, type Files } from './cgroup-fixtures.js';

const MiB = 1024 * 1024;
const CGROUPFS_PATH = '/kubepods/burstable/pod123/abc';
const SYSTEMD_SPEC_PATH = `${SYSTEMD_POD_SLICE}:tscri:abc`;

describe('cgroup stats over fixture trees', () => {
  const trees: string[] = [];
  afterAll(() => Promise.all(trees.map(removeTree)));

  async function statsOf(files: Files, driver: 'cgroupfs' | 'systemd', specPath: string) {
    const root = await writeTree(files);
    trees.push(root);
    return readCgroupStats(cgroupDirs(detectHierarchy(root), driver, specPath));
  }

  describe('cgroup v1', () => {
    it('reads a cgroupfs container: CPU in ns, memory as cAdvisor derives it, pids, block IO', async () => {
      const stats = (await statsOf(v1Cgroup(CGROUPFS_PATH), 'cgroupfs', CGROUPFS_PATH))!;
      expect(stats.cpu).toEqual({
        usageNs: 2_500_000_000,
        userNs: 1_800_000_000, // 180 USER_HZ ticks
        systemNs: 400_000_000,
        periods: 120,
        throttledPeriods: 30,
        throttledNs: 4_500_000_000,
      });
      expect(stats.memory).toMatchObject({
        usageBytes: 100 * MiB,
        maxUsageBytes: 120 * MiB,
        workingSetBytes: 80 * MiB, // usage − total_inactive_file
        rssBytes: 60 * MiB,
        cacheBytes: 30 * MiB,
        mappedFileBytes: 5 * MiB,
        kernelBytes: 2 * MiB,
        swapBytes: 10 * MiB, // memsw − usage
        limitBytes: 256 * MiB,
        swapLimitBytes: 256 * MiB, // memsw limit − memory limit
        failcnt: 3,
        pageFaults: 1000,
        majorPageFaults: 7,
        hierarchicalPageFaults: 1500,
        hierarchicalMajorPageFaults: 9,
        oomKills: 2,
      });
      expect(stats.pids).toEqual({ pids: [101, 102], threads: 5, threadsMax: undefined });
      expect(stats.io).toEqual([{ major: 254, minor: 0, readBytes: 4096, writeBytes: 8388608, reads: 1, writes: 128 }]);
      expect(stats.psi).toEqual({ cpu: undefined, memory: undefined, io: undefined });
    });

    it('reads a systemd-driver container from the scope directory, not from the slice string', async () => {
      const stats = await statsOf(v1Cgroup(systemdScopePath('abc')), 'systemd', SYSTEMD_SPEC_PATH);
      expect(stats?.cpu.usageNs).toBe(2_500_000_000);
      expect(stats?.memory.usageBytes).toBe(100 * MiB);
    });

    it('reads PSI from the hybrid unified mount', async () => {
      const stats = (await statsOf({ ...v1Cgroup(CGROUPFS_PATH), ...hybridUnified(CGROUPFS_PATH) }, 'cgroupfs', CGROUPFS_PATH))!;
      expect(stats.psi.cpu).toEqual({
        some: { avg10: 1.5, avg60: 0.75, avg300: 0.25, totalUs: 2_500_000 },
        full: { avg10: 0.5, avg60: 0.25, avg300: 0, totalUs: 1_200_000 },
      });
      expect(stats.psi.io?.full?.totalUs).toBe(6_000_000);
    });

    it('treats unlimited limits, missing swap accounting and a missing pids hierarchy as absent', async () => {
      const at = (controller: string, file: string) => path.join(controller, CGROUPFS_PATH, file);
      const files = v1Cgroup(CGROUPFS_PATH, { [at('memory', 'memory.limit_in_bytes')]: '9223372036854771712\n', [at('memory', 'tasks')]: '101\n102\n103\n' });
      for (const file of ['memory.memsw.usage_in_bytes', 'memory.memsw.limit_in_bytes', 'memory.kmem.usage_in_bytes']) delete files[at('memory', file)];
      for (const file of ['cgroup.procs', 'pids.current', 'pids.max']) delete files[at('pids', file)];
      const stats = (await statsOf(files, 'cgroupfs', CGROUPFS_PATH))!;
      expect(stats.memory.limitBytes).toBeUndefined();
      expect(stats.memory.swapBytes).toBeUndefined();
      expect(stats.memory.swapLimitBytes).toBeUndefined();
      expect(stats.memory.kernelBytes).toBeUndefined();
      // The memory hierarchy holds the same processes; tasks counts the threads.
      expect(stats.pids).toEqual({ pids: [101, 102], threads: 3, threadsMax: undefined });
    });

    it('survives unreadable and garbled files, and prefers the next blkio files when throttle ones are missing', async () => {
      const at = (controller: string, file: string) => path.join(controller, CGROUPFS_PATH, file);
      const files = v1Cgroup(CGROUPFS_PATH, {
        [at('memory', 'memory.stat')]: null, // a directory: EISDIR on read
        [at('cpu', 'cpu.stat')]: 'nr_periods many\nnr_throttled -1\nthrottled_time 12 extra\n',
        [at('memory', 'memory.failcnt')]: '',
        [at('blkio', 'blkio.io_service_bytes_recursive')]: '8:0 Read 100\n8:0 Write 200\nTotal 300\n',
        [at('blkio', 'blkio.io_serviced_recursive')]: '8:0 Read 1\n8:0 Write 2\nTotal 3\n',
      });
      delete files[at('blkio', 'blkio.throttle.io_service_bytes_recursive')];
      const stats = (await statsOf(files, 'cgroupfs', CGROUPFS_PATH))!;
      expect(stats.memory).toMatchObject({ usageBytes: 100 * MiB, workingSetBytes: 100 * MiB, rssBytes: 0, pageFaults: 0, failcnt: undefined });
      expect(stats.cpu).toMatchObject({ periods: undefined, throttledPeriods: undefined, throttledNs: undefined });
      expect(stats.io).toEqual([{ major: 8, minor: 0, readBytes: 100, writeBytes: 200, reads: 1, writes: 2 }]);
    });

    it('answers undefined for a cgroup that is not (or no longer) there', async () => {
      expect(await statsOf(v1Cgroup(CGROUPFS_PATH), 'cgroupfs', '/kubepods/burstable/pod123/gone')).toBeUndefined();
    });
  });

  describe('cgroup v2', () => {
    it('reads a cgroupfs container from the unified directory, with PSI', async () => {
      const stats = (await statsOf(v2Cgroup(CGROUPFS_PATH), 'cgroupfs', CGROUPFS_PATH))!;
      expect(stats.cpu).toEqual({
        usageNs: 2_500_000_000,
        userNs: 1_800_000_000,
        systemNs: 700_000_000,
        periods: 120,
        throttledPeriods: 30,
        throttledNs: 4_500_000_000,
      });
      expect(stats.memory).toMatchObject({
        usageBytes: 100 * MiB,
        maxUsageBytes: 120 * MiB,
        workingSetBytes: 80 * MiB,
        rssBytes: 60 * MiB,
        cacheBytes: 30 * MiB,
        mappedFileBytes: 5 * MiB,
        kernelBytes: 3 * MiB,
        swapBytes: 4 * MiB,
        limitBytes: undefined, // "max"
        swapLimitBytes: 64 * MiB,
        failcnt: 4, // memory.events max
        hierarchicalPageFaults: 1500,
        oomKills: 1,
      });
      expect(stats.pids).toEqual({ pids: [201, 202, 203], threads: 4, threadsMax: 1024 });
      expect(stats.io).toHaveLength(2);
      expect(stats.io[1]).toEqual({ major: 7, minor: 3, readBytes: 512, writeBytes: 0, reads: 1, writes: 0 });
      expect(stats.psi.memory?.some.totalUs).toBe(3000);
    });

    it('reads a systemd-driver container from its scope below the nested slices', async () => {
      const stats = await statsOf(v2Cgroup(systemdScopePath('abc')), 'systemd', SYSTEMD_SPEC_PATH);
      expect(stats?.cpu.usageNs).toBe(2_500_000_000);
      expect(stats?.pids.pids).toEqual([201, 202, 203]);
    });

    it('reads "max" and missing files as absent, and an older kernel’s kernel memory from its parts', async () => {
      const at = (file: string) => path.join(CGROUPFS_PATH, file);
      const files = v2Cgroup(CGROUPFS_PATH, {
        [at('memory.swap.max')]: 'max\n',
        [at('pids.max')]: 'max\n',
        [at('memory.stat')]: `anon ${MiB}\nkernel_stack 4096\nslab 8192\n`,
        [at('cpu.stat')]: 'usage_usec 10\nuser_usec 6\nsystem_usec 4\n', // no cpu controller: no throttling fields
      });
      for (const file of ['memory.peak', 'memory.swap.current', 'io.stat', 'cpu.pressure', 'pids.current']) delete files[at(file)];
      const stats = (await statsOf(files, 'cgroupfs', CGROUPFS_PATH))!;
      expect(stats.memory).toMatchObject({ swapBytes: undefined, swapLimitBytes: undefined, maxUsageBytes: undefined, kernelBytes: 12288, workingSetBytes: 100 * MiB });
      expect(stats.cpu).toMatchObject({ usageNs: 10_000, periods: undefined, throttledNs: undefined });
      expect(stats.pids).toEqual({ pids: [201, 202, 203], threads: 4, threadsMax: undefined }); // threads from cgroup.threads
      expect(stats.io).toEqual([]);
      expect(stats.psi.cpu).toBeUndefined();
      expect(stats.psi.io).toBeDefined();
    });

    it('treats a pressure file the kernel refuses (PSI off) as absent', async () => {
      // Reading fails (EOPNOTSUPP on a kernel booted with psi=0; here EISDIR): no value, no error.
      const stats = await statsOf(v2Cgroup(CGROUPFS_PATH, { [path.join(CGROUPFS_PATH, 'memory.pressure')]: null }), 'cgroupfs', CGROUPFS_PATH);
      expect(stats?.psi.memory).toBeUndefined();
      expect(stats?.psi.cpu).toBeDefined();
    });

    it('answers undefined when cpu.stat is gone', async () => {
      const files = v2Cgroup(CGROUPFS_PATH);
      delete files[path.join(CGROUPFS_PATH, 'cpu.stat')];
      expect(await statsOf(files, 'cgroupfs', CGROUPFS_PATH)).toBeUndefined();
    });
  });
});
