import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { InternalError } from '../errors.js';
import { shorten } from './text.js';
import { after } from './timer.js';

/**
 * How long a host tool (ip, mount, runc …) may run when the caller names no limit. They
 * finish in milliseconds; one still running after a minute is stuck (a wedged mount, a
 * kernel lock), and the pod operation waiting on it must fail rather than hang.
 */
export const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Output kept per stream when the caller names no limit. Tools and CNI plugins print a few
 * KB at most (a CNI result, a runc error); a megabyte is far beyond anything useful.
 */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

/** Longest piece of a child's output quoted in an error message. */
export const MAX_QUOTED_CHARS = 400;

/**
 * After the child exits, how long its pipes may take to reach end-of-file. They do at once
 * unless a descendant inherited them; such a descendant is then killed, and the pipes get
 * the same time again before they are abandoned.
 */
const PIPE_DRAIN_MS = 100;

/**
 * After SIGKILL to its group, how long the child may take to be reported gone. Only a
 * process stuck in the kernel (uninterruptible sleep) takes longer; the result is then given
 * without its exit status rather than waiting for it.
 */
const KILLED_EXIT_WAIT_MS = 2000;

export interface ExecOptions {
  /** Written to the child's stdin, which is then closed. */
  input?: string;
  /**
   * The child's stdout and stderr go to /dev/null, for a child that hands its stdio on to a
   * process meant to outlive it (`runc run --detach`): a pipe would stay open, held by that
   * process, for as long as it lives.
   */
  silent?: boolean;
  /** The child's whole environment (default: the daemon's). */
  env?: NodeJS.ProcessEnv;
  /** Kill the child's process group after this long (default DEFAULT_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Output kept per stream (default DEFAULT_MAX_OUTPUT_BYTES). */
  maxOutputBytes?: number;
  /**
   * What happens when a stream goes over maxOutputBytes: 'kill' (default) kills the child's
   * group at once, 'drop' reads on and discards. Killing is the default because reading a
   * runaway child's output keeps the daemon's one event loop busy copying bytes for as long
   * as the timeout allows (a looping plugin prints hundreds of MB a second), while no tool or
   * plugin the daemon runs prints anything near the cap when it works, and a result cut at
   * the cap is unusable anyway (a truncated CNI result is not JSON). 'drop' is for output
   * that is the user's own (ExecSync), whose process must not die for being chatty.
   */
  onOverflow?: 'kill' | 'drop';
  /** Working directory of the child. */
  cwd?: string;
  /**
   * For a child whose real work runs outside its process group (runc exec: the process is
   * in a session of its own inside the container): called when the timeout fires, and the
   * group is killed only `graceMs` later, so the child can reap what `stop` killed.
   */
  onTimeout?: { stop: () => void; graceMs: number };
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** null when the child was killed by a signal, or did not report its end in time. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Which streams went over the output limit (what is above it was dropped). */
  truncated: { stdout: boolean; stderr: boolean };
}

/** ExecResult with the output as bytes, for callers that hand it on untouched (ExecSync). */
export interface RawExecResult extends Omit<ExecResult, 'stdout' | 'stderr'> {
  stdout: Buffer;
  stderr: Buffer;
}

/**
 * Run a program to completion and collect its output; never rejects for a non-zero exit.
 *
 * Why not execa: each pod start and stop runs a dozen short processes (ip, mount, runc, CNI
 * plugins), and execa's option handling costs about 2.3 ms of daemon CPU per process on top
 * of the spawn itself (measured: 4.8 ms vs 2.5 ms for `true`). Tests and hack/ scripts use
 * execa; the daemon's hot paths use this.
 */
export async function exec(file: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const result = await execRaw(file, args, options);
  return { ...result, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

/**
 * exec with the output as bytes. The child runs in a process group of its own, so that the
 * timeout kills everything it started, and so that what it leaves behind after it exits (a
 * forked helper still holding its stdout) is killed too: a tool or plugin must not outlive
 * its invocation, and the result is delivered when the child exits, not when the last
 * holder of its pipes lets go.
 */
export function execRaw(file: string, args: readonly string[], options: ExecOptions = {}): Promise<RawExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', options.silent ? 'ignore' : 'pipe', options.silent ? 'ignore' : 'pipe'],
      // setsid(): the child leads a new process group (and session), never the daemon's.
      detached: true,
    });
    const watch = new ChildWatch(child, options, resolve);
    child.on('exit', (code, signal) => watch.exited(code, signal));
    // Every pipe at end-of-file after the exit: the usual, immediate end.
    child.on('close', () => watch.finish());
    child.on('error', (err) => {
      if (watch.abandon()) reject(new InternalError(`cannot run ${file}: ${err.message}`));
    });
    writeInput(child, options.input);
  });
}

/** One child's bounds: its timeout, its output limit, and the end of its pipes after it exits. */
class ChildWatch {
  private readonly stdout: CappedOutput | undefined;
  private readonly stderr: CappedOutput | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private timedOut = false;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private settled = false;

  constructor(
    private readonly child: ChildProcess,
    private readonly options: ExecOptions,
    private readonly resolve: (result: RawExecResult) => void,
  ) {
    const limit = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const overflow = options.onOverflow === 'drop' ? undefined : () => this.killGroup();
    this.stdout = child.stdout ? new CappedOutput(child.stdout, limit, overflow) : undefined;
    this.stderr = child.stderr ? new CappedOutput(child.stderr, limit, overflow) : undefined;
    this.later(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, () => this.timeUp());
  }

  exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.exit = { code, signal };
    this.later(PIPE_DRAIN_MS, () => {
      // A descendant holds the pipes open: kill it, then give them a last moment.
      this.killGroup();
      this.later(PIPE_DRAIN_MS, () => this.finish());
    });
  }

  finish(): void {
    if (!this.abandon()) return;
    this.stdout?.close();
    this.stderr?.close();
    this.resolve({
      stdout: this.stdout?.bytes() ?? Buffer.alloc(0),
      stderr: this.stderr?.bytes() ?? Buffer.alloc(0),
      exitCode: this.exit?.code ?? null,
      signal: this.exit?.signal ?? null,
      timedOut: this.timedOut,
      truncated: { stdout: this.stdout?.truncated ?? false, stderr: this.stderr?.truncated ?? false },
    });
  }

  /** Stop watching and kill what is left in the group; false if already done. */
  abandon(): boolean {
    if (this.settled) return false;
    this.settled = true;
    for (const timer of this.timers) clearTimeout(timer);
    // Whatever the child left in its group is not wanted; normally the group is empty.
    this.killGroup();
    return true;
  }

  private timeUp(): void {
    this.timedOut = true;
    const killAll = (): void => {
      this.killGroup();
      this.later(KILLED_EXIT_WAIT_MS, () => this.finish());
    };
    const { onTimeout } = this.options;
    if (onTimeout === undefined) return killAll();
    onTimeout.stop();
    this.later(onTimeout.graceMs, killAll);
  }

  private killGroup(): void {
    killProcessGroup(this.child.pid);
  }

  private later(ms: number, fn: () => void): void {
    this.timers.add(after(ms, fn));
  }
}

function writeInput(child: ChildProcess, input: string | undefined): void {
  if (input === undefined) return;
  // A child that exits without reading its stdin makes the write fail with EPIPE; its
  // exit status, reported by exec, is what matters.
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(input);
}

/** A stream's bytes up to a limit; `onOverflow` is called once when it is first exceeded. */
export class CappedOutput {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  truncated = false;

  constructor(
    private readonly stream: Readable,
    private readonly limit: number,
    private readonly onOverflow?: () => void,
  ) {
    stream.on('data', (chunk: Buffer) => this.add(chunk));
    // Reading a pipe whose writer was killed can fail; what was read is kept.
    stream.on('error', () => undefined);
  }

  private add(chunk: Buffer): void {
    const room = this.limit - this.kept;
    if (chunk.length > room && !this.truncated) {
      this.truncated = true;
      this.onOverflow?.();
    }
    if (room <= 0) return;
    const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(piece);
    this.kept += piece.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.kept);
  }

  /** Stop reading: a pipe still held open by a process outside the group is let go. */
  close(): void {
    this.stream.destroy();
  }
}

/**
 * Run a host command (ip, mount, runc …) that must succeed. A failure becomes an
 * InternalError carrying the command and an excerpt of its output, so the real cause reaches
 * the gRPC status.
 */
export async function run(file: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const result = await exec(file, args, options);
  if (result.exitCode !== 0) throw new InternalError(`${file} ${args.join(' ')}: ${describeFailure(result, options)}`);
  return result;
}

/** Why a command failed, for an error message: an excerpt of its output, or how it ended. */
export function describeFailure(result: ExecResult, options: ExecOptions = {}): string {
  const output = outputExcerpt(result.stderr || result.stdout);
  const over = overflowOf(result, options);
  if (over) return output ? `${over}: ${output}` : over;
  if (result.timedOut) {
    const limit = `timed out after ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`;
    return output ? `${limit}: ${output}` : limit;
  }
  if (output) return output;
  if (result.signal) return `killed by ${result.signal}`;
  return `exit status ${result.exitCode}`;
}

/** "printed more than N bytes on stdout; killed" when the output limit ended the child. */
export function overflowOf(result: Pick<ExecResult, 'truncated'>, options: Pick<ExecOptions, 'maxOutputBytes' | 'onOverflow'>): string | undefined {
  if (options.onOverflow === 'drop') return undefined;
  const streams = (['stdout', 'stderr'] as const).filter((name) => result.truncated[name]);
  if (streams.length === 0) return undefined;
  return `printed more than ${options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES} bytes on ${streams.join(' and ')}; killed`;
}

/** At most MAX_QUOTED_CHARS of a child's output, trimmed, for an error message. */
export function outputExcerpt(text: string, max = MAX_QUOTED_CHARS): string {
  return shorten(text.trim(), max);
}

/**
 * SIGKILL every process in the group `pid` leads; true when a signal was sent. Children are
 * spawned detached, so each leads a group numbered by its own pid. A pid that names the
 * daemon itself, its own group, init or nothing is refused: a negative pid there would kill
 * the daemon (or, for -1, every process on the machine).
 */
export function killProcessGroup(pid: number | undefined): boolean {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 1) return false;
  if (pid === process.pid || pid === ownProcessGroup()) return false;
  try {
    process.kill(-pid, 'SIGKILL');
    return true;
  } catch {
    // ESRCH: the group is already empty.
    return false;
  }
}

let ownGroup: number | undefined;

/** The daemon's process group, read once from /proc (Node has no getpgid). */
function ownProcessGroup(): number {
  if (ownGroup === undefined) {
    try {
      const stat = readFileSync('/proc/self/stat', 'utf8');
      // "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
      ownGroup = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    } catch {
      // No /proc: a detached child's pid can never be the number of a live group anyway.
      ownGroup = 0;
    }
  }
  return ownGroup;
}
