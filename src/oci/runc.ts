import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { InternalError, NotFoundError } from '../errors.js';
import type { StreamIO } from './attach-socket.js';
import type { ExecOptions, ExecOutcome } from './runtime.js';
import { exec, run } from '../util/run.js';
import type { OciResources } from './spec-types.js';
import { after } from '../util/timer.js';

/** How long runc exec gets to exit after its timed-out process was killed. */
const RUNC_EXEC_GRACE_MS = 2000;

/** runc's view of a container (`runc state`). */
export interface RuncState {
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  pid: number;
  bundle: string;
}

/** Thin typed wrapper over the runc CLI, all calls under one `--root`. */
export class Runc {
  constructor(
    readonly binary: string,
    readonly root: string,
  ) {}

  /** Global arguments every runc call (and conmon's --runtime-arg) carries. */
  globalArgs(): string[] {
    return ['--root', this.root];
  }

  async state(id: string): Promise<RuncState | undefined> {
    const result = await exec(this.binary, [...this.globalArgs(), 'state', id]);
    if (result.exitCode !== 0) {
      if (/does not exist|not found/i.test(result.stderr)) return undefined;
      throw new InternalError(`runc state ${id}: ${result.stderr.trim()}`);
    }
    return JSON.parse(result.stdout) as RuncState;
  }

  /** Whether runc has state for this container (created and not yet deleted). */
  async knows(id: string): Promise<boolean> {
    return fs.access(path.join(this.root, id)).then(
      () => true,
      () => false,
    );
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
    throw new InternalError(`runc kill ${id} ${signal}: ${stderr.trim()}`);
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
    throw new InternalError(`runc delete ${id}: ${stderr.trim()}`);
  }

  /** Apply new cgroup limits to a running container. */
  async update(id: string, resources: OciResources): Promise<void> {
    const result = await exec(this.binary, [...this.globalArgs(), 'update', '--resources', '-', id], {
      input: JSON.stringify(resources),
    });
    if (result.exitCode === 0) return;
    const stderr = result.stderr;
    if (/does not exist/i.test(stderr)) throw new NotFoundError(`container ${id} does not exist in runc`);
    throw new InternalError(`runc update ${id}: ${stderr.trim()}`);
  }

  /**
   * `runc exec` of a process spec, waiting for it. On timeout the exec'd process itself is
   * killed (its pid from the pid file): killing only runc would leave it running.
   */
  async exec(id: string, processFile: string, pidFile: string, options: ExecOptions): Promise<ExecOutcome> {
    const child = spawn(this.binary, [...this.globalArgs(), 'exec', '--process', processFile, '--pid-file', pidFile, id], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const limit = options.maxOutputBytes ?? Number.POSITIVE_INFINITY;
    const stdout = collect(child.stdout!, limit);
    const stderr = collect(child.stderr!, limit);
    let timedOut = false;
    let straggler: NodeJS.Timeout | undefined;
    // On timeout the exec'd process is killed and runc, its parent, reaps it and exits; runc is
    // killed only if it lingers, since killing it first would orphan the process.
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : after(options.timeoutMs, () => {
            timedOut = true;
            void killFromPidFile(pidFile);
            straggler = after(RUNC_EXEC_GRACE_MS, () => child.kill('SIGKILL'));
          });
    const exitCode = await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve(code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0)));
    }).finally(() => {
      clearTimeout(timer);
      clearTimeout(straggler);
    });
    const err = stderr();
    if (!timedOut && exitCode !== 0 && /^(time="[^"]*" )?level=error/m.test(err.toString())) {
      // runc itself failed (no such container, bad process): not the process's own exit.
      const message = err.toString().trim();
      if (/does not exist|not running|cannot exec in a stopped container/i.test(message)) {
        throw new NotFoundError(`container ${id} is not running: ${message}`);
      }
      throw new InternalError(`runc exec in ${id}: ${message}`);
    }
    return { stdout: stdout(), stderr: err, exitCode, timedOut };
  }

  /**
   * `runc exec` of a process spec with the client's streams as its stdio (no terminal);
   * resolves with the process's exit code.
   */
  async execAttached(id: string, processFile: string, io: StreamIO): Promise<number> {
    const child = spawn(this.binary, [...this.globalArgs(), 'exec', '--process', processFile, id], {
      stdio: [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
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
    const [exitCode] = await Promise.all([
      new Promise<number>((resolve, reject) => {
        child.on('error', reject);
        child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0)));
      }),
      drain(child.stdout, io.stdout),
      drain(child.stderr, io.stderr ?? io.stdout),
    ]);
    io.stdin?.unpipe();
    return exitCode;
  }

  /** Process ids inside the container's cgroup. */
  async pids(id: string): Promise<number[]> {
    const result = await exec(this.binary, [...this.globalArgs(), 'ps', '--format', 'json', id]);
    if (result.exitCode !== 0) return [];
    return (JSON.parse(result.stdout || '[]') as number[] | null) ?? [];
  }
}

/** Gather a stream's bytes up to `limit`; the getter returns what was kept. */
function collect(stream: Readable, limit: number): () => Buffer {
  const chunks: Buffer[] = [];
  let kept = 0;
  stream.on('data', (chunk: Buffer) => {
    if (kept >= limit) return;
    const piece = chunk.subarray(0, limit - kept);
    chunks.push(piece);
    kept += piece.length;
  });
  return () => Buffer.concat(chunks);
}

async function killFromPidFile(pidFile: string): Promise<void> {
  try {
    const pid = Number.parseInt((await fs.readFile(pidFile, 'utf8')).trim(), 10);
    if (pid > 0) process.kill(pid, 'SIGKILL');
  } catch {
    // Not started yet, or already gone.
  }
}
