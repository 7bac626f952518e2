import { constants as osConstants } from 'node:os';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { InternalError, NotFoundError } from '../errors.js';
import type { Runc } from './runc.js';
import { LEGACY_HANDLER, type RuntimeHandlers } from './handlers.js';
import { relayAttachSocket, type StreamIO } from './attach-socket.js';
import { ExecSessions, sessionDirsOf } from './exec-sessions.js';
import { ProcessWatcher, identityOf, isRunning, signalNumberOf, signalProcess, type ProcessIdentity } from './unmonitored.js';
import type {
  ContainerExit,
  CreateRequest,
  RunRequest,
  RuntimeState,
  ExecOptions,
  ExecOutcome,
  ExecStreamOptions,
  ExitListener,
  OciRuntime,
  ResizeSource,
  TerminalSize,
} from './runtime.js';
import { readJsonIfExists, writeJsonAtomic } from '../persistence/atomic.js';
import { withTerm } from './terminal-env.js';
import type { OciProcess, OciResources, OciSpec } from './spec-types.js';
import { pollUntil } from '../util/time.js';
import {
  CONMON_PIDFILE,
  CONTAINER_PIDFILE,
  CONTROL_REOPEN_LOG,
  CONTROL_RESIZE,
  EXEC_PIDFILE,
  createUnderConmon,
  execWithTerminal,
  isConmon,
  readPid,
  writeControl,
} from './conmon-launch.js';
import { ExitDirectory } from './exits.js';

export interface ConmonRuntimeOptions {
  /** Absolute path of the conmon binary. */
  conmon: string;
  /** The OCI runtimes containers run under; each container keeps the one it was made with. */
  handlers: RuntimeHandlers;
  /** One bundle directory per container below this; keep it short (socket paths). */
  bundleRoot: string;
  /** Where conmon writes one exit file per container, named by id. */
  exitDir: string;
  logger: Logger;
  /** How long `runc create` under conmon may take before it is abandoned. */
  createTimeoutMs?: number;
}

/** How long a delete waits for the container's conmon to end before killing it. */
const CONMON_EXIT_WAIT_MS = 2000;
/** Only the comm of a process is cheap to read: the kernel keeps its first 15 bytes. */
const COMM_LENGTH = 15;
const OOM_FILE = 'oom';
/** In the bundle of a container started without a monitor: its process's identity, to watch it again after a restart. */
const UNMONITORED_FILE = 'unmonitored.json';
/** In every bundle: the name of the handler whose runtime made the container. */
const HANDLER_FILE = 'handler';
/** In every bundle: the container's init as first seen (see rememberIdentity). */
const IDENTITY_FILE = 'identity.json';
/** The exit status of a container without a monitor: nobody reaps it, so it is unknown. */
const UNKNOWN_EXIT_CODE = 255;

/**
 * Containers run by runc under conmon, one conmon per container, as CRI-O does. conmon
 * double-forks and is reparented away from the daemon, so containers and their stdio
 * outlive a daemon restart; it writes `<exitDir>/<id>` when the container exits, which this
 * runtime watches (inotify) instead of polling. Beside it: how conmon is started and spoken to
 * (conmon-launch.ts), the exit directory (exits.ts), exec sessions on disk (exec-sessions.ts).
 */
export class ConmonRuntime implements OciRuntime {
  private readonly exits: ExitDirectory;
  private readonly createTimeoutMs: number;
  /** Exec sessions on disk (see exec-sessions.ts). */
  private readonly sessions: ExecSessions;
  /** Each container's init process as first seen, kept in its bundle for later daemons. */
  private readonly identities = new Map<string, ProcessIdentity>();
  /** Containers started by run(), which no conmon watches. */
  private readonly unmonitored = new ProcessWatcher((id) => void this.recordUnmonitoredExit(id));
  /** The signal each container without a monitor was last sent, which gives its exit status. */
  private readonly signalled = new Map<string, number>();
  /** The runtime each container was made by, as far as this daemon has looked it up. */
  private readonly clis = new Map<string, Runc>();

  constructor(private readonly options: ConmonRuntimeOptions) {
    this.createTimeoutMs = options.createTimeoutMs ?? 120_000;
    this.exits = new ExitDirectory(options.exitDir, (id) => path.join(this.bundleOf(id), OOM_FILE), options.logger);
    const binaries = [options.conmon, ...options.handlers.all().map((handler) => handler.cli.binary)];
    const monitorNames = new Set(binaries.map((file) => path.basename(file).slice(0, COMM_LENGTH)));
    this.sessions = new ExecSessions(options.bundleRoot, monitorNames, options.logger);
  }

