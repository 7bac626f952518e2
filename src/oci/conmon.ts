import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { constants as fsConstants, promises as fs, watch, type FSWatcher } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { InternalError, NotFoundError, TscriError, errnoCode, messageOf } from '../errors.js';
import { cleanRuncMessage, runtimeFailure } from './runtime-errors.js';
import type { Runc } from './runc.js';
import { LEGACY_HANDLER, type RuntimeHandlers } from './handlers.js';
import { relayAttachSocket, type StreamIO } from './attach-socket.js';
import { EXECS_DIR, SESSION_PROCESS_FILE, allSessionDirs, endExecSessions, sessionDirsOf } from './exec-sessions.js';
import { readProcess } from '../util/proc.js';
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
import { readJsonIfExists, writeJsonAtomic } from '../store/atomic.js';
import { withTerm } from './terminal-env.js';
import { newId } from '../util/ids.js';
import type { OciProcess, OciResources, OciSpec } from './spec-types.js';
import { after } from '../util/timer.js';
import { pollUntil } from '../util/time.js';
import { CappedOutput, killProcessGroup, outputExcerpt } from '../util/run.js';

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

/** An exec session's directory and the process spec written in it. */
interface ExecSession {
  dir: string;
  processFile: string;
}

/** What conmon reports on its sync pipe: the container pid, or -1 and why not. */
interface SyncMessage {
  data: number;
  message?: string;
}

/** How long a delete waits for the container's conmon to end before killing it. */
const CONMON_EXIT_WAIT_MS = 2000;
const CONMON_PIDFILE = 'conmon.pid';
/** Message types on conmon's `ctl` fifo: "<type> <height> <width>\n". */
const CONTROL_RESIZE = 1;
const CONTROL_REOPEN_LOG = 2;
const CONTAINER_PIDFILE = 'pidfile';
/** The exec'd process's pid, written by runc (or conmon) into the session's directory. */
const EXEC_PIDFILE = 'exec.pid';
/** Only the comm of a process is cheap to read: the kernel keeps its first 15 bytes. */
const COMM_LENGTH = 15;
const OOM_FILE = 'oom';
/** In the bundle of a container started without a monitor: its process's identity, to watch it again after a restart. */
const UNMONITORED_FILE = 'unmonitored.json';
/** How often a wait for the end of a container without a monitor looks at /proc. */
const UNMONITORED_WAIT_POLL_MS = 5;
/** In every bundle: the name of the handler whose runtime made the container. */
const HANDLER_FILE = 'handler';
/** In every bundle: the container's init as first seen (see rememberIdentity). */
const IDENTITY_FILE = 'identity.json';
/** The exit status of a container without a monitor: nobody reaps it, so it is unknown. */
const UNKNOWN_EXIT_CODE = 255;
/** conmon's own stderr is a line or two (its errors before it daemonizes); more is dropped. */
const MAX_STDERR_BYTES = 64 * 1024;
/** A sync pipe carries a few short JSON lines; one that does not is not conmon talking. */
const MAX_SYNC_BYTES = 64 * 1024;

/**
 * Containers run by runc under conmon, one conmon per container, as CRI-O does. conmon
 * double-forks and is reparented away from the daemon, so containers and their stdio
 * outlive a daemon restart; it writes `<exitDir>/<id>` when the container exits, which this
 * runtime watches (inotify) instead of polling.
 */
