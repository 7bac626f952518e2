import type { Logger } from 'pino';
import type { StreamIO } from './attach-socket.js';
import type { OciResources, OciSpec } from './spec-types.js';

/** How a container's stdio is wired by its monitor. */
export interface ContainerIO {
  /** CRI log file (k8s-file format); undefined: output is discarded (pause containers). */
  logPath?: string;
  terminal: boolean;
  stdin: boolean;
  /** Close the container's stdin when the first attached client detaches. */
  stdinOnce: boolean;
}

export interface CreateRequest {
  id: string;
  /** The runtime handler (a configured name) whose runtime creates and manages it. */
  handler: string;
  spec: OciSpec;
  io: ContainerIO;
  log: Logger;
}

/** A container started by `run`: its spec only. */
export type RunRequest = Pick<CreateRequest, 'id' | 'handler' | 'spec'>;

/** A container as the OCI runtime sees it (the runtime spec's state), in tscri's terms. */
export interface RuntimeState {
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  /** Its init's pid (0 once stopped). */
  pid: number;
}

/** How a container ended, as its monitor recorded it. */
export interface ContainerExit {
  exitCode: number;
  exitedAt: Date;
  oomKilled: boolean;
}

export type ExitListener = (id: string, exit: ContainerExit) => void;

export interface ExecOptions {
  /** Kill the process after this long (the result then says timedOut). */
  timeoutMs?: number;
  /** Output kept per stream; the rest is dropped. */
  maxOutputBytes?: number;
}

export interface TerminalSize {
  width: number;
  height: number;
}

/**
 * Where terminal size changes come from: emits 'resize' with a TerminalSize, and remembers the
 * latest one, since a client sends its size once at the start, often before the terminal exists.
 */
export interface ResizeSource extends NodeJS.EventEmitter {
  readonly latest: TerminalSize | undefined;
}

export interface ExecStreamOptions {
  tty: boolean;
  io: StreamIO;
  resizes?: ResizeSource;
  /**
   * Resolves when the client went away. The session ends with it: its process is killed
   * (nobody can give it input or read its output any more) and its files removed.
   */
  clientGone?: Promise<void>;
}

export interface ExecOutcome {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
  timedOut: boolean;
}

/**
 * The runtime layer: owns each container's bundle (config.json and the monitor's sockets),
 * creates containers under a per-container monitor, and reports their exits. conmon + runc
 * is the implementation (conmon.ts); unit tests may substitute a fake.
 */
export interface OciRuntime {
  /** Write the bundle and `runc create` under a monitor; resolves with the init pid. */
  create(request: CreateRequest): Promise<{ pid: number }>;
  start(id: string): Promise<void>;
  /**
   * Create and start a container no monitor needs to watch: no stdio, log or terminal, and
   * no exit status anyone reads (the pause container). The runtime notices its end itself
   * and reports it through onExit; resolves with its pid.
   */
  run(request: RunRequest): Promise<{ pid: number }>;
  /** Signal the container; false when there was nothing to signal (gone, or stopped). */
  kill(id: string, signal: string, all?: boolean): Promise<boolean>;
  /**
   * Force-delete the container, its bundle and its exit record; idempotent. Its exec
   * sessions end with it, and their files go with the bundle.
   */
  delete(id: string): Promise<void>;
  /**
   * Free what an exited container still holds in runc (its state and cgroups) ahead of
   * delete, so the removal that follows is cheap; the bundle and exit record stay.
   */
  release(id: string): Promise<void>;
  /** What the OCI runtime knows of the container; undefined when it has no such container. */
  state(id: string): Promise<RuntimeState | undefined>;
  /** The spec the container was created with, if its bundle still exists. */
  specOf(id: string): Promise<OciSpec | undefined>;
  /** The recorded exit of a container, if it has exited. */
  exitOf(id: string): Promise<ContainerExit | undefined>;
  /** Resolve with the exit once recorded, or undefined after `timeoutMs`. */
  waitExit(id: string, timeoutMs: number): Promise<ContainerExit | undefined>;
  update(id: string, resources: OciResources): Promise<void>;
  /** Run a process in the container to completion, stdout and stderr apart. */
  exec(id: string, command: string[], options?: ExecOptions): Promise<ExecOutcome>;
  /** Run a process in the container wired to a client's streams; resolves with its exit code. */
  execStream(id: string, command: string[], options: ExecStreamOptions): Promise<number>;
  /**
   * End every exec session (streaming or ExecSync) that an earlier daemon served: kill its
   * processes and its monitor and remove its files. Called while the daemon recovers; never
   * fails (what it cannot end is logged), and never touches a session this daemon serves.
   */
  endOrphanedExecSessions(): Promise<void>;
  /** Wire a client's streams to the container's own stdio until it exits or `until` resolves. */
  attach(id: string, io: StreamIO, resizes?: ResizeSource, until?: Promise<void>): Promise<void>;
  /** Ask the monitor to reopen the container's log file (after rotation). */
  reopenLog(id: string): Promise<void>;
  /** Tell the monitor the terminal size changed. */
  resize(id: string, width: number, height: number): Promise<void>;
  /** Subscribe to exits as the monitor records them. */
  onExit(listener: ExitListener): void;
  close(): void;
}
