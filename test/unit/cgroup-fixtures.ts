/**
 * Fixture cgroup trees in a temporary directory: the files a v1 (per-controller) or v2
 * (unified) hierarchy shows for one cgroup, with the values a busy container would have. Tests
 * override or drop files to play an older kernel, a disabled controller or a vanished cgroup.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Relative path → content; `null` makes a directory where a file is expected (unreadable). */
export type Files = Record<string, string | null>;

export async function writeTree(files: Files): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-cgroups-'));
  await addFiles(root, files);
  return root;
}

export async function addFiles(root: string, files: Files): Promise<void> {
  for (const [relative, content] of Object.entries(files)) {
    const file = path.join(root, relative);
    if (content === null) {
      await fs.mkdir(file, { recursive: true });
      continue;
    }
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
  }
}

export const removeTree = (root: string): Promise<void> => fs.rm(root, { recursive: true, force: true });

export const PSI_CPU = 'some avg10=1.50 avg60=0.75 avg300=0.25 total=2500000\nfull avg10=0.50 avg60=0.25 avg300=0.00 total=1200000\n';
export const PSI_MEMORY = 'some avg10=0.00 avg60=0.00 avg300=0.00 total=3000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n';
export const PSI_IO = 'some avg10=4.00 avg60=2.00 avg300=1.00 total=7000000\nfull avg10=3.00 avg60=1.50 avg300=0.50 total=6000000\n';

const MiB = 1024 * 1024;

/** One cgroup on v1: files under each controller's hierarchy at `cgroupPath`. */
export function v1Cgroup(cgroupPath: string, overrides: Files = {}): Files {
  const at = (controller: string, file: string): string => path.join(controller, cgroupPath, file);
  return {
    [at('cpuacct', 'cpuacct.usage')]: '2500000000\n',
    [at('cpuacct', 'cpuacct.stat')]: 'user 180\nsystem 40\n',
    [at('cpu', 'cpu.stat')]: 'nr_periods 120\nnr_throttled 30\nthrottled_time 4500000000\n',
    [at('memory', 'memory.usage_in_bytes')]: `${100 * MiB}\n`,
    [at('memory', 'memory.max_usage_in_bytes')]: `${120 * MiB}\n`,
    [at('memory', 'memory.limit_in_bytes')]: `${256 * MiB}\n`,
    [at('memory', 'memory.memsw.usage_in_bytes')]: `${110 * MiB}\n`,
    [at('memory', 'memory.memsw.limit_in_bytes')]: `${512 * MiB}\n`,
    [at('memory', 'memory.failcnt')]: '3\n',
    [at('memory', 'memory.kmem.usage_in_bytes')]: `${2 * MiB}\n`,
    [at('memory', 'memory.stat')]: [
      `cache ${30 * MiB}`,
      `rss ${60 * MiB}`,
      `mapped_file ${5 * MiB}`,
      'pgfault 1000',
      'pgmajfault 7',
      `inactive_file ${20 * MiB}`,
      `total_cache ${30 * MiB}`,
      `total_rss ${60 * MiB}`,
      `total_mapped_file ${5 * MiB}`,
      'total_pgfault 1500',
      'total_pgmajfault 9',
      `total_inactive_file ${20 * MiB}`,
      `total_active_file ${10 * MiB}`,
      '',
    ].join('\n'),
    [at('memory', 'memory.oom_control')]: 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
    [at('memory', 'cgroup.procs')]: '101\n102\n',
    [at('pids', 'cgroup.procs')]: '101\n102\n',
    [at('pids', 'pids.current')]: '5\n',
    [at('pids', 'pids.max')]: 'max\n',
    [at('blkio', 'blkio.throttle.io_service_bytes_recursive')]:
      '254:0 Read 4096\n254:0 Write 8388608\n254:0 Sync 8388608\n254:0 Async 4096\n254:0 Discard 0\n254:0 Total 8392704\nTotal 8392704\n',
    [at('blkio', 'blkio.throttle.io_serviced_recursive')]: '254:0 Read 1\n254:0 Write 128\n254:0 Total 129\nTotal 129\n',
    ...overrides,
  };
}

/** The unified mount of a hybrid v1 host, with the cgroup's pressure files. */
export function hybridUnified(cgroupPath: string): Files {
  return {
    'unified/cgroup.controllers': '',
    [path.join('unified', cgroupPath, 'cpu.pressure')]: PSI_CPU,
    [path.join('unified', cgroupPath, 'memory.pressure')]: PSI_MEMORY,
    [path.join('unified', cgroupPath, 'io.pressure')]: PSI_IO,
  };
}

/** One cgroup on v2: every controller's files in one directory. */
export function v2Cgroup(cgroupPath: string, overrides: Files = {}): Files {
  const at = (file: string): string => path.join(cgroupPath, file);
  return {
    'cgroup.controllers': 'cpuset cpu io memory pids\n',
    [at('cpu.stat')]: 'usage_usec 2500000\nuser_usec 1800000\nsystem_usec 700000\nnr_periods 120\nnr_throttled 30\nthrottled_usec 4500000\n',
    [at('memory.current')]: `${100 * MiB}\n`,
    [at('memory.peak')]: `${120 * MiB}\n`,
    [at('memory.max')]: 'max\n',
    [at('memory.swap.current')]: `${4 * MiB}\n`,
    [at('memory.swap.max')]: `${64 * MiB}\n`,
    [at('memory.stat')]: [
      `anon ${60 * MiB}`,
      `file ${30 * MiB}`,
      `kernel ${3 * MiB}`,
      `kernel_stack ${1 * MiB}`,
      `slab ${1 * MiB}`,
      `file_mapped ${5 * MiB}`,
      `inactive_file ${20 * MiB}`,
      `active_file ${10 * MiB}`,
      'pgfault 1500',
      'pgmajfault 9',
      '',
    ].join('\n'),
    [at('memory.events')]: 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n',
    [at('cgroup.procs')]: '201\n202\n203\n',
    [at('cgroup.threads')]: '201\n202\n203\n204\n',
    [at('pids.current')]: '4\n',
    [at('pids.max')]: '1024\n',
    [at('io.stat')]: '254:0 rbytes=4096 wbytes=8388608 rios=1 wios=128 dbytes=0 dios=0\n7:3 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n',
    [at('cpu.pressure')]: PSI_CPU,
    [at('memory.pressure')]: PSI_MEMORY,
    [at('io.pressure')]: PSI_IO,
    ...overrides,
  };
}

/** The systemd layout of a burstable pod's container, as runc places it. */
export const SYSTEMD_POD_SLICE = 'kubepods-burstable-pod123.slice';
export const SYSTEMD_POD_PATH = '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice';
export const systemdScopePath = (id: string): string => `${SYSTEMD_POD_PATH}/tscri-${id}.scope`;
