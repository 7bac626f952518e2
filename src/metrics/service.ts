/**
 * ListMetricDescriptors and ListPodSandboxMetrics. Metrics are read live at each call (kubelet
 * scrapes /metrics/cadvisor on its own schedule), from the same samples as CRI stats.
 *
 * Per pod: the pod-level series (container="POD", as cAdvisor labelled the pause container)
 * carry the network counters of the pod's interfaces and the pause container's own cgroup; each
 * running container has its CPU, memory, processes, pressure, block IO and writable layer.
 */
import type * as wire from '../api/wire.js';
import { countOpenFiles } from '../cgroups/processes.js';
import type { CgroupStats } from '../cgroups/stats.js';
import type { ContainerSample, PodSample, StatsService } from '../container/stats.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import {
  cpuMetrics,
  filesystemMetrics,
  ioMetrics,
  memoryMetrics,
  networkMetrics,
  pressureMetrics,
  processMetrics,
  type BaseLabels,
} from './build.js';
import { metricDescriptors } from './descriptors.js';
import { DeviceNames } from './devices.js';
import { filesystemCapacity } from './filesystem.js';

/** The name cAdvisor and kubelet give a pod's sandbox (pause) container. */
export const POD_CONTAINER_LABEL = 'POD';

export class MetricsService {
  private readonly described = metricDescriptors();

  constructor(
    private readonly stats: StatsService,
    private readonly devices: DeviceNames = new DeviceNames(),
  ) {}

  descriptors(): wire.MetricDescriptor[] {
    return this.described;
  }

  async podSandboxMetrics(): Promise<wire.PodSandboxMetrics[]> {
    return Promise.all(this.stats.readySandboxes().map((sandbox) => this.metricsOfPod(sandbox)));
  }

  private async metricsOfPod(sandbox: Sandbox): Promise<wire.PodSandboxMetrics> {
    const sample = await this.stats.samplePod(sandbox);
    // A container without a cgroup (exited, or not made yet) has nothing to report.
    const running = sample.containers.flatMap((c) => (c.cgroup ? [{ sample: c, cgroup: c.cgroup }] : []));
    return {
      pod_sandbox_id: sandbox.record.id,
      metrics: await this.podLevel(sample),
      container_metrics: await Promise.all(
        running.map(async (c) => ({ container_id: c.sample.container.id, metrics: await this.containerLevel(sample, c.sample, c.cgroup) })),
      ),
    };
  }

  private async podLevel(sample: PodSample): Promise<wire.Metric[]> {
    const { record } = sample.sandbox;
    const base: BaseLabels = { id: record.id, image: record.sandboxImage, ...podLabels(sample), container: POD_CONTAINER_LABEL };
    // The pause container runs without a CPU quota.
    return [...networkMetrics(base, sample.interfaces ?? []), ...(sample.pause ? await this.cgroupMetrics(base, sample.pause, false) : [])];
  }

  private async containerLevel(pod: PodSample, sample: ContainerSample, cgroup: CgroupStats): Promise<wire.Metric[]> {
    const { container, writableLayer } = sample;
    const base: BaseLabels = {
      id: container.id,
      image: container.image,
      ...podLabels(pod),
      container: container.metadata?.name ?? '',
    };
    const [device, capacity] = await Promise.all([this.devices.holding(writableLayer.dir), filesystemCapacity(writableLayer.dir)]);
    const named = await Promise.all(cgroup.io.map(async (d) => ({ ...d, name: await this.devices.blockDevice(d.major, d.minor) })));
    return [
      ...(await this.cgroupMetrics(base, cgroup, Number(container.resources?.cpu_quota ?? 0) > 0)),
      ...ioMetrics(base, named),
      ...(device === undefined ? [] : filesystemMetrics(base, device, writableLayer.usage, capacity)),
    ];
  }

  private async cgroupMetrics(base: BaseLabels, cgroup: CgroupStats, hasCpuQuota: boolean): Promise<wire.Metric[]> {
    const files = await countOpenFiles(cgroup.pids.pids, this.stats.procRoot);
    return [
      ...cpuMetrics(base, cgroup.cpu, hasCpuQuota),
      ...memoryMetrics(base, cgroup.memory),
      ...processMetrics(base, cgroup.pids, files),
      ...pressureMetrics(base, cgroup.psi),
    ];
  }
}

function podLabels(sample: PodSample): { namespace: string; pod: string } {
  const metadata = sample.sandbox.record.config.metadata;
  return { namespace: metadata?.namespace ?? '', pod: metadata?.name ?? '' };
}
