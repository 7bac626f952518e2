/**
 * Creations whose client gave up, kept for its retry. A RunPodSandbox or CreateContainer
 * cannot be stopped halfway without undoing everything, and the kubelet retries a call that
 * hit its deadline with the same metadata: so the work finishes, and its result is handed to
 * the retry (the same id back, never ALREADY_EXISTS), as CRI-O does. A result nobody claims
 * within `ttlMs` is rolled back, so an abandoned pod does not run forever.
 */
import type { Logger } from 'pino';
import { CanceledError } from '../errors.js';
import { untilAborted } from './abort.js';
import { after } from './timer.js';

interface Creation {
  result: Promise<string>;
  /** Callers waiting for the result right now. */
  waiters: number;
  settled: boolean;
  expiry?: NodeJS.Timeout;
}

export class ParkedCreations {
  private readonly creations = new Map<string, Creation>();

  constructor(
    private readonly what: string,
    private readonly ttlMs: number,
    /** Undo a creation nobody claimed (stop and remove it). */
    private readonly rollBack: (id: string, log: Logger) => Promise<void>,
  ) {}

  /**
   * The id of the creation for `key`: one already under way or parked for a retry is joined,
   * else `create` starts a new one. Rejects with Canceled when `signal` aborts first; the
   * creation goes on and is parked for the next call with the same key.
   */
  async create(key: string, create: () => Promise<string>, log: Logger, signal?: AbortSignal): Promise<string> {
    let creation = this.creations.get(key);
    if (creation) {
      log.info({ key }, `joining a ${this.what} already under way for the same metadata`);
      clearTimeout(creation.expiry);
    } else {
      creation = { result: create(), waiters: 0, settled: false };
      this.creations.set(key, creation);
      const started = creation;
      started.result.then(
        (id) => this.settled(key, started, id, log),
        () => this.settled(key, started, undefined, log),
      );
    }
    creation.waiters++;
    try {
      const id = await untilAborted(creation.result, signal);
      this.creations.delete(key);
      return id;
    } catch (err) {
      // A failed creation is forgotten: the retry starts afresh.
      if (!(err instanceof CanceledError)) this.creations.delete(key);
      throw err;
    } finally {
      creation.waiters--;
    }
  }

  /** A creation finished: delivered if someone waits, else parked until a retry or expiry. */
  private settled(key: string, creation: Creation, id: string | undefined, log: Logger): void {
    creation.settled = true;
    if (this.creations.get(key) !== creation || creation.waiters > 0) return;
    if (id === undefined) {
      this.creations.delete(key);
      return;
    }
    log.info({ key, id, ttlMs: this.ttlMs }, `${this.what} finished after its client gave up; kept for the retry`);
    creation.expiry = after(this.ttlMs, () => {
      if (this.creations.get(key) !== creation || creation.waiters > 0) return;
      this.creations.delete(key);
      log.warn({ key, id }, `nobody claimed the ${this.what}; rolling it back`);
      this.rollBack(id, log).catch((err: unknown) => log.error({ id, err }, `rolling back the unclaimed ${this.what} failed`));
    });
    creation.expiry.unref();
  }
}
