/**
 * An in-memory OciRuntime for unit tests: no conmon, no runc, no root.
 *
 *   const runtime = new FakeOciRuntime();
 *   runtime.failOn('run', new Error('runc: boom'));   // the next run() rejects (once)
 *   await service.doSomething();
 *   runtime.calls;                // [{ method: 'run', id }, { method: 'delete', id }, …] in call order
 *   runtime.methods();            // ['run', 'delete', …]
 *   runtime.exit(id, 137);        // the container exits: onExit listeners and waitExit resolve
 *
 * Containers: create() makes one `created`, start() makes it `running`, run() both. kill()
 * of a running container records an exit (137 for KILL, 143 otherwise) unless
 * `exitOnKill` is false. delete() forgets the container and its exit. Pids count up from 1000.
 *
 * Give several fakes one `journal` array to see the order of calls across them: each call
 * adds `runtime.<method> <id>`.
 */
import type {
  ContainerExit,
  CreateRequest,
  ExecOutcome,
  ExitListener,
  OciRuntime,
  RunRequest,
  RuntimeState,
} from '../../../src/oci/runtime.js';
import type { OciResources, OciSpec } from '../../../src/oci/spec-types.js';
import { Failures, type Failure } from './failures.js';

/** The OciRuntime methods a test can watch or make fail. */
export type RuntimeMethod = Exclude<keyof OciRuntime, 'onExit' | 'close'>;

export interface RuntimeCall {
  method: RuntimeMethod;
  /** The container id (absent for endOrphanedExecSessions). */
  id?: string;
  /** Extra arguments worth asserting: the signal of kill, the command of exec. */
  detail?: unknown;
}

/** A container as the fake holds it. */
export interface FakeContainer {
  id: string;
  handler: string;
  spec: OciSpec;
  state: RuntimeState;
  exit?: ContainerExit;
}

export class FakeOciRuntime implements OciRuntime {
  /** Every call, in the order made. */
  readonly calls: RuntimeCall[] = [];
  readonly containers = new Map<string, FakeContainer>();
  /** kill() of a running container records its exit at once (as a SIGKILL would). */
  exitOnKill = true;
  /** What exec() answers. */
  execOutcome: ExecOutcome = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), exitCode: 0, timedOut: false };
  private readonly failures = new Failures<RuntimeMethod, string | undefined>();
  private readonly listeners: ExitListener[] = [];
  private readonly waiters = new Map<string, Array<(exit: ContainerExit) => void>>();
  private nextPid = 1000;

  constructor(private readonly options: { journal?: string[] } = {}) {}

  /**
   * Make `method` reject: with `error` once (the default), or on every call (`sticky`). A
   * function is asked per call with the container id and fails the call when it returns an
   * error. Failures queue: the first registered is used first.
   */
  failOn(method: RuntimeMethod, failure: Failure<string | undefined>, options: { sticky?: boolean } = {}): this {
    this.failures.add(method, failure, options.sticky ?? false);
    return this;
  }

  /** The methods called, in order (optionally only those on one container). */
  methods(id?: string): RuntimeMethod[] {
    return this.calls.filter((c) => id === undefined || c.id === id).map((c) => c.method);
  }

  /** The container exits now: its state becomes stopped and exit listeners and waiters hear it. */
  exit(id: string, exitCode = 0, oomKilled = false): ContainerExit {
    const exit: ContainerExit = { exitCode, exitedAt: new Date(), oomKilled };
    const container = this.containers.get(id);
    if (container) {
      container.state = { status: 'stopped', pid: 0 };
      container.exit = exit;
    }
    for (const resolve of this.waiters.get(id) ?? []) resolve(exit);
    this.waiters.delete(id);
    for (const listener of this.listeners) listener(id, exit);
    return exit;
  }

  async create(request: CreateRequest): Promise<{ pid: number }> {
    this.record('create', request.id);
    return { pid: this.add(request, 'created').state.pid };
  }

  async start(id: string): Promise<void> {
    this.record('start', id);
    const container = this.containers.get(id);
    if (container) container.state = { status: 'running', pid: container.state.pid };
  }

  async run(request: RunRequest): Promise<{ pid: number }> {
    this.record('run', request.id);
    return { pid: this.add(request, 'running').state.pid };
  }

  async kill(id: string, signal: string, all?: boolean): Promise<boolean> {
    this.record('kill', id, { signal, all });
    const container = this.containers.get(id);
    if (!container || container.state.status === 'stopped') return false;
    if (this.exitOnKill) this.exit(id, signal === 'KILL' || signal === 'SIGKILL' ? 137 : 143);
    return true;
  }

  async delete(id: string): Promise<void> {
    this.record('delete', id);
    this.containers.delete(id);
  }

  async release(id: string): Promise<void> {
    this.record('release', id);
  }

  async state(id: string): Promise<RuntimeState | undefined> {
    this.record('state', id);
    const container = this.containers.get(id);
    return container && { ...container.state };
  }

  async specOf(id: string): Promise<OciSpec | undefined> {
    this.record('specOf', id);
    return this.containers.get(id)?.spec;
  }

  async exitOf(id: string): Promise<ContainerExit | undefined> {
    this.record('exitOf', id);
    return this.containers.get(id)?.exit;
  }

  async waitExit(id: string, timeoutMs: number): Promise<ContainerExit | undefined> {
    this.record('waitExit', id);
    const known = this.containers.get(id)?.exit;
    if (known) return known;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      const waiting = this.waiters.get(id) ?? [];
      waiting.push((exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
      this.waiters.set(id, waiting);
    });
  }

  async update(id: string, resources: OciResources): Promise<void> {
    this.record('update', id, resources);
  }

  async exec(id: string, command: string[]): Promise<ExecOutcome> {
    this.record('exec', id, command);
    return this.execOutcome;
  }

  async execStream(id: string, command: string[]): Promise<number> {
    this.record('execStream', id, command);
    return this.execOutcome.exitCode;
  }

  async endOrphanedExecSessions(): Promise<void> {
    this.record('endOrphanedExecSessions', undefined);
  }

  async attach(id: string): Promise<void> {
    this.record('attach', id);
  }

  async reopenLog(id: string): Promise<void> {
    this.record('reopenLog', id);
  }

  async resize(id: string, width: number, height: number): Promise<void> {
    this.record('resize', id, { width, height });
  }

  onExit(listener: ExitListener): void {
    this.listeners.push(listener);
  }

  close(): void {
    this.waiters.clear();
  }

  private add(request: RunRequest, status: RuntimeState['status']): FakeContainer {
    const container: FakeContainer = { id: request.id, handler: request.handler, spec: request.spec, state: { status, pid: this.nextPid++ } };
    this.containers.set(request.id, container);
    return container;
  }

  /** Note the call, then throw the failure injected for it, if any. */
  private record(method: RuntimeMethod, id: string | undefined, detail?: unknown): void {
    this.calls.push(detail === undefined ? { method, id } : { method, id, detail });
    this.options.journal?.push(`runtime.${method} ${id ?? ''}`.trimEnd());
    this.failures.throwIfDue(method, id);
  }
}
