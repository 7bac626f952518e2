/** How a sandbox is reported: PodSandboxStatus (and its verbose info) and ListPodSandbox. */
import type * as wire from '../api/wire.js';
import type { OciRuntime } from '../oci/runtime.js';
import { criStateOf, type Sandbox } from './sandbox.js';

export function statusOf(sandbox: Readonly<Sandbox>): wire.PodSandboxStatus {
  const { record } = sandbox;
  return {
    ...listItemOf(sandbox),
    network: {
      ip: record.network?.ip ?? '',
      additional_ips: (record.network?.additionalIps ?? []).map((ip) => ({ ip })),
    },
    linux: { namespaces: { options: record.namespaces } },
  };
}

/** One ListPodSandbox item: what a status says, short of the network and namespaces. */
export function listItemOf(sandbox: Readonly<Sandbox>): wire.PodSandbox {
  const { record } = sandbox;
  return {
    id: record.id,
    metadata: record.config.metadata,
    state: criStateOf(sandbox),
    created_at: record.createdAt,
    labels: record.config.labels,
    annotations: record.config.annotations,
    runtime_handler: record.runtimeHandler,
  };
}

/** PodSandboxStatus's verbose info: the record's internals and the pause container's spec. */
export async function verboseInfoOf(sandbox: Readonly<Sandbox>, runtime: Pick<OciRuntime, 'specOf'>): Promise<Record<string, unknown>> {
  const { record } = sandbox;
  return {
    phase: record.phase,
    pid: record.pausePid,
    image: record.sandboxImage,
    netnsPath: record.netnsPath ?? '',
    shmPath: record.shmPath ?? '',
    hostname: record.hostname,
    cgroupsPath: record.cgroupsPath,
    network: record.network
      ? { name: record.network.networkName, source: record.network.networkSource }
      : undefined,
    cniResult: record.network?.cniResult,
    pauseExit: sandbox.pauseExit,
    timingsMs: record.timings,
    resources: record.resources,
    runtimeSpec: await runtime.specOf(record.id),
    config: record.config,
  };
}
