import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { InternalError, NotFoundError } from '../errors.js';
import type { StreamIO } from './attach-socket.js';
import type { ExecOptions, ExecOutcome } from './runtime.js';
import { describeFailure, exec, execRaw, killProcessGroup, outputExcerpt, run } from '../util/run.js';
import type { OciResources } from './spec-types.js';
import { runtimeFailure } from './runtime-errors.js';
import { readProcess } from '../util/proc.js';
import { fileExists } from '../util/files.js';

/** How long runc exec gets to exit after its timed-out process was killed. */
const RUNC_EXEC_GRACE_MS = 2000;

/**
 * Output kept per stream of a runc exec (ExecSync) whose caller names no limit. Beyond it,
 * output is dropped, not the process killed: the process is the user's, and its exit status
 * is what a probe reports.
 */
const EXEC_DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** runc's view of a container (`runc state`). */
export interface RuncState {
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  pid: number;
  bundle: string;
}

/**
 * Thin typed wrapper over runc's command line, which crun shares, all calls under one
 * `--root`: one per runtime handler.
 */
export class Runc {
  constructor(
    readonly binary: string,
    readonly root: string,
    /** runc manages cgroups through systemd (cgroup_driver = "systemd"). */
    private readonly systemdCgroup = false,
  ) {}

  /** Global arguments every runc call (and conmon's --runtime-arg) carries, one token each. */
  globalArgs(): string[] {
    return [`--root=${this.root}`, ...(this.systemdCgroup ? ['--systemd-cgroup'] : [])];
  }

  async state(id: string): Promise<RuncState | undefined> {
    const result = await exec(this.binary, [...this.globalArgs(), 'state', id]);
    if (result.exitCode !== 0) {
      if (/does not exist|not found/i.test(result.stderr)) return undefined;
      throw new InternalError(`runc state ${id}: ${describeFailure(result)}`);
    }
    return JSON.parse(result.stdout) as RuncState;
  }

  /** Whether runc has state for this container (created and not yet deleted). */
  async knows(id: string): Promise<boolean> {
    return fileExists(path.join(this.root, id));
  }

  /**
   * `runc run --detach`: create and start in one runc process, for a container no monitor
   * watches. Its stdio is /dev/null, which the container inherits, so runc's own errors go to
   * a log file in the bundle, read back when it fails.
   */
  async runDetached(id: string, bundle: string, pidFile: string, timeoutMs: number): Promise<void> {
    await this.withoutStdio(['run', '--detach', '--bundle', bundle, '--pid-file', pidFile, id], bundle, timeoutMs);
  }

  /** `runc create` with no stdio and no monitor: a container that is never started (a probe). */
  async createDetached(id: string, bundle: string, timeoutMs: number): Promise<void> {
    await this.withoutStdio(['create', '--bundle', bundle, id], bundle, timeoutMs);
  }

  private async withoutStdio(command: string[], bundle: string, timeoutMs: number): Promise<void> {
    const logFile = path.join(bundle, RUN_LOG_FILE);
    const args = [`--log=${logFile}`, '--log-format=json', ...this.globalArgs(), ...command];
    const result = await exec(this.binary, args, { silent: true, timeoutMs });
    if (result.exitCode === 0) return;
    const logged = await errorsLoggedIn(logFile);
    throw runtimeFailure('runc create failed', logged || describeFailure(result, { timeoutMs }));
  }

  async start(id: string): Promise<void> {
    await run(this.binary, [...this.globalArgs(), 'start', id]);
  }

  /**
   * Send a signal. A container that is gone or already stopped is not an error: the result
   * says whether a process was signalled, so callers know whether to wait for an exit.
   */
  async kill(id: string, signal: string, all = false): Promise<boolean> {
    const args = [...this.globalArgs(), 'kill', ...(all ? ['--all'] : []), id, signal];
    const result = await exec(this.binary, args);
    if (result.exitCode === 0) return true;
    const stderr = result.stderr;
    if (/does not exist|not running|process already finished|container not running/i.test(stderr)) return false;
    throw new InternalError(`runc kill ${id} ${signal}: ${describeFailure(result)}`);
  }

  /** Delete the container's runc state; idempotent. */
  async delete(id: string, force: boolean): Promise<void> {
    // runc keeps a directory per container under its root: without one there is nothing to
    // delete, and no process need be started to learn that.
    if (!(await this.knows(id))) return;
    const args = [...this.globalArgs(), 'delete', ...(force ? ['--force'] : []), id];
    const result = await exec(this.binary, args);
    if (result.exitCode === 0) return;
    const stderr = result.stderr;
    if (/does not exist|not found/i.test(stderr)) return;
    throw new InternalError(`runc delete ${id}: ${describeFailure(result)}`);
  }

  /** Apply new cgroup limits to a running container. */
  async update(id: string, resources: OciResources): Promise<void> {
    const result = await exec(this.binary, [...this.globalArgs(), 'update', '--resources', '-', id], {
      input: JSON.stringify(resources),
    });
    if (result.exitCode === 0) return;
    const stderr = result.stderr;
    if (/does not exist/i.test(stderr)) throw new NotFoundError(`container ${id} does not exist in runc`);
    throw runtimeFailure(`runc update ${id}`, describeFailure(result));
  }

