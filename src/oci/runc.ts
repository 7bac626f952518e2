import { execa } from 'execa';
import { InternalError, NotFoundError } from '../errors.js';
import { run } from '../util/run.js';
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
    const result = await execa(this.binary, [...this.globalArgs(), 'state', id], { reject: false });
    if (result.exitCode !== 0) {
      if (/does not exist|not found/i.test(String(result.stderr))) return undefined;
      throw new InternalError(`runc state ${id}: ${String(result.stderr).trim()}`);
    }
    return JSON.parse(String(result.stdout)) as RuncState;
  }

  async start(id: string): Promise<void> {
    await run(this.binary, [...this.globalArgs(), 'start', id]);
  }

  /** Send a signal; a container that is gone or already stopped is not an error. */
  async kill(id: string, signal: string, all = false): Promise<void> {
    const args = [...this.globalArgs(), 'kill', ...(all ? ['--all'] : []), id, signal];
    const result = await execa(this.binary, args, { reject: false });
    if (result.exitCode === 0) return;
    const stderr = String(result.stderr);
    if (/does not exist|not running|process already finished|container not running/i.test(stderr)) return;
    throw new InternalError(`runc kill ${id} ${signal}: ${stderr.trim()}`);
  }

  /** Delete the container's runc state; idempotent. */
  async delete(id: string, force: boolean): Promise<void> {
    const args = [...this.globalArgs(), 'delete', ...(force ? ['--force'] : []), id];
    const result = await execa(this.binary, args, { reject: false });
    if (result.exitCode === 0) return;
    const stderr = String(result.stderr);
    if (/does not exist|not found/i.test(stderr)) return;
    throw new InternalError(`runc delete ${id}: ${stderr.trim()}`);
  }

  /** Apply new cgroup limits to a running container. */
  async update(id: string, resources: OciResources): Promise<void> {
    const result = await execa(this.binary, [...this.globalArgs(), 'update', '--resources', '-', id], {
      input: JSON.stringify(resources),
      reject: false,
    });
    if (result.exitCode === 0) return;
    const stderr = String(result.stderr);
    if (/does not exist/i.test(stderr)) throw new NotFoundError(`container ${id} does not exist in runc`);
    throw new InternalError(`runc update ${id}: ${stderr.trim()}`);
  }

  /** Process ids inside the container's cgroup. */
  async pids(id: string): Promise<number[]> {
    const result = await execa(this.binary, [...this.globalArgs(), 'ps', '--format', 'json', id], { reject: false });
    if (result.exitCode !== 0) return [];
    return (JSON.parse(String(result.stdout) || '[]') as number[] | null) ?? [];
  }
}
