/** A container record as kubelet sees it: its status, its list entry, and the facts stats read. */
import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import { criStateOf, stopSignalEnum, type ContainerRecord } from './container.js';

export function criStatus(record: Readonly<ContainerRecord>): wire.ContainerStatus {
  return {
    id: record.id,
    metadata: record.config.metadata,
    state: criStateOf(record),
    created_at: record.createdAt,
    started_at: record.startedAt ?? '0',
    finished_at: record.exit?.finishedAt ?? '0',
    exit_code: record.exit?.exitCode ?? 0,
    image: { image: record.image.name, annotations: record.config.image?.annotations ?? {} },
    image_ref: record.image.id,
    image_id: record.image.id,
    reason: record.exit?.reason ?? '',
    message: record.exit?.message ?? '',
    labels: record.config.labels,
    annotations: record.config.annotations,
    mounts: record.config.mounts,
    log_path: record.logPath,
    resources: record.resources ? { linux: record.resources } : null,
    // What runc applied from the spec: kubelet shows it in the pod's status (the
    // SupplementalGroupsPolicy feature), so that Merge and Strict can be told apart.
    user: record.user ? { linux: { uid: record.user.uid, gid: record.user.gid, supplemental_groups: record.user.additionalGids } } : null,
    stop_signal: stopSignalEnum(record.stopSignal) as wire.ContainerStatus['stop_signal'],
  };
}

/** ListContainers' entry for a container. */
export function listEntry(record: Readonly<ContainerRecord>): wire.Container {
  return {
    id: record.id,
    pod_sandbox_id: record.sandboxId,
    metadata: record.config.metadata,
    image: { image: record.image.name, annotations: {} },
    image_ref: record.image.id,
    image_id: record.image.id,
    state: criStateOf(record),
    created_at: record.createdAt,
    labels: record.config.labels,
    annotations: record.config.annotations,
  };
}

/** ContainerStatus' verbose info: the record's inner facts and the spec runc was given. */
export function verboseInfo(record: Readonly<ContainerRecord>, rootfs: string, runtimeSpec: unknown): Record<string, string> {
  return {
    info: JSON.stringify({
      sandboxID: record.sandboxId,
      pid: record.pid,
      phase: record.phase,
      image: record.image,
      rootfs,
      timingsMs: record.timings ?? {},
      runtimeSpec,
    }),
  };
}

/**
 * What container stats and metrics read of a container, taken when asked: a copy, so a
 * sample in progress never sees the record change under it.
 */
export interface ContainerFacts {
  id: string;
  sandboxId: string;
  metadata: cri.ContainerMetadata | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The image as metrics label it: the name status reports, else the one requested. */
  image: string;
  /** Current limits (as created, or as last updated). */
  resources: cri.LinuxContainerResources | null;
  exited: boolean;
  /** The cgroupsPath its spec gave runc; undefined when its pod is gone. */
  cgroupsPath: string | undefined;
  /** Its writable layer (the overlay's upper directory). */
  writableLayer: string;
}

export function factsOf(record: Readonly<ContainerRecord>, cgroupsPath: string | undefined, writableLayer: string): ContainerFacts {
  return {
    id: record.id,
    sandboxId: record.sandboxId,
    metadata: record.config.metadata,
    labels: record.config.labels,
    annotations: record.config.annotations,
    image: record.image.name || record.image.requested,
    resources: record.resources,
    exited: record.exit !== undefined,
    cgroupsPath,
    writableLayer,
  };
}
