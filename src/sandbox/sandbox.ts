import type * as cri from '../api/cri.js';
import { LEGACY_HANDLER } from '../oci/handlers.js';
import type { ContainerExit } from '../oci/runtime.js';
import type { PodSelinux } from '../oci/selinux.js';

/**
 * Life of a sandbox record:
 *
 *   creating ──all steps done──▶ ready ──StopPodSandbox──▶ stopped ──RemovePodSandbox──▶ (gone)
 *      │                           │
 *      │ failure: steps undone,    │ pause exits on its own: still `ready` on disk,
 *      │ record removed            │ reported NOTREADY until StopPodSandbox tears down
 *      ▼
 *   (daemon killed mid-way: the record stays `creating`; it is reported NOTREADY and
 *    Stop/Remove run the same idempotent teardown over whatever was made)
 */
export type SandboxPhase = 'creating' | 'ready' | 'stopped';

export const SANDBOX_RECORD_VERSION = 1;

export interface SandboxNetwork {
  /** Primary pod IP (first IPv4 if any, else first IP). */
  ip: string;
  additionalIps: string[];
  networkName: string;
  networkSource: string;
  /** The final CNI result as the last plugin printed it. */
  cniResult: unknown;
}

/** Everything that must survive a daemon restart about one sandbox. */
export interface SandboxRecord {
  version: typeof SANDBOX_RECORD_VERSION;
  id: string;
  /** The reserved `<name>_<namespace>_<uid>_<attempt>`. */
  name: string;
  config: cri.PodSandboxConfig;
  /** The handler RunPodSandbox named ("" for the node's default), reported back as asked. */
  runtimeHandler: string;
  /** The configured handler whose OCI runtime runs the pod's containers; absent: runc (older records). */
  ociRuntime?: string;
  /** Nanoseconds since the epoch. */
  createdAt: string;
  phase: SandboxPhase;
  namespaces: cri.NamespaceOption;
  /** Chosen before the netns exists, so teardown can find it after a crash; absent for host network. */
  netnsPath?: string;
  /** The pod's /dev/shm tmpfs; absent when the pod shares the host's IPC. */
  shmPath?: string;
  hostname: string;
  cgroupParent: string;
  cgroupsPath: string;
  sandboxImage: string;
  network?: SandboxNetwork;
  pausePid?: number;
  /** The pod's SELinux MCS level, shared by its containers; absent without SELinux (and in older records). */
  selinuxLevel?: string;
  /** Per-step durations of RunPodSandbox in ms, for verbose status. */
  timings: Record<string, number>;
  /** The last UpdatePodSandboxResources, as asked (the containers' sum and the overhead). */
  resources?: { resources: cri.LinuxContainerResources | null; overhead: cri.LinuxContainerResources | null };
}

/** A sandbox as the daemon holds it: the durable record plus what is only observed. */
export interface Sandbox {
  record: SandboxRecord;
  /** Set once the pause container has exited (on its own or because it was stopped). */
  pauseExit?: ContainerExit;
  /** The pod's STOPPED event went out (once, whether the pause exited or Stop ended it). */
  stoppedEventSent?: boolean;
}

export type CriSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

export function criStateOf(sandbox: Sandbox): CriSandboxState {
  return sandbox.record.phase === 'ready' && !sandbox.pauseExit ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY';
}

export function isHostNetwork(record: SandboxRecord): boolean {
  return record.namespaces.network === 'NODE';
}

/** The configured handler that runs a pod's containers; runc for pods made before handlers existed. */
export function handlerNameOf(record: SandboxRecord): string {
  return record.ociRuntime ?? LEGACY_HANDLER;
}

/** What SELinux labelling needs of a pod, for its pause process and its containers. */
export function podSelinuxOf(record: SandboxRecord): PodSelinux {
  return {
    options: record.config.linux?.security_context?.selinux_options ?? null,
    level: record.selinuxLevel,
    sharesHostProcesses: record.namespaces.pid === 'NODE' || record.namespaces.ipc === 'NODE',
  };
}
