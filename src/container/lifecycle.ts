/**
 * A created container's life: StartContainer, StopContainer (stop signal, grace, SIGKILL),
 * exits as conmon records them, and RemoveContainer, whose host-side cleanup finishes after
 * the answer. Every change of state goes through the store's `update` under the container's lock.
 */
import { promises as fs } from 'node:fs';
import type { Logger } from 'pino';
import { DeadlineExceededError, FailedPreconditionError } from '../errors.js';
import type { ContainerExit } from '../oci/runtime.js';
import { nanosFromDate, nowNanos, stepTimer, timeStep } from '../util/time.js';
import { criStateOf, exitReason, type ContainerRecord } from './container.js';
import type { ContainerParts } from './deps.js';

/** After SIGKILL, how long to wait for the exit to be recorded. */
const KILL_WAIT_MS = 10_000;

export class ContainerLifecycle {
  /** Removals answered whose host-side cleanup still runs, by container id. */
  private readonly finishing = new Map<string, { sandboxId: string; done: Promise<void> }>();

  constructor(private readonly parts: ContainerParts) {}

  async start(idOrPrefix: string, log: Logger): Promise<void> {
    const { store, locks, deps } = this.parts;
    const id = store.get(idOrPrefix).id;
    await locks.run(id, async () => {
      const record = store.get(id);
      const state = criStateOf(record);
      if (state !== 'CONTAINER_CREATED') throw new FailedPreconditionError(`container ${id} is ${stateWord(state)}, not created`);
      const startedAt = nowNanos();
      const timings: Record<string, number> = {};
      await stepTimer(timings, 'StartContainer')('runtimeStart', () => deps.runtime.start(id));
      const started = await store.update(
        id,
        (r) => {
          r.timings = { ...r.timings, ...timings };
          r.startedAt = startedAt;
        },
        'lifecycle',
      );
      log.info('container started');
      this.parts.emit(started ?? record, 'CONTAINER_STARTED_EVENT');
    });
  }

  /**
   * Send the stop signal, wait up to `graceMs`, then SIGKILL. The grace period is waited out
   * without the container's lock, so the kubelet's force-kill (StopContainer with timeout 0)
   * or a RemoveContainer acts at once instead of queueing behind it. Processes of a container
   * sharing the pod's PID namespace are signalled too. An unknown id is success: the
   * container is stopped as far as anyone can tell.
   */
  async stop(idOrPrefix: string, graceMs: number, log: Logger): Promise<void> {
    const { store, locks } = this.parts;
    const id = store.find(idOrPrefix)?.id;
    if (!id) {
      log.info('container already removed; nothing to stop');
      return;
    }
    if (graceMs > 0) {
      const signalled = await locks.run(id, () => this.sendStopSignal(id));
      if (signalled && (await this.waitForExit(id, graceMs))) {
        log.info({ signal: store.find(id)?.stopSignal }, 'container stopped');
        return;
      }
    }
    await locks.run(id, () => this.stopLocked(id, log));
  }

  /** The container's own stop signal, if it runs and has not exited; true when it was sent. */
  private async sendStopSignal(id: string): Promise<boolean> {
    const record = this.parts.store.find(id);
    if (!record || record.exit || !record.startedAt) return false;
    return this.parts.deps.runtime.kill(record.id, record.stopSignal, !record.ownPidNamespace);
  }

  /** SIGKILL and wait for the exit to be recorded: the end of every stop. Holds the lock. */
  private async stopLocked(id: string, log: Logger): Promise<void> {
    const { runtime } = this.parts.deps;
    const record = this.parts.store.find(id);
    if (!record || record.id !== id || record.exit) return;
    // In a PID namespace of its own, the kernel kills every process when init dies.
    const signalled = await runtime.kill(id, 'SIGKILL', !record.ownPidNamespace);
    if (signalled && (await this.waitForExit(id, KILL_WAIT_MS))) {
      log.info('container killed');
      return;
    }
    // Never started, or already gone without a recorded exit: what runc says is the truth.
    const state = await runtime.state(id);
    if (!state || state.status === 'stopped' || state.status === 'created') {
      await this.recordExit(id, (await runtime.exitOf(id)) ?? { exitCode: 137, exitedAt: new Date(), oomKilled: false });
      return;
    }
    throw new DeadlineExceededError(`container ${id} did not exit after SIGKILL`);
  }

