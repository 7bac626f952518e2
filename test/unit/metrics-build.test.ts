import { describe, expect, it } from 'vitest';
import type { MemoryStats } from '../../src/cgroups/stats.js';
import { cpuMetrics, filesystemMetrics, ioMetrics, memoryMetrics, metric, networkMetrics, pressureMetrics, processMetrics, type BaseLabels } from '../../src/metrics/build.js';
import { ALL_METRICS, BASE_LABEL_KEYS, CPU, metricDescriptors } from '../../src/metrics/descriptors.js';

const BASE: BaseLabels = { id: 'c1', image: 'busybox:1.0', namespace: 'ns', pod: 'web-0', container: 'app' };
const BASE_VALUES = ['c1', 'busybox:1.0', 'ns', 'web-0', 'app'];

/** cAdvisor's types (lib/metrics/prometheus.go) for every metric tscri serves. */
const CADVISOR_COUNTERS = new Set([
  'container_cpu_usage_seconds_total',
  'container_cpu_user_seconds_total',
  'container_cpu_system_seconds_total',
  'container_cpu_cfs_periods_total',
  'container_cpu_cfs_throttled_periods_total',
  'container_cpu_cfs_throttled_seconds_total',
  'container_memory_failcnt',
  'container_memory_failures_total',
  'container_oom_events_total',
  'container_network_receive_bytes_total',
  'container_network_receive_packets_total',
  'container_network_receive_packets_dropped_total',
  'container_network_receive_errors_total',
  'container_network_transmit_bytes_total',
  'container_network_transmit_packets_total',
  'container_network_transmit_packets_dropped_total',
  'container_network_transmit_errors_total',
  'container_fs_reads_bytes_total',
  'container_fs_reads_total',
  'container_fs_writes_bytes_total',
  'container_fs_writes_total',
  'container_blkio_device_usage_total',
  'container_pressure_cpu_stalled_seconds_total',
  'container_pressure_cpu_waiting_seconds_total',
  'container_pressure_memory_stalled_seconds_total',
  'container_pressure_memory_waiting_seconds_total',
  'container_pressure_io_stalled_seconds_total',
  'container_pressure_io_waiting_seconds_total',
]);

const MEMORY: MemoryStats = {
  usageBytes: 100,
  maxUsageBytes: undefined,
  workingSetBytes: 80,
  rssBytes: 60,
  cacheBytes: 30,
  mappedFileBytes: 5,
  kernelBytes: undefined,
  swapBytes: 0,
  limitBytes: undefined,
  swapLimitBytes: undefined,
  failcnt: 2,
  pageFaults: 10,
  majorPageFaults: 1,
  hierarchicalPageFaults: 12,
  hierarchicalMajorPageFaults: 2,
  oomKills: undefined,
};

describe('metric descriptors', () => {
  it('lists each metric once, with the base labels first and cAdvisor’s help', () => {
    const descriptors = metricDescriptors();
    expect(new Set(descriptors.map((d) => d.name)).size).toBe(descriptors.length);
    for (const d of descriptors) {
      expect(d.label_keys!.slice(0, 5)).toEqual([...BASE_LABEL_KEYS]);
      expect(new Set(d.label_keys).size, d.name).toBe(d.label_keys!.length);
      expect(d.help, d.name).toMatch(/\S/);
    }
    expect(descriptors.find((d) => d.name === 'container_cpu_usage_seconds_total')).toEqual({
      name: 'container_cpu_usage_seconds_total',
      help: 'Cumulative cpu time consumed in seconds.',
      label_keys: ['id', 'image', 'namespace', 'pod', 'container', 'cpu'],
    });
    expect(descriptors.find((d) => d.name === 'container_memory_failures_total')?.label_keys?.slice(5)).toEqual(['failure_type', 'scope']);
    expect(descriptors.find((d) => d.name === 'container_blkio_device_usage_total')?.label_keys?.slice(5)).toEqual(['device', 'major', 'minor', 'operation']);
  });

  it('types each metric as cAdvisor does', () => {
    for (const spec of ALL_METRICS) expect(spec.kind, spec.name).toBe(CADVISOR_COUNTERS.has(spec.name) ? 'COUNTER' : 'GAUGE');
  });
});

