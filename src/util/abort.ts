import { CanceledError } from '../errors.js';

/**
 * `promise`, or a Canceled error as soon as `signal` aborts: the caller stops waiting, the
 * work behind the promise goes on (its owner decides whether to keep or stop it).
 */
export function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(new CanceledError('the client cancelled the call'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new CanceledError('the client cancelled the call'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
