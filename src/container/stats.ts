import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import { CpuRate, diskUsage, readCgroup, type CgroupSample } from '../cgroups/stats.js';
import type { Config } from '../config/config.js';
import { cgroupsPathFor } from '../oci/spec.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { SandboxService } from '../sandbox/service.js';
import { nowNanos } from '../util/time.js';
import type { ContainerRecord } from './container.js';
import type { ContainerService } from './service.js';

/** Container and pod statistics from cgroups, the writable layer and the pod's netns. */
export class StatsService {
  private readonly rates = new CpuRate();

  constructor(
    private readonly config: Config,
    private readonly containers: ContainerService,
    private readonly sandboxes: SandboxService,
  ) {}

  async containerStats(idOrPrefix: string): Promise<wire.ContainerStats> {
    return this.statsOf(this.containers.get(idOrPrefix));
  }

  async listContainerStats(filter: cri.ContainerStatsFilter | null): Promise<wire.ContainerStats[]> {
    const records = this.containers.list({
      id: filter?.id ?? '',
      pod_sandbox_id: filter?.pod_sandbox_id ?? '',
      state: null,
      label_selector: filter?.label_selector ?? {},
    });
    return Promise.all(records.map((c) => this.statsOf(this.containers.get(c.id!))));
  }

  async podStats(idOrPrefix: string): Promise<wire.PodSandboxStats> {
    return this.podStatsOf(this.sandboxes.get(idOrPrefix));
  }

  async listPodStats(filter: cri.PodSandboxStatsFilter | null): Promise<wire.PodSandboxStats[]> {
    const items = this.sandboxes.list({ id: filter?.id ?? '', state: null, label_selector: filter?.label_selector ?? {} });
    return Promise.all(items.map((item) => this.podStatsOf(this.sandboxes.get(item.id!))));
  }

  private async statsOf(record: ContainerRecord): Promise<wire.ContainerStats> {
    const sandbox = this.sandboxes.sandboxes.find(record.sandboxId);
    const timestamp = nowNanos();
    const sample = sandbox && !record.exit ? await readCgroup(this.cgroupOf(sandbox, record.id)) : undefined;
    const upper = path.join(this.config.root, 'containers', record.id, 'upper');
    const disk = await diskUsage(upper);
    return {
      attributes: { id: record.id, metadata: record.config.metadata, labels: record.config.labels, annotations: record.config.annotations },
      cpu: cpuUsage(timestamp, sample, sample ? this.rates.update(record.id, sample.cpuUsageNs) : undefined),
      memory: memoryUsage(timestamp, sample),
      writable_layer: {
        timestamp,
        fs_id: { mountpoint: upper },
        used_bytes: { value: disk.bytes },
        inodes_used: { value: disk.inodes },
      },
    };
  }

  private async podStatsOf(sandbox: Sandbox): Promise<wire.PodSandboxStats> {
    const { record } = sandbox;
    const timestamp = nowNanos();
    const members = this.containers.inSandbox(record.id);
    const containerStats = await Promise.all(members.map((c) => this.statsOf(c)));
    // Pause and containers have cgroups of their own under the pod's parent, so the pod is their sum.
    const samples = (
      await Promise.all([record.id, ...members.filter((c) => !c.exit).map((c) => c.id)].map((id) => readCgroup(this.cgroupOf(sandbox, id))))
    ).filter((s): s is CgroupSample => s !== undefined);
    const total = samples.length > 0 ? sumSamples(samples) : undefined;
    return {
      attributes: { id: record.id, metadata: record.config.metadata, labels: record.config.labels, annotations: record.config.annotations },
      linux: {
        cpu: cpuUsage(timestamp, total, total ? this.rates.update(`pod:${record.id}`, total.cpuUsageNs) : undefined),
        memory: memoryUsage(timestamp, total),
        network: await networkUsage(timestamp, sandbox),
        process: { timestamp, process_count: { value: total?.processes ?? 0 } },
        containers: containerStats,
      },
    };
  }

  private cgroupOf(sandbox: Sandbox, id: string): string {
    return cgroupsPathFor(this.config.cgroupDriver, sandbox.record.cgroupParent, id);
  }
}

function cpuUsage(timestamp: string, sample: CgroupSample | undefined, nanoCores: number | undefined): wire.CpuUsage {
  return {
    timestamp,
    usage_core_nano_seconds: { value: sample?.cpuUsageNs ?? 0 },
    ...(nanoCores !== undefined ? { usage_nano_cores: { value: nanoCores } } : {}),
  };
}

function memoryUsage(timestamp: string, sample: CgroupSample | undefined): wire.MemoryUsage {
  if (!sample) return { timestamp, working_set_bytes: { value: 0 } };
  return {
    timestamp,
    working_set_bytes: { value: sample.workingSetBytes },
    usage_bytes: { value: sample.memoryUsageBytes },
    rss_bytes: { value: sample.rssBytes },
    page_faults: { value: sample.pageFaults },
    major_page_faults: { value: sample.majorPageFaults },
    ...(sample.memoryLimitBytes !== undefined ? { available_bytes: { value: Math.max(0, sample.memoryLimitBytes - sample.workingSetBytes) } } : {}),
  };
}

function sumSamples(samples: CgroupSample[]): CgroupSample {
  const sum = (key: keyof Omit<CgroupSample, 'memoryLimitBytes'>): number => samples.reduce((total, s) => total + s[key], 0);
  return {
    cpuUsageNs: sum('cpuUsageNs'),
    memoryUsageBytes: sum('memoryUsageBytes'),
    workingSetBytes: sum('workingSetBytes'),
    rssBytes: sum('rssBytes'),
    pageFaults: sum('pageFaults'),
    majorPageFaults: sum('majorPageFaults'),
    memoryLimitBytes: undefined,
    processes: sum('processes'),
  };
}

/** Interface counters as the pod sees them: /proc/<pause pid>/net/dev is read in its netns. */
async function networkUsage(timestamp: string, sandbox: Sandbox): Promise<wire.NetworkUsage> {
  const pid = sandbox.record.pausePid;
  if (!pid || sandbox.pauseExit || sandbox.record.namespaces.network === 'NODE') return { timestamp };
  let text: string;
  try {
    text = await fs.readFile(`/proc/${pid}/net/dev`, 'utf8');
  } catch {
    return { timestamp };
  }
  const interfaces = text
    .split('\n')
    .slice(2)
    .map((line) => line.trim().split(/[:\s]+/))
    .filter((fields) => fields.length >= 17 && fields[0] !== 'lo')
    .map((f) => ({
      name: f[0]!,
      rx_bytes: { value: Number(f[1]) },
      rx_errors: { value: Number(f[3]) },
      tx_bytes: { value: Number(f[9]) },
      tx_errors: { value: Number(f[11]) },
    }));
  const primary = interfaces.find((i) => i.name === 'eth0') ?? interfaces[0];
  return { timestamp, ...(primary ? { default_interface: primary } : {}), interfaces };
}