  /** Create the bundle and exit directories and start watching for exits. */
  async open(): Promise<void> {
    await fs.mkdir(this.options.bundleRoot, { recursive: true, mode: 0o700 });
    await this.exits.open();
    await this.watchUnmonitoredAgain();
  }

  /**
   * After a restart: watch again the containers started without a monitor that still run,
   * and record the end of those that ended while no daemon watched.
   */
  private async watchUnmonitoredAgain(): Promise<void> {
    const ids = await fs.readdir(this.options.bundleRoot);
    await Promise.all(
      ids.map(async (id) => {
        const identity = await readJsonIfExists<ProcessIdentity>(path.join(this.bundleOf(id), UNMONITORED_FILE)).catch(() => undefined);
        if (!isIdentity(identity)) return;
        this.identities.set(id, identity);
        if (await isRunning(identity)) this.unmonitored.watch(id, identity);
        else if (!(await this.exits.has(id))) await this.recordUnmonitoredExit(id);
      }),
    );
  }

  /**
   * Write the exit file a conmon would have written, so the end of a container without a
   * monitor is seen as any other: through the exit directory. Its status is known only when
   * this daemon's signal ended it (no one reaps it here).
   */
  private async recordUnmonitoredExit(id: string): Promise<void> {
    const signal = this.signalled.get(id);
    this.signalled.delete(id);
    const exitCode = signal === undefined ? UNKNOWN_EXIT_CODE : 128 + signal;
    try {
      await this.exits.record(id, exitCode);
    } catch (err) {
      this.options.logger.error({ containerId: id, err }, 'cannot record the end of a container without a monitor');
    }
  }

  close(): void {
    this.unmonitored.stop();
    this.exits.close();
  }

  onExit(listener: ExitListener): void {
    this.exits.onExit(listener);
  }

  private bundleOf(id: string): string {
    return path.join(this.options.bundleRoot, id);
  }

  async specOf(id: string): Promise<OciSpec | undefined> {
    return readJsonIfExists<OciSpec>(path.join(this.bundleOf(id), 'config.json'));
  }

  async create(request: CreateRequest): Promise<{ pid: number }> {
    const { bundle, runc } = await this.writeBundle(request);
    const launch = { conmon: this.options.conmon, timeoutMs: this.createTimeoutMs, exitDir: this.options.exitDir };
    try {
      return { pid: await createUnderConmon(launch, request, bundle, runc, (pid) => this.rememberIdentity(request.id, pid)) };
    } catch (err) {
      await this.abandon(request);
      throw err;
    }
  }

