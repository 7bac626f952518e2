import { InternalError, NotFoundError } from '../errors.js';
import { exec, run } from '../util/run.js';
import type { OciResources } from './spec-types.js';

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

  /** Process ids inside the container's cgroup. */
  async pids(id: string): Promise<number[]> {
    const result = await exec(this.binary, [...this.globalArgs(), 'ps', '--format', 'json', id]);
    if (result.exitCode !== 0) return [];
    return (JSON.parse(result.stdout || '[]') as number[] | null) ?? [];
  }
}