export class ConmonRuntime implements OciRuntime {
  private readonly exits = new EventEmitter();
  private watcher: FSWatcher | undefined;
  private readonly createTimeoutMs: number;
  /** Directories of the exec sessions this daemon serves now (see exec-sessions.ts). */
  private readonly liveSessions = new Set<string>();
  /** What the monitors of exec sessions are called in the process table: conmon and runc. */
  private readonly monitorNames: ReadonlySet<string>;
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
    this.exits.setMaxListeners(0);
    const binaries = [options.conmon, ...options.handlers.all().map((handler) => handler.cli.binary)];
    this.monitorNames = new Set(binaries.map((file) => path.basename(file).slice(0, COMM_LENGTH)));
  }

  /** Create the bundle and exit directories and start watching for exits. */
  async open(): Promise<void> {
    await fs.mkdir(this.options.bundleRoot, { recursive: true, mode: 0o700 });
    await fs.mkdir(this.options.exitDir, { recursive: true, mode: 0o700 });
    this.watcher = watch(this.options.exitDir, (_event, file) => {
      if (file && !file.startsWith('.')) void this.reportExit(file.toString());
    });
    this.watcher.on('error', (err) => this.options.logger.error({ err: messageOf(err) }, 'exit dir watch failed'));
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
        else if (!(await fileExists(path.join(this.options.exitDir, id)))) await this.recordUnmonitoredExit(id);
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
    const file = path.join(this.options.exitDir, id);
    const temporary = path.join(this.options.exitDir, `.${id}.tmp`);
    try {
      await fs.writeFile(temporary, String(exitCode));
      await fs.rename(temporary, file);
    } catch (err) {
      this.options.logger.error({ containerId: id, err: messageOf(err) }, 'cannot record the end of a container without a monitor');
    }
  }

  close(): void {
    this.unmonitored.stop();
    this.watcher?.close();
    this.watcher = undefined;
  }

  onExit(listener: ExitListener): void {
    this.exits.on('exit', listener);
  }

  private bundleOf(id: string): string {
    return path.join(this.options.bundleRoot, id);
  }

  async specOf(id: string): Promise<OciSpec | undefined> {
    return readJsonIfExists<OciSpec>(path.join(this.bundleOf(id), 'config.json'));
  }

  async create(request: CreateRequest): Promise<{ pid: number }> {
    const { bundle, runc } = await this.writeBundle(request);
    return this.createUnderConmon(request, bundle, runc);
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

  private async createUnderConmon(request: CreateRequest, bundle: string, runc: Runc): Promise<{ pid: number }> {
    const args = [
      // A flag without a value: it selects the {"data": <pid>} form of the sync message.
      '--api-version',
      '--cid', request.id,
      '--cuuid', request.id,
      '--name', request.id,
      '--runtime', runc.binary,
      '--bundle', bundle,
      '--container-pidfile', path.join(bundle, CONTAINER_PIDFILE),
      '--conmon-pidfile', path.join(bundle, CONMON_PIDFILE),
      '--log-path', request.io.logPath ? `k8s-file:${request.io.logPath}` : 'none:',
      '--exit-dir', this.options.exitDir,
      // conmon writes the `oom` marker here when the kernel OOM-kills the container.
      '--persist-dir', bundle,
      // The attach socket, ctl and winsz fifos live in the bundle itself; bundle paths are
      // kept short enough for a socket address.
      '--full-attach',
      '--socket-dir-path', bundle,
      '--log-level', 'warn',
      ...runc.globalArgs().flatMap((arg) => ['--runtime-arg', arg]),
    ];
    if (request.io.terminal) args.push('--terminal');
    if (request.io.stdin) args.push('--stdin');
    if (request.io.stdin && !request.io.stdinOnce) args.push('--leave-stdin-open');

    // Process groups, as seen with `ps -o pid,pgid,sid`: this launcher leads a session of its
    // own (detached), so no signal to the daemon's group reaches it; it forks the real conmon
    // and exits at once. That conmon calls setsid() and leads a session of its own, which its
    // `runc create` joins; the container's init gets yet another session from runc. So after
    // a success the launcher's group is empty and nothing of the container is in it; conmon's
    // session is killed (through its pid file) only when the create fails.
    const child = spawn(this.options.conmon, args, {
      // fd 3 is the sync pipe conmon reports the pid (or the runc error) on.
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      env: { ...process.env, _OCI_SYNCPIPE: '3' },
      detached: true,
    });
    const stderr = new CappedOutput(child.stderr!, MAX_STDERR_BYTES);
    const stderrText = (): string => outputExcerpt(stderr.bytes().toString());
    child.on('error', () => undefined);
    child.unref();

    try {
      const message = await readSyncMessage(child.stdio[3] as Readable, this.createTimeoutMs);
      if (message.data < 0) {
        const reason = cleanRuncMessage(message.message ?? stderrText()).replace(/^runc create failed: /, '');
        throw runtimeFailure('runc create failed', reason);
      }
      await this.rememberIdentity(request.id, message.data);
      return { pid: message.data };
    } catch (err) {
      await this.abandon(request, bundle, child);
      if (err instanceof TscriError) throw err;
      const detail = stderrText();
      throw new InternalError(`conmon failed to create ${request.id}: ${messageOf(err)}${detail ? `: ${detail}` : ''}`);
    } finally {
      (child.stdio[3] as Readable | null)?.destroy();
    }
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
    const session = await this.openSession(id, await this.execProcess(id, command, false));
    try {
      return await (await this.cliOf(id)).exec(id, session.processFile, path.join(session.dir, EXEC_PIDFILE), options);
    } finally {
      await this.closeSession(session.dir);
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
    const session = await this.openSession(id, await this.execProcess(id, command, options.tty));
    // A client that goes away takes its session with it: nobody is left to give the process
    // input or read its output, so it is killed, as containerd's CRI plugin kills an exec
    // whose stream is gone. Its monitor then returns, and the session ends as usual.
    let serving = true;
    let ending: Promise<void> | undefined;
    void options.clientGone?.then(() => {
      if (serving) ending = this.endSessions([session.dir]);
    });
    try {
      if (!options.tty) return await (await this.cliOf(id)).execAttached(id, session.processFile, options.io);
      return await this.execWithTerminal(id, session, options.io, options.resizes);
    } finally {
      serving = false;
      await ending;
      await this.closeSession(session.dir);
    }
  }

  /**
   * Make an exec session's directory below its container's bundle and write its process spec
   * there, before any process of it starts (see exec-sessions.ts). A container without a
   * bundle (removed meanwhile) gets none: its bundle is not made again.
   */
  private async openSession(id: string, process: OciProcess): Promise<ExecSession> {
    const execs = path.join(this.bundleOf(id), EXECS_DIR);
    await fs.mkdir(execs, { mode: 0o700 }).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') throw new NotFoundError(`container ${id} has no bundle`);
      if (errnoCode(err) !== 'EEXIST') throw err;
    });
    // Short: a terminal session's attach socket is bound below it.
    const dir = path.join(execs, newId().slice(0, 8));
    await fs.mkdir(dir, { mode: 0o700 });
    this.liveSessions.add(dir);
    const processFile = path.join(dir, SESSION_PROCESS_FILE);
    try {
      await writeJsonAtomic(processFile, process, { durable: false });
    } catch (err) {
      await this.closeSession(dir);
      throw err;
    }
    return { dir, processFile };
  }

  /** Remove a session's directory once nothing of it runs; only then is it no longer live. */
  private async closeSession(dir: string): Promise<void> {
    await fs.rm(dir, { recursive: true, force: true });
    this.liveSessions.delete(dir);
  }

  private endSessions(dirs: string[]): Promise<void> {
    return endExecSessions(dirs, this.monitorNames);
  }

  /**
   * End the exec sessions an earlier daemon left. "Left" means: the daemon that served the
   * session is gone. Its client's connection ended with it (a streaming URL lives only in the
   * memory of the daemon that issued it, and an ExecSync's caller got its error), so no
   * client can ever be given the session's streams again: its process is killed, its
   * monitor ended and its directory removed. A session this daemon serves is never touched.
   */
  async endOrphanedExecSessions(): Promise<void> {
    try {
      const dirs = (await allSessionDirs(this.options.bundleRoot)).filter((dir) => !this.liveSessions.has(dir));
      if (dirs.length === 0) return;
      await this.endSessions(dirs);
      await Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
      this.options.logger.info({ sessions: dirs.length }, 'ended the exec sessions an earlier daemon left');
    } catch (err) {
      this.options.logger.error({ err: messageOf(err) }, 'cannot end the exec sessions an earlier daemon left');
    }
  }

  /**
   * conmon's exec-attach sequence: a first start byte lets it make the attach socket (it says so
   * on the attach pipe), the client connects, a second start byte lets runc exec run, and the
   * sync pipe then carries the process's pid and finally its exit code.
   */
  private async execWithTerminal(id: string, session: ExecSession, io: StreamIO, resizes?: ResizeSource): Promise<number> {
    const runc = await this.cliOf(id);
    const { dir, processFile } = session;
    const execId = `${id.slice(0, 12)}-exec-${path.basename(dir)}`;
    // As for create, the launcher leads a group of its own and the real conmon a session of
    // its own; here the launcher first waits for the start byte. Only a failure kills them.
    const child = spawn(
      this.options.conmon,
      [
        '--api-version', '--cid', id, '--cuuid', execId, '--name', id, '--runtime', runc.binary,
        '--container-pidfile', path.join(dir, EXEC_PIDFILE), '--conmon-pidfile', path.join(dir, CONMON_PIDFILE),
        '--log-path', 'none:', '--exit-dir', dir,
        '--full-attach', '--socket-dir-path', dir, '--bundle', dir, '--exec', '--exec-attach',
        '--exec-process-spec', processFile, '--terminal', '--log-level', 'warn',
        ...runc.globalArgs().flatMap((arg) => ['--runtime-arg', arg]),
      ],
      {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
        env: { ...process.env, _OCI_SYNCPIPE: '3', _OCI_STARTPIPE: '4', _OCI_ATTACHPIPE: '5' },
        detached: true,
      },
    );
    child.on('error', () => undefined);
    const stderr = new CappedOutput(child.stderr!, MAX_STDERR_BYTES);
    const stderrText = (): string => outputExcerpt(stderr.bytes().toString());
    // fds 3, 4 and 5: the sync pipe (conmon → us), the start pipe (us → conmon), the attach pipe.
    const [, , , sync, start, attachPipe] = child.stdio as unknown as [null, null, Readable, Readable, Writable, Readable];
    for (const pipe of [sync, start, attachPipe]) pipe.on('error', () => undefined);
    const messages = collectSyncMessages(sync);
    const resize = (size: TerminalSize): void => void writeControl(dir, CONTROL_RESIZE, size.height, size.width).catch(() => undefined);
    try {
      start.write(Buffer.from([0]));
      const ready = await readSyncMessage(attachPipe, this.createTimeoutMs);
      if (ready.data < 0) throw runtimeFailure('exec setup failed', ready.message ?? stderrText());
      resizes?.on('resize', resize);
      if (resizes?.latest) resize(resizes.latest);
      await relayAttachSocket(path.join(dir, 'attach'), io, { onConnected: () => start.end(Buffer.from([0])) });
      const all = await messages;
      const last = all[all.length - 1];
      if (!last || last.data < 0) throw runtimeFailure('exec failed', last?.message ?? stderrText());
      return all.length >= 2 ? last.data : Number.parseInt(await fs.readFile(path.join(dir, id), 'utf8').catch(() => '255'), 10);
    } catch (err) {
      // The launcher's group, if it still runs, then the session as a whole: conmon found by
      // its command line, and what it runs.
      if (child.exitCode === null && child.signalCode === null) killProcessGroup(child.pid);
      await this.endSessions([dir]);
      throw err;
    } finally {
      resizes?.off('resize', resize);
      for (const pipe of [sync, start, attachPipe]) pipe.destroy();
    }
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
    await this.endSessions(await sessionDirsOf(bundle));
    // A container killed by the delete makes its conmon write an exit file moments later;
    // wait for conmon itself to end (not for an exit file: a container that never started
    // has none to write) so that file is not left behind after we remove it.
    const conmonPid = await readPid(path.join(bundle, CONMON_PIDFILE));
    if (conmonPid !== undefined && !(await pollUntil(async () => !(await isConmon(conmonPid)), CONMON_EXIT_WAIT_MS))) {
      killQuietly(conmonPid);
    }
    await fs.rm(path.join(this.options.exitDir, id), { force: true });
    // A session opened while this ran adds a directory under the bundle: retried, not failed.
    await fs.rm(bundle, { recursive: true, force: true, maxRetries: 3 });
  }

  async exitOf(id: string): Promise<ContainerExit | undefined> {
    const file = path.join(this.options.exitDir, id);
    let text: string;
    let stat: { mtime: Date };
    try {
      [text, stat] = await Promise.all([fs.readFile(file, 'utf8'), fs.stat(file)]);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    const exitCode = Number.parseInt(text.trim(), 10);
    if (!Number.isFinite(exitCode)) return undefined;
    const oomKilled = await fileExists(path.join(this.bundleOf(id), OOM_FILE));
    return { exitCode, exitedAt: stat.mtime, oomKilled };
  }

  waitExit(id: string, timeoutMs: number): Promise<ContainerExit | undefined> {
    return new Promise((resolve, reject) => {
      const onExit = (exitedId: string, exit: ContainerExit): void => {
        if (exitedId === id) finish(exit);
      };
      const timer = after(timeoutMs, () => finish(undefined));
      const finish = (exit: ContainerExit | undefined): void => {
        clearTimeout(timer);
        this.exits.off('exit', onExit);
        resolve(exit);
      };
      // Subscribe before looking, so an exit recorded in between is not missed.
      this.exits.on('exit', onExit);
      this.exitOf(id).then((exit) => exit && finish(exit), reject);
    });
  }

  private async reportExit(id: string): Promise<void> {
    try {
      const exit = await this.exitOf(id);
      if (exit) this.exits.emit('exit', id, exit);
    } catch (err) {
      this.options.logger.warn({ containerId: id, err: messageOf(err) }, 'unreadable exit file');
    }
  }

  /**
   * After a failed or timed-out create: kill the launcher's group (the launcher itself, if it
   * still runs) and conmon's session (conmon and its `runc create`), then drop runc's state,
   * which also kills a container init that got as far as existing.
   */
  private async abandon(request: CreateRequest, bundle: string, launcher: ChildProcess): Promise<void> {
    await killLaunched(launcher, path.join(bundle, CONMON_PIDFILE));
    try {
      await (await this.cliOf(request.id)).delete(request.id, true);
    } catch (err) {
      request.log.warn({ err: messageOf(err) }, 'runc delete after failed create');
    }
    await fs.rm(path.join(this.options.exitDir, request.id), { force: true });
  }
}