  /**
   * `runc exec` of a process spec, waiting for it. runc puts the process in a session of its
   * own inside the container, outside runc's process group: on timeout that session is killed
   * first (its leader's pid from the pid file), and runc, which reaps it and exits, is killed
   * with its group only if it lingers, since killing it first would orphan the process.
   * runc copies the output through pipes of its own and exits only when they close, so a
   * background process the command left holding stdout keeps runc, and this call, until the
   * timeout; runc is then killed, and the background process, now the container's, is left.
   */
  async exec(id: string, processFile: string, pidFile: string, options: ExecOptions): Promise<ExecOutcome> {
    const args = [...this.globalArgs(), 'exec', '--process', processFile, '--pid-file', pidFile, id];
    const result = await execRaw(this.binary, args, {
      // No timeout asked for (ExecSync's 0): the longest timer there is, as before.
      timeoutMs: options.timeoutMs ?? Number.POSITIVE_INFINITY,
      maxOutputBytes: options.maxOutputBytes ?? EXEC_DEFAULT_MAX_OUTPUT_BYTES,
      onOverflow: 'drop',
      onTimeout: { stop: () => void killSessionFromPidFile(pidFile), graceMs: RUNC_EXEC_GRACE_MS },
    });
    const exitCode = result.exitCode ?? 128 + (result.signal ? (osConstants.signals[result.signal] ?? 0) : osConstants.signals.SIGKILL);
    const err = result.stderr;
    if (!result.timedOut && exitCode !== 0 && /^(time="[^"]*" )?level=error/m.test(err.toString())) {
      // runc itself failed (no such container, bad process): not the process's own exit.
      const message = outputExcerpt(err.toString());
      if (/does not exist|not running|cannot exec in a stopped container/i.test(message)) {
        throw new NotFoundError(`container ${id} is not running: ${message}`);
      }
      throw runtimeFailure(`runc exec in ${id}`, err.toString());
    }
    return { stdout: result.stdout, stderr: err, exitCode, timedOut: result.timedOut };
  }

  /**
   * `runc exec` of a process spec with the client's streams as its stdio (no terminal);
   * resolves with the process's exit code. It lasts as long as the client's session, so it
   * has no timeout; runc runs in a group of its own, killed once it has exited.
   */
  async execAttached(id: string, processFile: string, io: StreamIO): Promise<number> {
    const child = spawn(this.binary, [...this.globalArgs(), 'exec', '--process', processFile, id], {
      stdio: [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (io.stdin && child.stdin) {
      io.stdin.pipe(child.stdin);
      child.stdin.on('error', () => undefined); // the process may exit without reading it all
    }
    const drain = (source: Readable | null, target: StreamIO['stdout']): Promise<void> =>
      new Promise((resolve) => {
        if (!source) return resolve();
        if (target) source.pipe(target, { end: false });
        else source.resume();
        source.on('end', resolve);
      });
    try {
      const [exitCode] = await Promise.all([
        new Promise<number>((resolve, reject) => {
          child.on('error', reject);
          child.on('exit', (code, signal) => {
            // Only runc's own helpers can be left in its group; the process is in its own session.
            killProcessGroup(child.pid);
            resolve(code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0));
          });
        }),
        drain(child.stdout, io.stdout),
        drain(child.stderr, io.stderr ?? io.stdout),
      ]);
      return exitCode;
    } finally {
      io.stdin?.unpipe();
    }
  }
}

/** runc's own log of a `runc run --detach` (which has no stderr to read). */
const RUN_LOG_FILE = 'runc.log';

/** The messages of the errors runc logged (JSON lines), in runc's text form for cleanRuncMessage. */
async function errorsLoggedIn(logFile: string): Promise<string> {
  const text = await fs.readFile(logFile, 'utf8').catch(() => '');
  const messages: string[] = [];
  for (const line of text.slice(-64 * 1024).split('\n')) {
    try {
      const entry = JSON.parse(line) as { level?: unknown; msg?: unknown };
      if ((entry.level === 'error' || entry.level === 'fatal') && typeof entry.msg === 'string') messages.push(entry.msg);
    } catch {
      // a torn or foreign line
    }
  }
  return messages.map((msg) => `msg=${JSON.stringify(msg)}`).join(' ');
}

/**
 * Kill the session runc made for an exec'd process: its leader's pid is in the pid file, and
 * runc made it lead its own group, so the group takes what the process started too. A pid
 * that leads no group (not yet set up) is killed alone.
 */
async function killSessionFromPidFile(pidFile: string): Promise<void> {
  try {
    const pid = Number.parseInt((await fs.readFile(pidFile, 'utf8')).trim(), 10);
    if (!(pid > 1)) return;
    if ((await readProcess(pid))?.pgid === pid) killProcessGroup(pid);
    else process.kill(pid, 'SIGKILL');
  } catch {
    // Not started yet, or already gone.
  }
}
