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

/**
 * A group of metrics written as the table it is, one per line: the key tscri's code uses, the
 * kind (counter or gauge), cAdvisor's name, the labels after the base ones ("-": none, "a,b":
 * several), and the help text, which runs to the end of the line. Keys keep the table's order.
 */
function metricGroup<K extends string>(table: string): Readonly<Record<K, MetricSpec>> {
  const group: Record<string, MetricSpec> = {};
  for (const line of table.trim().split('\n')) {
    const match = /^\s*(\w+)\s+(counter|gauge)\s+(\w+)\s+(\S+)\s+(.+)$/.exec(line);
    if (!match) throw new Error(`metric table: cannot read ${JSON.stringify(line)}`);
    const [, key = '', kind, name = '', labels = '-', help = ''] = match;
    if (key in group) throw new Error(`metric table: ${key} twice`);
    group[key] = { name, help, kind: kind === 'counter' ? 'COUNTER' : 'GAUGE', labels: labels === '-' ? [] : labels.split(',') };
  }
  return group as Record<K, MetricSpec>;
}

export const CPU = metricGroup<'usage' | 'user' | 'system' | 'periods' | 'throttledPeriods' | 'throttledSeconds'>(`
  usage             counter  container_cpu_usage_seconds_total          cpu  Cumulative cpu time consumed in seconds.
  user              counter  container_cpu_user_seconds_total           -    Cumulative user cpu time consumed in seconds.
  system            counter  container_cpu_system_seconds_total         -    Cumulative system cpu time consumed in seconds.
  periods           counter  container_cpu_cfs_periods_total            -    Number of elapsed enforcement period intervals.
  throttledPeriods  counter  container_cpu_cfs_throttled_periods_total  -    Number of throttled period intervals.
  throttledSeconds  counter  container_cpu_cfs_throttled_seconds_total  -    Total time duration the container has been throttled.
`);

export const MEMORY = metricGroup<'usage' | 'maxUsage' | 'workingSet' | 'rss' | 'cache' | 'mappedFile' | 'swap' | 'kernel' | 'failcnt' | 'failures' | 'oomEvents'>(`
  usage       gauge    container_memory_usage_bytes        -                   Current memory usage in bytes, including all memory regardless of when it was accessed
  maxUsage    gauge    container_memory_max_usage_bytes    -                   Maximum memory usage recorded in bytes
  workingSet  gauge    container_memory_working_set_bytes  -                   Current working set in bytes.
  rss         gauge    container_memory_rss                -                   Size of RSS in bytes.
  cache       gauge    container_memory_cache              -                   Number of bytes of page cache memory.
  mappedFile  gauge    container_memory_mapped_file        -                   Size of memory mapped files in bytes.
  swap        gauge    container_memory_swap               -                   Container swap usage in bytes.
  kernel      gauge    container_memory_kernel_usage       -                   Size of kernel memory allocated in bytes.
  failcnt     counter  container_memory_failcnt            -                   Number of memory usage hits limits
  failures    counter  container_memory_failures_total     failure_type,scope  Cumulative count of memory allocation failures.
  oomEvents   counter  container_oom_events_total          -                   Count of out of memory events observed for the container
`);

export const NETWORK = metricGroup<'rxBytes' | 'rxPackets' | 'rxDropped' | 'rxErrors' | 'txBytes' | 'txPackets' | 'txDropped' | 'txErrors'>(`
  rxBytes    counter  container_network_receive_bytes_total             interface  Cumulative count of bytes received
  rxPackets  counter  container_network_receive_packets_total           interface  Cumulative count of packets received
  rxDropped  counter  container_network_receive_packets_dropped_total   interface  Cumulative count of packets dropped while receiving
  rxErrors   counter  container_network_receive_errors_total            interface  Cumulative count of errors encountered while receiving
  txBytes    counter  container_network_transmit_bytes_total            interface  Cumulative count of bytes transmitted
  txPackets  counter  container_network_transmit_packets_total          interface  Cumulative count of packets transmitted
  txDropped  counter  container_network_transmit_packets_dropped_total  interface  Cumulative count of packets dropped while transmitting
  txErrors   counter  container_network_transmit_errors_total           interface  Cumulative count of errors encountered while transmitting
`);

export const FILESYSTEM = metricGroup<'usage' | 'limit' | 'inodesTotal' | 'inodesFree' | 'readBytes' | 'reads' | 'writeBytes' | 'writes' | 'blkioDeviceUsage'>(`
  usage             gauge    container_fs_usage_bytes            device                        Number of bytes that are consumed by the container on this filesystem.
  limit             gauge    container_fs_limit_bytes            device                        Number of bytes that can be consumed by the container on this filesystem.
  inodesTotal       gauge    container_fs_inodes_total           device                        Number of Inodes
  inodesFree        gauge    container_fs_inodes_free            device                        Number of available Inodes
  readBytes         counter  container_fs_reads_bytes_total      device                        Cumulative count of bytes read
  reads             counter  container_fs_reads_total            device                        Cumulative count of reads completed
  writeBytes        counter  container_fs_writes_bytes_total     device                        Cumulative count of bytes written
  writes            counter  container_fs_writes_total           device                        Cumulative count of writes completed
  blkioDeviceUsage  counter  container_blkio_device_usage_total  device,major,minor,operation  Blkio Device bytes usage
`);

export const PROCESSES = metricGroup<'processes' | 'threads' | 'threadsMax' | 'sockets' | 'fileDescriptors'>(`
  processes        gauge  container_processes         -  Number of processes running inside the container.
  threads          gauge  container_threads           -  Number of threads running inside the container
  threadsMax       gauge  container_threads_max       -  Maximum number of threads allowed inside the container, infinity if value is zero
  sockets          gauge  container_sockets           -  Number of open sockets for the container.
  fileDescriptors  gauge  container_file_descriptors  -  Number of open file descriptors for the container.
`);

export const PRESSURE = metricGroup<'cpuStalled' | 'cpuWaiting' | 'memoryStalled' | 'memoryWaiting' | 'ioStalled' | 'ioWaiting'>(`
  cpuStalled     counter  container_pressure_cpu_stalled_seconds_total     -  Total time duration no tasks in the container could make progress due to CPU congestion.
  cpuWaiting     counter  container_pressure_cpu_waiting_seconds_total     -  Total time duration tasks in the container have waited due to CPU congestion.
  memoryStalled  counter  container_pressure_memory_stalled_seconds_total  -  Total time duration no tasks in the container could make progress due to memory congestion.
  memoryWaiting  counter  container_pressure_memory_waiting_seconds_total  -  Total time duration tasks in the container have waited due to memory congestion.
  ioStalled      counter  container_pressure_io_stalled_seconds_total      -  Total time duration no tasks in the container could make progress due to IO congestion.
  ioWaiting      counter  container_pressure_io_waiting_seconds_total      -  Total time duration tasks in the container have waited due to IO congestion.
`);

/** Every metric, in the order ListMetricDescriptors lists them. The list is fixed at start. */
export const ALL_METRICS: readonly MetricSpec[] = [CPU, MEMORY, NETWORK, FILESYSTEM, PROCESSES, PRESSURE].flatMap((group) => Object.values(group));

export function metricDescriptors(): wire.MetricDescriptor[] {
  return ALL_METRICS.map((spec) => ({ name: spec.name, help: spec.help, label_keys: [...BASE_LABEL_KEYS, ...spec.labels] }));
}