describe('building metrics', () => {
  it('puts the base labels first, then the metric’s own, and refuses a wrong count', () => {
    expect(metric(CPU.usage, BASE, 2.9e9 / 1e9, ['total'])).toEqual({
      name: 'container_cpu_usage_seconds_total',
      metric_type: 'COUNTER',
      label_values: [...BASE_VALUES, 'total'],
      value: { value: 2 },
    });
    expect(() => metric(CPU.usage, BASE, 1)).toThrow(/takes 1 extra labels/);
    expect(metric(CPU.user, BASE, -5).value).toEqual({ value: 0 });
  });

  it('counts CPU in whole seconds and leaves CFS series to containers with a quota', () => {
    const cpu = { usageNs: 2_999_999_999, userNs: 1_000_000_000, systemNs: 999_999_999, periods: 120, throttledPeriods: 30, throttledNs: 4_500_000_000 };
    const names = (hasQuota: boolean) => cpuMetrics(BASE, cpu, hasQuota).map((m) => [m.name, m.value!.value]);
    expect(names(false)).toEqual([
      ['container_cpu_usage_seconds_total', 2],
      ['container_cpu_user_seconds_total', 1],
      ['container_cpu_system_seconds_total', 0],
    ]);
    expect(names(true).slice(3)).toEqual([
      ['container_cpu_cfs_periods_total', 120],
      ['container_cpu_cfs_throttled_periods_total', 30],
      ['container_cpu_cfs_throttled_seconds_total', 4],
    ]);
  });

  it('reports memory with the four failure series and only the optional values the kernel gave', () => {
    const metrics = memoryMetrics(BASE, MEMORY);
    const failures = metrics.filter((m) => m.name === 'container_memory_failures_total').map((m) => [...m.label_values!.slice(5), m.value!.value]);
    expect(failures).toEqual([
      ['pgfault', 'container', 10],
      ['pgmajfault', 'container', 1],
      ['pgfault', 'hierarchy', 12],
      ['pgmajfault', 'hierarchy', 2],
    ]);
    const names = metrics.map((m) => m.name);
    expect(names).toContain('container_memory_swap');
    expect(names).toContain('container_memory_failcnt');
    expect(names).not.toContain('container_memory_max_usage_bytes');
    expect(names).not.toContain('container_oom_events_total');
    expect(memoryMetrics(BASE, { ...MEMORY, swapBytes: undefined }).map((m) => m.name)).not.toContain('container_memory_swap');
  });

  it('reports processes, with 0 for an unlimited thread count as cAdvisor does', () => {
    const values = processMetrics(BASE, { pids: [1, 2, 3], threads: 7, threadsMax: undefined }, { fileDescriptors: 12, sockets: 2 }).map((m) => [m.name, m.value!.value]);
    expect(values).toEqual([
      ['container_processes', 3],
      ['container_threads', 7],
      ['container_threads_max', 0],
      ['container_sockets', 2],
      ['container_file_descriptors', 12],
    ]);
  });

  it('turns PSI totals (µs) into waiting (some) and stalled (full) seconds, skipping what is absent', () => {
    const line = (totalUs: number) => ({ avg10: 0, avg60: 0, avg300: 0, totalUs });
    const metrics = pressureMetrics(BASE, { cpu: { some: line(2_500_000), full: undefined }, memory: undefined, io: { some: line(7_000_000), full: line(6_000_000) } });
    expect(metrics.map((m) => [m.name, m.value!.value])).toEqual([
      ['container_pressure_cpu_waiting_seconds_total', 2],
      ['container_pressure_io_waiting_seconds_total', 7],
      ['container_pressure_io_stalled_seconds_total', 6],
    ]);
    expect(pressureMetrics(BASE, { cpu: undefined, memory: undefined, io: undefined })).toEqual([]);
  });

  it('labels IO by device name, blkio usage also by major, minor and operation', () => {
    const metrics = ioMetrics(BASE, [{ major: 254, minor: 0, name: '/dev/vda', readBytes: 4096, writeBytes: 8192, reads: 1, writes: 2 }]);
    expect(metrics.map((m) => [m.name, m.label_values!.slice(5), m.value!.value])).toEqual([
      ['container_fs_reads_bytes_total', ['/dev/vda'], 4096],
      ['container_fs_writes_bytes_total', ['/dev/vda'], 8192],
      ['container_fs_reads_total', ['/dev/vda'], 1],
      ['container_fs_writes_total', ['/dev/vda'], 2],
      ['container_blkio_device_usage_total', ['/dev/vda', '254', '0', 'Read'], 4096],
      ['container_blkio_device_usage_total', ['/dev/vda', '254', '0', 'Write'], 8192],
    ]);
  });

  it('reports the writable layer, with the filesystem’s limit and inodes only where known', () => {
    const usage = { bytes: 8192, inodes: 3 };
    expect(filesystemMetrics(BASE, '/dev/vda', usage, undefined).map((m) => m.name)).toEqual(['container_fs_usage_bytes']);
    const full = filesystemMetrics(BASE, '/dev/vda', usage, { capacityBytes: 1e9, inodesTotal: 1000, inodesFree: 900 });
    expect(full.map((m) => [m.name, m.value!.value])).toEqual([
      ['container_fs_usage_bytes', 8192],
      ['container_fs_limit_bytes', 1e9],
      ['container_fs_inodes_total', 1000],
      ['container_fs_inodes_free', 900],
    ]);
  });

  it('reports eight network counters per interface', () => {
    const metrics = networkMetrics({ ...BASE, container: 'POD' }, [
      { name: 'eth0', rxBytes: 1, rxPackets: 2, rxErrors: 3, rxDropped: 4, txBytes: 5, txPackets: 6, txErrors: 7, txDropped: 8 },
      { name: 'net1', rxBytes: 0, rxPackets: 0, rxErrors: 0, rxDropped: 0, txBytes: 0, txPackets: 0, txErrors: 0, txDropped: 0 },
    ]);
    expect(metrics).toHaveLength(16);
    expect(metrics.slice(0, 8).map((m) => [m.name, m.value!.value])).toEqual([
      ['container_network_receive_bytes_total', 1],
      ['container_network_receive_packets_total', 2],
      ['container_network_receive_packets_dropped_total', 4],
      ['container_network_receive_errors_total', 3],
      ['container_network_transmit_bytes_total', 5],
      ['container_network_transmit_packets_total', 6],
      ['container_network_transmit_packets_dropped_total', 8],
      ['container_network_transmit_errors_total', 7],
    ]);
    expect(metrics[8]!.label_values).toEqual(['c1', 'busybox:1.0', 'ns', 'web-0', 'POD', 'net1']);
  });
});