  private async waitForExit(id: string, ms: number): Promise<boolean> {
    const exit = await this.parts.deps.runtime.waitExit(id, ms);
    if (exit) await this.recordExit(id, exit);
    return exit !== undefined;
  }

  /** Remove a container in any state; an unknown id is success. */
  async remove(idOrPrefix: string, log: Logger): Promise<void> {
    const { store, locks, names } = this.parts;
    const id = store.find(idOrPrefix)?.id;
    if (!id) {
      log.info('container already removed');
      return;
    }
    await locks.run(id, async () => {
      if (!store.find(id)) return;
      await this.stopLocked(id, log);
      // One rename takes the record, the rootfs and the writable layer out of the store: the
      // container no longer exists, and deleting what it left on the host (runc state,
      // bundle, mounts, files; tens of milliseconds) goes on after the answer. A restart
      // finishes a removal a crash interrupted (the store's finishRemoval).
      const record = store.get(id);
      const retired = await store.retire(id);
      names.release(record.name, id);
      log.info('container removed');
      this.parts.emit(record, 'CONTAINER_DELETED_EVENT');
      this.finishInBackground(record, retired, log);
    });
  }

  private finishInBackground(record: Readonly<ContainerRecord>, retired: string | undefined, log: Logger): void {
    const done = timeStep('RemoveContainer', 'cleanup', () => this.finishRemoval(record.id, retired))
      .catch((err: unknown) => log.error({ err }, 'cannot finish removing the container; the next start of tscri will'))
      .finally(() => this.finishing.delete(record.id));
    this.finishing.set(record.id, { sandboxId: record.sandboxId, done });
  }

  /** Delete what a removed container left: its runc state and bundle, its mounts and its directory. */
  async finishRemoval(id: string, retired: string | undefined): Promise<void> {
    const { runtime, mounts, images, log } = this.parts.deps;
    await runtime.delete(id);
    if (retired) {
      await mounts.unmountBelow(retired);
      await fs.rm(retired, { recursive: true, force: true });
    }
    await images.releaseLayers(id, log.child({ containerId: id }));
  }

  /** Wait for the cleanups of removed containers (of one sandbox, or all) to finish. */
  async removalsFinished(sandboxId?: string): Promise<void> {
    const pending = [...this.finishing.values()].filter((f) => sandboxId === undefined || f.sandboxId === sandboxId);
    await Promise.all(pending.map((f) => f.done));
  }

  /** Record an exit reported by conmon (or deduced); idempotent. */
  async recordExit(id: string, exit: ContainerExit, reason?: 'Unknown'): Promise<void> {
    const { store, deps } = this.parts;
    const record = store.find(id);
    if (!record || record.id !== id || record.exit) return;
    const exitRecord = {
      exitCode: exit.exitCode,
      finishedAt: nanosFromDate(exit.exitedAt),
      reason: reason ?? exitReason(exit.exitCode, exit.oomKilled),
      message: reason === 'Unknown' ? 'the container was gone when tscri looked for it' : '',
    };
    const recordIt = (r: ContainerRecord): void => {
      r.exit = exitRecord;
    };
    await store.update(id, recordIt, 'lifecycle').catch((err: unknown) => deps.log.error({ containerId: id, err }, 'cannot save exit'));
    deps.log.info({ containerId: id, exitCode: exit.exitCode, reason: exitRecord.reason }, 'container exited');
    this.parts.emit(record, 'CONTAINER_STOPPED_EVENT');
  }

  /** Stop every container of a sandbox (StopPodSandbox). */
  async stopAllIn(sandboxId: string, log: Logger): Promise<void> {
    const { store, locks } = this.parts;
    await Promise.all(store.list({ sandboxId }).map((c) => locks.run(c.id, () => this.stopLocked(c.id, log.child({ containerId: c.id })))));
  }

  /** Remove every container of a sandbox (RemovePodSandbox). */
  async removeAllIn(sandboxId: string, log: Logger): Promise<void> {
    await Promise.all(this.parts.store.list({ sandboxId }).map((c) => this.remove(c.id, log.child({ containerId: c.id }))));
    // A removed pod leaves nothing of its containers behind when its removal returns.
    await this.removalsFinished(sandboxId);
  }
}

function stateWord(state: string): string {
  return state.replace('CONTAINER_', '').toLowerCase();
}