/**
 * Send one message to conmon's control fifo. Opened non-blocking: a fifo without a reader
 * (conmon gone) fails at once with ENXIO instead of hanging the daemon.
 */
async function writeControl(bundle: string, type: number, height: number, width: number): Promise<void> {
  let handle;
  try {
    handle = await fs.open(path.join(bundle, 'ctl'), fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    throw new InternalError(`container monitor is not running (${errnoCode(err) ?? messageOf(err)})`);
  }
  try {
    await handle.write(`${type} ${height} ${width}\n`);
  } finally {
    await handle.close();
  }
}

/**
 * Kill what a conmon launch made: the launcher's group (only while the launcher runs: once
 * it has exited and been reaped its pid may name another process), and the real conmon's
 * session, found through its pid file and checked to still be conmon.
 */
async function killLaunched(launcher: ChildProcess, conmonPidFile: string): Promise<void> {
  if (launcher.exitCode === null && launcher.signalCode === null) killProcessGroup(launcher.pid);
  const conmonPid = await readPid(conmonPidFile);
  if (conmonPid !== undefined && (await isConmon(conmonPid))) killProcessGroup(conmonPid);
}

/** Every JSON message conmon writes on a sync pipe until it closes. */
function collectSyncMessages(pipe: Readable): Promise<SyncMessage[]> {
  return new Promise((resolve) => {
    const text = new CappedOutput(pipe, MAX_SYNC_BYTES);
    pipe.on('close', () =>
      resolve(text.bytes().toString().split('\n').map(parseSyncMessage).filter((m): m is SyncMessage => m !== undefined)),
    );
  });
}

/** Read the first JSON message conmon writes on the sync pipe. */
function readSyncMessage(pipe: Readable, timeoutMs: number): Promise<SyncMessage> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = after(timeoutMs, () => done(new Error(`no answer from conmon within ${timeoutMs} ms`)));
    const done = (err: Error | undefined, message?: SyncMessage): void => {
      clearTimeout(timer);
      pipe.removeAllListeners('data');
      pipe.removeAllListeners('end');
      if (err) reject(err);
      else resolve(message!);
    };
    pipe.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const message = parseSyncMessage(buffered);
      if (message) done(undefined, message);
      else if (buffered.length > MAX_SYNC_BYTES) done(new Error(`conmon wrote ${MAX_SYNC_BYTES} bytes without a sync message`));
    });
    pipe.on('end', () => done(new Error('conmon exited before reporting the container pid')));
    pipe.on('error', (err) => done(err));
  });
}

function parseSyncMessage(text: string): SyncMessage | undefined {
  const newline = text.indexOf('\n');
  const candidate = newline >= 0 ? text.slice(0, newline) : text;
  try {
    const parsed = JSON.parse(candidate) as unknown;
    if (typeof parsed === 'object' && parsed !== null && typeof (parsed as SyncMessage).data === 'number') {
      return parsed as SyncMessage;
    }
  } catch {
    // Not complete yet.
  }
  return undefined;
}

/** runc's errors arrive wrapped in its log format; keep the human part. */
/** A process identity read back from a file the daemon wrote (the state dir may be tampered with). */
function isIdentity(value: unknown): value is ProcessIdentity {
  const { pid, startTime } = (value ?? {}) as Partial<ProcessIdentity>;
  return Number.isInteger(pid) && pid! > 1 && typeof startTime === 'string' && /^\d+$/.test(startTime);
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await fs.readFile(file, 'utf8')).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when `pid` is a live conmon (pids are reused). A zombie is not alive: conmon's parent
 * is init, and an init that does not reap (a container's, or this VM's) leaves it one.
 */
async function isConmon(pid: number): Promise<boolean> {
  const entry = await readProcess(pid);
  return entry?.comm === 'conmon' && entry.state !== 'Z';
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}
