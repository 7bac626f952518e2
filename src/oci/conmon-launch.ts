import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { InternalError, TscriError, errnoCode, messageOf } from '../errors.js';
import { readProcess } from '../util/proc.js';
import { CappedOutput, killProcessGroup, outputExcerpt } from '../util/run.js';
import { after } from '../util/timer.js';
import { relayAttachSocket, type StreamIO } from './attach-socket.js';
import type { Runc } from './runc.js';
import type { CreateRequest, ResizeSource, TerminalSize } from './runtime.js';
import { cleanRuncMessage, runtimeFailure } from './runtime-errors.js';

/**
 * Starting conmon and talking to it: its command lines for a container and for an exec with a
 * terminal, the sync, start and attach pipes, the `ctl` fifo, and killing what a failed launch
 * left. The runtime that keeps containers (conmon.ts) decides when; this file knows how.
 */

export const CONMON_PIDFILE = 'conmon.pid';
export const CONTAINER_PIDFILE = 'pidfile';
/** The exec'd process's pid, written by runc (or conmon) into the session's directory. */
export const EXEC_PIDFILE = 'exec.pid';
/** Message types on conmon's `ctl` fifo: "<type> <height> <width>\n". */
export const CONTROL_RESIZE = 1;
export const CONTROL_REOPEN_LOG = 2;
/** conmon's own stderr is a line or two (its errors before it daemonizes); more is dropped. */
const MAX_STDERR_BYTES = 64 * 1024;
/** A sync pipe carries a few short JSON lines; one that does not is not conmon talking. */
const MAX_SYNC_BYTES = 64 * 1024;

/** What conmon reports on its sync pipe: the container pid, or -1 and why not. */
interface SyncMessage {
  data: number;
  message?: string;
}

/** What every launch needs: the conmon binary, and how long it may take to answer. */
export interface ConmonLaunch {
  conmon: string;
  timeoutMs: number;
}

/**
 * Create a container under a new conmon and answer its init's pid once `onPid` has taken
 * note of it. On any failure, what the launch started is killed before the error is thrown;
 * dropping runc's state is the caller's.
 */
export async function createUnderConmon(
  launch: ConmonLaunch & { exitDir: string },
  request: CreateRequest,
  bundle: string,
  runc: Runc,
  onPid: (pid: number) => Promise<void>,
): Promise<number> {
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
    '--exit-dir', launch.exitDir,
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
  const child = spawn(launch.conmon, args, {
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
    const message = await readSyncMessage(child.stdio[3] as Readable, launch.timeoutMs);
    if (message.data < 0) {
      const reason = cleanRuncMessage(message.message ?? stderrText()).replace(/^runc create failed: /, '');
      throw runtimeFailure('runc create failed', reason);
    }
    await onPid(message.data);
    return message.data;
  } catch (err) {
    await killLaunched(child, path.join(bundle, CONMON_PIDFILE));
    if (err instanceof TscriError) throw err;
    const detail = stderrText();
    throw new InternalError(`conmon failed to create ${request.id}: ${messageOf(err)}${detail ? `: ${detail}` : ''}`, { cause: err });
  } finally {
    (child.stdio[3] as Readable | null)?.destroy();
  }
}

/** An exec with a terminal: the session's directory, its process spec, and its streams. */
export interface TerminalExec {
  /** The container's id. */
  id: string;
  dir: string;
  processFile: string;
  io: StreamIO;
  resizes?: ResizeSource | undefined;
  /** Ends the session as a whole (conmon found by its command line, and what it runs). */
  endSession: () => Promise<void>;
}

/**
 * conmon's exec-attach sequence: a first start byte lets it make the attach socket (it says so
 * on the attach pipe), the client connects, a second start byte lets runc exec run, and the
 * sync pipe then carries the process's pid and finally its exit code.
 */
export async function execWithTerminal(launch: ConmonLaunch, runc: Runc, exec: TerminalExec): Promise<number> {
  const { id, dir, processFile, io, resizes } = exec;
  const execId = `${id.slice(0, 12)}-exec-${path.basename(dir)}`;
  // As for create, the launcher leads a group of its own and the real conmon a session of
  // its own; here the launcher first waits for the start byte. Only a failure kills them.
  const child = spawn(
    launch.conmon,
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
    const ready = await readSyncMessage(attachPipe, launch.timeoutMs);
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
    await exec.endSession();
    throw err;
  } finally {
    resizes?.off('resize', resize);
    for (const pipe of [sync, start, attachPipe]) pipe.destroy();
  }
}

/**
 * Send one message to conmon's control fifo. Opened non-blocking: a fifo without a reader
 * (conmon gone) fails at once with ENXIO instead of hanging the daemon.
 */
export async function writeControl(bundle: string, type: number, height: number, width: number): Promise<void> {
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

export async function readPid(file: string): Promise<number | undefined> {
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
export async function isConmon(pid: number): Promise<boolean> {
  const entry = await readProcess(pid);
  return entry?.comm === 'conmon' && entry.state !== 'Z';
}
