/**
 * Where instrumented code reports what it timed and counted: the RPC wrapper (server/wrap.ts),
 * the step timer (util/time.ts) and pull progress (image/progress.ts). There is one observer per
 * process, installed by the daemon when its metrics endpoint is on; with none installed a
 * report costs one call and an `undefined` check, and its arguments are not even evaluated
 * (`observer()?.step(...)` short-circuits).
 *
 * This module imports nothing, so the instrumented folders depend on it without depending on
 * the metrics code or prom-client.
 */
export interface Observer {
  /** A unary CRI call answered with `code` (a gRPC status number) after `seconds`. */
  rpc(method: string, code: number, seconds: number): void;
  /** A GetContainerEvents subscriber came (+1) or went (-1). */
  eventSubscribers(delta: number): void;
  /** One step of a multi-step operation finished successfully after `seconds`. */
  step(operation: string, step: string, seconds: number): void;
  /** Bytes of a layer a pull received (each is unpacked as it streams in). */
  pullBytes(bytes: number): void;
  /** A layer a pull fetched was unpacked in full. */
  pullLayerDone(): void;
  /** A pull ended, pulled or failed, after `seconds`. */
  pullFinished(seconds: number): void;
}

let current: Observer | undefined;

/** Install (or, with undefined, remove) the process's observer. */
export function setObserver(observer: Observer | undefined): void {
  current = observer;
}

export function observer(): Observer | undefined {
  return current;
}
