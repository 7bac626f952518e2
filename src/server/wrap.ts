import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { TscriError, UnavailableError, UnimplementedError, logLevelOf, type ErrorCode } from '../errors.js';
import { observer } from '../observability/hooks.js';
import { noteActivity } from '../util/idle-gc.js';
import { elapsedMs, secondsSince } from '../util/time.js';
import { shorten } from '../util/text.js';
import { toServiceError } from './status.js';

/** What a handler gets besides its request: a logger bound to the call's ids. */
export interface CallContext {
  log: Logger;
  /** Aborted when the client cancels or its deadline passes. */
  signal: AbortSignal;
}

/** The pod a call is about, put on each of its log lines beside the ids. */
export interface PodNames {
  podName: string;
  podNamespace: string;
}

/** The ids a call names, as its log lines carry them. */
export interface CallIds {
  podSandboxId?: string;
  containerId?: string;
}

export interface WrapOptions {
  log: Logger;
  /** False until recovery has finished: calls then answer UNAVAILABLE. */
  isReady: () => boolean;
  /** The pod of a sandbox or container id, when the daemon knows it. */
  podOf?: (ids: CallIds) => PodNames | undefined;
}

/** Calls that only read state are logged at debug level; the rest at info. */
const READ_ONLY = /^(Version|Status|RuntimeConfig|List\w*|\w*Status|ImageFsInfo|\w*Stats|ListMetricDescriptors|ListPodSandboxMetrics)$/;

/**
 * Wrap a service function as a unary gRPC handler: readiness check, a child logger with
 * the sandbox/container id of the request, timing, and error → status mapping.
 */
export function unary<Req, Res>(
  method: string,
  options: WrapOptions,
  fn: (request: Req, ctx: CallContext) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  const level = READ_ONLY.test(method) ? 'debug' : 'info';
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const ids = idsOf(call.request);
    const log = options.log.child({ rpc: method, ...ids, ...podNamesOf(method, call.request, ids, options) });
    if (!options.isReady()) {
      answer(method, started, callback, toServiceError(new UnavailableError('tscri is starting: state recovery has not finished')));
      return;
    }
    const abort = new AbortController();
    call.on('cancelled', () => abort.abort(new Error('call cancelled by the client')));
    log[level]('request');
    // Through a promise even when `fn` throws synchronously, so every error is mapped.
    Promise.resolve()
      .then(() => fn(call.request, { log, signal: abort.signal }))
      .then(
      (response) => {
        log[level]({ ms: elapsedMs(started), ...newKeys(idsOf(response), ids) }, 'done');
        answer(method, started, callback, null, response);
      },
      (err: unknown) => {
        log[logLevelOf(err)]({ ms: elapsedMs(started), err, code: codeOf(err) }, 'failed');
        answer(method, started, callback, toServiceError(err));
      },
    );
  };
}

function codeOf(err: unknown): ErrorCode {
  return err instanceof TscriError ? err.code : 'Internal';
}

/** Only the keys the logger does not carry yet: a key written twice makes a line ambiguous. */
function newKeys(fields: Record<string, string>, bound: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).filter(([key]) => !(key in bound)));
}

/**
 * Report the call's latency and code to the observer, then answer. Reported first, so a
 * client that has its answer also finds it in the metrics.
 */
function answer<Res>(
  method: string,
  started: bigint,
  callback: grpc.sendUnaryData<Res>,
  error: Partial<grpc.ServiceError> | null,
  response?: Res,
): void {
  observer()?.rpc(method, error?.code ?? grpc.status.OK, secondsSince(started));
  noteActivity();
  if (error) callback(error);
  else callback(null, response);
}

/** A handler for an RPC tscri does not serve: UNIMPLEMENTED at once. */
export function unimplemented<Req, Res>(method: string): grpc.handleUnaryCall<Req, Res> {
  return (_call, callback) => callback(toServiceError(new UnimplementedError(`${method} is not implemented by tscri`)));
}

/** A server-streaming RPC tscri does not serve. */
export function unimplementedStream<Req, Res>(method: string): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => call.emit('error', toServiceError(new UnimplementedError(`${method} is not implemented by tscri`)));
}

/** Longest id or image name put on a log line: a client may send megabytes in either. */
const MAX_LOGGED_ID_CHARS = 256;

function idsOf(message: unknown): Record<string, string> {
  const ids: Record<string, string> = {};
  if (typeof message !== 'object' || message === null) return ids;
  const m = message as Record<string, unknown>;
  const put = (key: string, value: unknown): void => {
    if (typeof value === 'string' && value) ids[key] = shorten(value, MAX_LOGGED_ID_CHARS);
  };
  put('podSandboxId', m.pod_sandbox_id);
  put('containerId', m.container_id);
  put('image', (m.image as { image?: unknown } | null | undefined)?.image);
  return ids;
}

/**
 * The pod's name and namespace: looked up by the call's ids, or read from the request when
 * the pod does not exist yet (RunPodSandbox) or the id is unknown (CreateContainer sends
 * its pod's config).
 */
function podNamesOf(method: string, request: unknown, ids: CallIds, options: WrapOptions): PodNames | Record<string, never> {
  if (ids.podSandboxId || ids.containerId) {
    try {
      const known = options.podOf?.(ids);
      if (known) return known;
    } catch {
      // An ambiguous prefix, say: the handler answers that; the log line just goes without.
    }
  }
  if (typeof request !== 'object' || request === null) return {};
  const r = request as { sandbox_config?: PodConfigLike | null; config?: PodConfigLike | null };
  // A container's `config` is its own; only RunPodSandbox's is the pod's.
  const podConfig = method === 'RunPodSandbox' ? r.config : r.sandbox_config;
  const metadata = podConfig?.metadata;
  if (!metadata || typeof metadata.name !== 'string') return {};
  return { podName: shorten(metadata.name, MAX_LOGGED_ID_CHARS), podNamespace: shorten(String(metadata.namespace ?? ''), MAX_LOGGED_ID_CHARS) };
}

interface PodConfigLike {
  metadata?: { name?: unknown; namespace?: unknown } | null;
}

/** Events queued for one subscriber before its events are dropped. */
const MAX_QUEUED_EVENTS = 1000;

/**
 * A server stream fed by a subscription: every event after the call starts is written, in
 * order, until the client goes away.
 */
export function eventStream<Req, Event>(
  method: string,
  options: WrapOptions,
  subscribe: (listener: (event: Event) => void) => () => void,
): grpc.handleServerStreamingCall<Req, Event> {
  return (call) => {
    const log = options.log.child({ rpc: method });
    if (!options.isReady()) {
      call.emit('error', toServiceError(new UnavailableError('tscri is starting: state recovery has not finished')));
      return;
    }
    log.info('subscribed');
    observer()?.eventSubscribers(1);
    let dropped = 0;
    const unsubscribe = subscribe((event) => {
      // A subscriber that does not read must not make the daemon buffer without end: past
      // the bound its events are dropped (as containerd and CRI-O drop them), and it can
      // relist, as evented PLEG does when it misses events.
      if (call.writableLength >= MAX_QUEUED_EVENTS) {
        if (dropped++ === 0) log.warn({ queued: call.writableLength }, 'event subscriber is not reading; dropping its events');
        return;
      }
      dropped = 0;
      call.write(event);
    });
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      unsubscribe();
      observer()?.eventSubscribers(-1);
      log.info('unsubscribed');
    };
    call.once('cancelled', end);
    call.once('close', end);
  };
}