  /**
   * The bundle: the spec, and the handler's name, written before the runtime is called, so
   * that every later call (by a later daemon too) goes to the runtime that made the container.
   * It lives on the volatile state dir and dies with the container: no fsync.
   */
  private async writeBundle(request: RunRequest): Promise<{ bundle: string; runc: Runc }> {
    const handler = this.options.handlers.get(request.handler);
    if (!handler) throw new InternalError(`container ${request.id}: no runtime handler ${request.handler}`);
    const bundle = this.bundleOf(request.id);
    await fs.mkdir(bundle, { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(bundle, HANDLER_FILE), handler.name);
    await writeJsonAtomic(path.join(bundle, 'config.json'), request.spec, { durable: false });
    this.clis.set(request.id, handler.cli);
    return { bundle, runc: handler.cli };
  }

  /**
   * The runtime that made a container: remembered, or named in its bundle. Without a bundle
   * (or with a handler no longer configured), the handler whose state directory knows the
   * container; runc's, as before handlers existed, when none does.
   */
  private async cliOf(id: string): Promise<Runc> {
    const known = this.clis.get(id);
    if (known) return known;
    const { handlers } = this.options;
    const named = await fs.readFile(path.join(this.bundleOf(id), HANDLER_FILE), 'utf8').catch(() => LEGACY_HANDLER);
    let cli = handlers.get(named.trim())?.cli;
    if (!cli) {
      const knowing = await Promise.all(handlers.all().map(async (handler) => ((await handler.cli.knows(id)) ? handler.cli : undefined)));
      cli = knowing.find((found) => found !== undefined) ?? handlers.get(LEGACY_HANDLER)?.cli ?? handlers.default.cli;
    }
    this.clis.set(id, cli);
    return cli;
  }

  async run(request: RunRequest): Promise<{ pid: number }> {
    const { bundle, runc } = await this.writeBundle(request);
    const pidFile = path.join(bundle, CONTAINER_PIDFILE);
    await runc.runDetached(request.id, bundle, pidFile, this.createTimeoutMs);
    const pid = await readPid(pidFile);
    const identity = pid === undefined ? undefined : await identityOf(pid);
    if (!identity) throw new InternalError(`container ${request.id} ended as soon as runc started it`);
    await writeJsonAtomic(path.join(bundle, UNMONITORED_FILE), identity, { durable: false });
    this.identities.set(request.id, identity);
    this.unmonitored.watch(request.id, identity);
    return { pid: identity.pid };
  }

  async start(id: string): Promise<void> {
    await (await this.cliOf(id)).start(id);
  }

  /**
   * Note the init's identity (pid and start time) as soon as it exists, in memory and in the
   * bundle, so that signals reach it without runc and never a process that reused its pid.
   */
  private async rememberIdentity(id: string, pid: number): Promise<void> {
    const identity = await identityOf(pid);
    if (!identity) return; // already gone: runc's kill will say so
    this.identities.set(id, identity);
    await writeJsonAtomic(path.join(this.bundleOf(id), IDENTITY_FILE), identity, { durable: false });
  }

  /** The identity noted at creation, read back from the bundle after a restart. */
  private async identityOf(id: string): Promise<ProcessIdentity | undefined> {
    const known = this.identities.get(id);
    if (known) return known;
    const read = await readJsonIfExists<ProcessIdentity>(path.join(this.bundleOf(id), IDENTITY_FILE)).catch(() => undefined);
    if (!isIdentity(read)) return undefined;
    this.identities.set(id, read);
    return read;
  }

  async kill(id: string, signal: string, all = false): Promise<boolean> {
    // Its only process, signalled directly: no runc to spawn.
    // The init process alone, signalled directly, once it is known to be the container's:
    // no runc to spawn. Every process, or an init not known, is runc's to find.
    const signalNumber = signalNumberOf(signal);
    const identity = all || signalNumber === undefined ? undefined : await this.identityOf(id);
    if (!identity || signalNumber === undefined) return (await this.cliOf(id)).kill(id, signal, all);
    if (!(await signalProcess(identity, signalNumber))) return false;
    if (this.unmonitored.identityOf(id)) {
      this.signalled.set(id, signalNumber);
      if (signalNumber === osConstants.signals.SIGKILL) void this.unmonitored.expectEnd(id);
    }
    return true;
  }

  async state(id: string): Promise<RuntimeState | undefined> {
    const state = await (await this.cliOf(id)).state(id);
    return state && { status: state.status, pid: state.pid };
  }

  async update(id: string, resources: OciResources): Promise<void> {
    await (await this.cliOf(id)).update(id, resources);
  }

  async exec(id: string, command: string[], options: ExecOptions = {}): Promise<ExecOutcome> {
    const session = await this.sessions.open(this.bundleOf(id), id, await this.execProcess(id, command, false));
    try {
      return await (await this.cliOf(id)).exec(id, session.processFile, path.join(session.dir, EXEC_PIDFILE), options);
    } finally {
      await this.sessions.close(session.dir);
    }
  }

  /**
   * The process an exec runs: the container's own (user, environment, working directory,
   * capabilities, limits, security labels) with the command's arguments and terminal. Built
   * here only, for ExecSync and streaming Exec alike.
   */
  private async execProcess(id: string, command: string[], terminal: boolean): Promise<OciProcess> {
    const spec = await this.specOf(id);
    if (!spec) throw new NotFoundError(`container ${id} has no bundle`);
    return { ...spec.process, args: command, terminal, env: terminal ? withTerm(spec.process.env ?? []) : spec.process.env };
  }

  /**
   * A streaming exec. Without a terminal, runc runs it with the client's streams as its pipes.
   * With one, a pty is needed, which runc only hands over as a file descriptor on a console
   * socket; conmon receives it and relays the terminal over an attach socket instead.
   */
  async execStream(id: string, command: string[], options: ExecStreamOptions): Promise<number> {
    const session = await this.sessions.open(this.bundleOf(id), id, await this.execProcess(id, command, options.tty));
    // A client that goes away takes its session with it: nobody is left to give the process
    // input or read its output, so it is killed, as containerd's CRI plugin kills an exec
    // whose stream is gone. Its monitor then returns, and the session ends as usual.
    let serving = true;
    let ending: Promise<void> | undefined;
    void options.clientGone?.then(() => {
      if (serving) ending = this.sessions.end([session.dir]);
    });
    try {
      if (!options.tty) return await (await this.cliOf(id)).execAttached(id, session.processFile, options.io);
      const launch = { conmon: this.options.conmon, timeoutMs: this.createTimeoutMs };
      const endSession = (): Promise<void> => this.sessions.end([session.dir]);
      return await execWithTerminal(launch, await this.cliOf(id), { id, ...session, io: options.io, resizes: options.resizes, endSession });
    } finally {
      serving = false;
      await ending;
      await this.sessions.close(session.dir);
    }
  }

  /** End the exec sessions an earlier daemon left (see ExecSessions.endOrphaned). */
  endOrphanedExecSessions(): Promise<void> {
    return this.sessions.endOrphaned();
  }

  async attach(id: string, io: StreamIO, resizes?: ResizeSource, until?: Promise<void>): Promise<void> {
    const resize = (size: TerminalSize): void => void this.resize(id, size.width, size.height).catch(() => undefined);
    resizes?.on('resize', resize);
    if (resizes?.latest) resize(resizes.latest);
    try {
      await relayAttachSocket(path.join(this.bundleOf(id), 'attach'), io, until ? { until } : {});
    } finally {
      resizes?.off('resize', resize);
    }
  }

  async reopenLog(id: string): Promise<void> {
    await writeControl(this.bundleOf(id), CONTROL_REOPEN_LOG, 0, 0);
  }

  async resize(id: string, width: number, height: number): Promise<void> {
    await writeControl(this.bundleOf(id), CONTROL_RESIZE, height, width);
  }

  async release(id: string): Promise<void> {
    await (await this.cliOf(id)).delete(id, false);
  }

  async delete(id: string): Promise<void> {
    const bundle = this.bundleOf(id);
    // Unwatched first: the end the delete causes must not write an exit file again.
    this.unmonitored.forget(id);
    this.identities.delete(id);
    this.signalled.delete(id);
    await (await this.cliOf(id)).delete(id, true);
    this.clis.delete(id);
    // The delete killed every process of the container, exec'd ones too; their monitors end
    // moments later, and must be gone before the bundle with their session directories goes.
    await this.sessions.end(await sessionDirsOf(bundle));
    // A container killed by the delete makes its conmon write an exit file moments later;
    // wait for conmon itself to end (not for an exit file: a container that never started
    // has none to write) so that file is not left behind after we remove it.
    const conmonPid = await readPid(path.join(bundle, CONMON_PIDFILE));
    if (conmonPid !== undefined && !(await pollUntil(async () => !(await isConmon(conmonPid)), CONMON_EXIT_WAIT_MS))) {
      killQuietly(conmonPid);
    }
    await this.exits.remove(id);
    // A session opened while this ran adds a directory under the bundle: retried, not failed.
    await fs.rm(bundle, { recursive: true, force: true, maxRetries: 3 });
  }

  exitOf(id: string): Promise<ContainerExit | undefined> {
    return this.exits.exitOf(id);
  }

  waitExit(id: string, timeoutMs: number): Promise<ContainerExit | undefined> {
    return this.exits.waitExit(id, timeoutMs);
  }

  /**
   * After a failed or timed-out create, once what conmon-launch started is killed: drop runc's
   * state, which also kills a container init that got as far as existing.
   */
  private async abandon(request: CreateRequest): Promise<void> {
    try {
      await (await this.cliOf(request.id)).delete(request.id, true);
    } catch (err) {
      request.log.warn({ err }, 'runc delete after failed create');
    }
    await this.exits.remove(request.id);
  }
}

/** A process identity read back from a file the daemon wrote (the state dir may be tampered with). */
function isIdentity(value: unknown): value is ProcessIdentity {
  const { pid, startTime } = (value ?? {}) as Partial<ProcessIdentity>;
  return Number.isInteger(pid) && pid! > 1 && typeof startTime === 'string' && /^\d+$/.test(startTime);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
