import type * as cri from '../api/cri.js';
import { constants as osConstants } from 'node:os';
import { Signal } from '../api/generated/runtime/v1/Signal.js';
import { joinNameParts } from '../persistence/names.js';
import type { ImageVolume } from './image-volumes.js';

/**
 * Life of a container record:
 *
 *   creating ──rootfs, spec, runc create──▶ created ──StartContainer──▶ running ──exit──▶ exited
 *      │                                      │                                           │
 *      └─ failure: steps undone ◀─────────────┴──────────── RemoveContainer ──────────────┘
 *
 * `running` and `exited` are not written as phases: a container is running once `startedAt`
 * is set and exited once `exit` is recorded (from conmon's exit file, which is written even
 * while the daemon is down and read back at recovery).
 */
export type ContainerPhase = 'creating' | 'created';

export const CONTAINER_RECORD_VERSION = 1;

export interface ContainerExitRecord {
  exitCode: number;
  /** Nanoseconds since the epoch. */
  finishedAt: string;
  reason: 'Completed' | 'Error' | 'OOMKilled' | 'Unknown';
  message: string;
}

/** Everything that must survive a daemon restart about one container. */
export interface ContainerRecord {
  version: typeof CONTAINER_RECORD_VERSION;
  id: string;
  sandboxId: string;
  /** The reserved `<name>_<pod name>_<pod namespace>_<pod uid>_<attempt>`. */
  name: string;
  /** The request's config; env values are stored as text. */
  config: cri.ContainerConfig;
  image: {
    /** The image as the client named it. */
    requested: string;
    /** The image id (config digest). */
    id: string;
    /** A repo tag or digest naming the image, for status. */
    name: string;
    /** Layers the rootfs stands on (kept on disk while this container exists). */
    layers: string[];
  };
  phase: ContainerPhase;
  createdAt: string;
  startedAt?: string;
  exit?: ContainerExitRecord;
  /** Absolute path of the CRI log file; empty when the pod has no log directory. */
  logPath: string;
  /** The pid of the container's init, once created. */
  pid?: number;
  /** Current limits (as created, or as last updated). */
  resources: cri.LinuxContainerResources | null;
  /** The signal StopContainer sends first. */
  stopSignal: string;
  /** Whether the container has its own pid namespace (then killing init ends it). */
  ownPidNamespace: boolean;
  /** The uid, gid and supplementary groups its process runs with (set once the spec is built). */
  user?: { uid: number; gid: number; additionalGids: number[] };
  /** Images mounted as volumes, each recorded before it is mounted. */
  imageVolumes?: ImageVolume[];
  /** How long each step of CreateContainer and StartContainer took, in ms (verbose status). */
  timings?: Record<string, number>;
}

/** Every layer the container stands on: its image's and its image volumes'. */
export function layersHeldBy(record: ContainerRecord): string[] {
  return [...record.image.layers, ...(record.imageVolumes ?? []).flatMap((v) => v.layers)];
}

export type CriContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

export function criStateOf(record: ContainerRecord): CriContainerState {
  if (record.exit) return 'CONTAINER_EXITED';
  if (record.startedAt) return 'CONTAINER_RUNNING';
  if (record.phase === 'created') return 'CONTAINER_CREATED';
  return 'CONTAINER_UNKNOWN';
}

/** The reason kubelet expects for an exit: OOMKilled, Completed (0) or Error. */
export function exitReason(exitCode: number, oomKilled: boolean): ContainerExitRecord['reason'] {
  if (oomKilled) return 'OOMKilled';
  return exitCode === 0 ? 'Completed' : 'Error';
}

/**
 * The Signal enum name for a stop signal as recorded (`SIGUSR1`, `SIGRTMIN+3`, `10`):
 * what ContainerStatus.stop_signal reports. Unknown numbers report RUNTIME_DEFAULT.
 */
export function stopSignalEnum(signal: string): string {
  const name = /^\d+$/.test(signal) ? signalNameOf(Number(signal)) : signal;
  if (!name) return 'RUNTIME_DEFAULT';
  const enumName = name.replace('+', 'PLUS').replace('-', 'MINUS');
  return (SIGNAL_NAMES as readonly string[]).includes(enumName) ? enumName : 'RUNTIME_DEFAULT';
}

function signalNameOf(number: number): string | undefined {
  return Object.entries(osConstants.signals).find(([, n]) => n === number)?.[0];
}

const SIGNAL_NAMES = Object.values(Signal);

/** The reserved name of a container: unique per container name, attempt and pod. */
export function containerNameOf(meta: cri.ContainerMetadata, pod: cri.PodSandboxMetadata): string {
  return joinNameParts([meta.name, pod.name, pod.namespace, pod.uid, String(meta.attempt)]);
}
