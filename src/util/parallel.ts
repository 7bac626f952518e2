/**
 * Run independent steps together. Waits for every one to settle, so no step is still running
 * (and every undo it registers is registered) when the caller starts unwinding, then throws
 * the first failure.
 */
export async function allOrFirstError(steps: Array<Promise<unknown> | undefined | false | ''>): Promise<void> {
  const results = await Promise.allSettled(steps.filter((s): s is Promise<unknown> => s instanceof Promise));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
}
