/**
 * The metrics tscri serves through ListPodSandboxMetrics, named, described and typed as
 * cAdvisor exposes them on kubelet's /metrics/cadvisor, so dashboards built on that endpoint
 * keep working when kubelet takes them from the runtime (PodAndContainerStatsFromCRI).
 *
 * Labels: every metric starts with BASE_LABEL_KEYS, the runtime's (`id`, `image`) and the
 * Kubernetes ones (`namespace`, `pod`, `container`: kubelets 1.33–1.35 pass a runtime's labels
 * through untouched, and CRI-O settled on this same set), then the metric's own (`cpu`,
 * `interface`, `device`, …). Values are uint64 on the wire, so "seconds" counters are whole
 * seconds, as in CRI-O and containerd.
 */
import type * as wire from '../api/wire.js';

export type MetricKind = 'COUNTER' | 'GAUGE';

export interface MetricSpec {
  name: string;
  help: string;
  kind: MetricKind;
  /** Labels after the base ones, in order. */
  labels: readonly string[];
}

export const BASE_LABEL_KEYS = ['id', 'image', 'namespace', 'pod', 'container'] as const;

const counter = (name: string, help: string, labels: readonly string[] = []): MetricSpec => ({ name, help, kind: 'COUNTER', labels });
const gauge = (name: string, help: string, labels: readonly string[] = []): MetricSpec => ({ name, help, kind: 'GAUGE', labels });

export const CPU = {
  usage: counter('container_cpu_usage_seconds_total', 'Cumulative cpu time consumed in seconds.', ['cpu']),
  user: counter('container_cpu_user_seconds_total', 'Cumulative user cpu time consumed in seconds.'),
  system: counter('container_cpu_system_seconds_total', 'Cumulative system cpu time consumed in seconds.'),
  periods: counter('container_cpu_cfs_periods_total', 'Number of elapsed enforcement period intervals.'),
  throttledPeriods: counter('container_cpu_cfs_throttled_periods_total', 'Number of throttled period intervals.'),
  throttledSeconds: counter('container_cpu_cfs_throttled_seconds_total', 'Total time duration the container has been throttled.'),
} as const;

export const MEMORY = {
  usage: gauge('container_memory_usage_bytes', 'Current memory usage in bytes, including all memory regardless of when it was accessed'),
  maxUsage: gauge('container_memory_max_usage_bytes', 'Maximum memory usage recorded in bytes'),
  workingSet: gauge('container_memory_working_set_bytes', 'Current working set in bytes.'),
  rss: gauge('container_memory_rss', 'Size of RSS in bytes.'),
  cache: gauge('container_memory_cache', 'Number of bytes of page cache memory.'),
  mappedFile: gauge('container_memory_mapped_file', 'Size of memory mapped files in bytes.'),
  swap: gauge('container_memory_swap', 'Container swap usage in bytes.'),
  kernel: gauge('container_memory_kernel_usage', 'Size of kernel memory allocated in bytes.'),
  failcnt: counter('container_memory_failcnt', 'Number of memory usage hits limits'),
  failures: counter('container_memory_failures_total', 'Cumulative count of memory allocation failures.', ['failure_type', 'scope']),
  oomEvents: counter('container_oom_events_total', 'Count of out of memory events observed for the container'),
} as const;

export const NETWORK = {
  rxBytes: counter('container_network_receive_bytes_total', 'Cumulative count of bytes received', ['interface']),
  rxPackets: counter('container_network_receive_packets_total', 'Cumulative count of packets received', ['interface']),
  rxDropped: counter('container_network_receive_packets_dropped_total', 'Cumulative count of packets dropped while receiving', ['interface']),
  rxErrors: counter('container_network_receive_errors_total', 'Cumulative count of errors encountered while receiving', ['interface']),
  txBytes: counter('container_network_transmit_bytes_total', 'Cumulative count of bytes transmitted', ['interface']),
  txPackets: counter('container_network_transmit_packets_total', 'Cumulative count of packets transmitted', ['interface']),
  txDropped: counter('container_network_transmit_packets_dropped_total', 'Cumulative count of packets dropped while transmitting', ['interface']),
  txErrors: counter('container_network_transmit_errors_total', 'Cumulative count of errors encountered while transmitting', ['interface']),
} as const;

export const FILESYSTEM = {
  usage: gauge('container_fs_usage_bytes', 'Number of bytes that are consumed by the container on this filesystem.', ['device']),
  limit: gauge('container_fs_limit_bytes', 'Number of bytes that can be consumed by the container on this filesystem.', ['device']),
  inodesTotal: gauge('container_fs_inodes_total', 'Number of Inodes', ['device']),
  inodesFree: gauge('container_fs_inodes_free', 'Number of available Inodes', ['device']),
  readBytes: counter('container_fs_reads_bytes_total', 'Cumulative count of bytes read', ['device']),
  reads: counter('container_fs_reads_total', 'Cumulative count of reads completed', ['device']),
  writeBytes: counter('container_fs_writes_bytes_total', 'Cumulative count of bytes written', ['device']),
  writes: counter('container_fs_writes_total', 'Cumulative count of writes completed', ['device']),
  blkioDeviceUsage: counter('container_blkio_device_usage_total', 'Blkio Device bytes usage', ['device', 'major', 'minor', 'operation']),
} as const;

export const PROCESSES = {
  processes: gauge('container_processes', 'Number of processes running inside the container.'),
  threads: gauge('container_threads', 'Number of threads running inside the container'),
  threadsMax: gauge('container_threads_max', 'Maximum number of threads allowed inside the container, infinity if value is zero'),
  sockets: gauge('container_sockets', 'Number of open sockets for the container.'),
  fileDescriptors: gauge('container_file_descriptors', 'Number of open file descriptors for the container.'),
} as const;

export const PRESSURE = {
  cpuStalled: counter('container_pressure_cpu_stalled_seconds_total', 'Total time duration no tasks in the container could make progress due to CPU congestion.'),
  cpuWaiting: counter('container_pressure_cpu_waiting_seconds_total', 'Total time duration tasks in the container have waited due to CPU congestion.'),
  memoryStalled: counter('container_pressure_memory_stalled_seconds_total', 'Total time duration no tasks in the container could make progress due to memory congestion.'),
  memoryWaiting: counter('container_pressure_memory_waiting_seconds_total', 'Total time duration tasks in the container have waited due to memory congestion.'),
  ioStalled: counter('container_pressure_io_stalled_seconds_total', 'Total time duration no tasks in the container could make progress due to IO congestion.'),
  ioWaiting: counter('container_pressure_io_waiting_seconds_total', 'Total time duration tasks in the container have waited due to IO congestion.'),
} as const;

/** Every metric, in the order ListMetricDescriptors lists them. The list is fixed at start. */
export const ALL_METRICS: readonly MetricSpec[] = [CPU, MEMORY, NETWORK, FILESYSTEM, PROCESSES, PRESSURE].flatMap((group) => Object.values(group));

export function metricDescriptors(): wire.MetricDescriptor[] {
  return ALL_METRICS.map((spec) => ({ name: spec.name, help: spec.help, label_keys: [...BASE_LABEL_KEYS, ...spec.labels] }));
}
