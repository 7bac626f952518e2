/** Failures a test injects into a fake, per method, used in the order registered. */
export type Failure<K> = Error | ((key: K) => Error | undefined);

export class Failures<M extends string, K> {
  private readonly queues = new Map<M, Array<{ failure: Failure<K>; sticky: boolean }>>();

  /**
   * Make `method` reject: with `error` once (the default), or on every call (`sticky`). A
   * function is asked per call with the call's key (the object's id) and fails the call
   * when it returns an error.
   */
  add(method: M, failure: Failure<K>, sticky: boolean): void {
    const queue = this.queues.get(method) ?? [];
    queue.push({ failure, sticky });
    this.queues.set(method, queue);
  }

  /** Throw the failure due for this call of `method`, if any. */
  throwIfDue(method: M, key: K): void {
    const queue = this.queues.get(method);
    const next = queue?.[0];
    if (!next) return;
    const error = typeof next.failure === 'function' ? next.failure(key) : next.failure;
    if (!error) return;
    if (!next.sticky) queue.shift();
    throw error;
  }
}
