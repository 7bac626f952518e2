import { status as GrpcStatus } from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Observer } from './hooks.js';

/**
 * The daemon's own metrics (not the CRI's container metrics, which are in src/metrics/): how
 * long its RPCs and their steps take, what pulls fetch, how many pods and containers it holds,
 * and the process itself. Served by endpoint.ts; fed through the hooks.ts observer.
 */

/**
 * Latency buckets for RPCs and steps, in seconds. Both span what this daemon does: List and
 * Status calls and record writes take from well under a millisecond to a few; netns, mounts,
 * runc and CNI plugins tens to hundreds of milliseconds; a pull or a stuck CNI plugin seconds
 * to minutes (plugins are killed at 180 s by default, and kubelet gives RunPodSandbox 4
 * minutes, so 240 s is the last bound that means anything). About three bounds per decade
 * (1, 2.5, 5) keep quantile estimates within a factor of ~2.5 at any scale for 19 lines a series.
 */
export const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 240];

/**
 * Pull durations, in seconds: a pull of an image whose layers are all present reads a
 * manifest and a config (tens of milliseconds); large images take minutes, and a pull is
 * abandoned only when it receives nothing for pull_progress_timeout_seconds, so the top
 * bounds reach half an hour.
 */
export const PULL_BUCKETS_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300, 600, 1800];

/** What the state gauges count at scrape time: ListPodSandbox's and ListContainers' answers. */
export interface StateLists {
  pods(): ReadonlyArray<Stated>;
  containers(): ReadonlyArray<Stated>;
}

/** A listed item: its state is an enum name (the wire type also allows the number). */
type Stated = { state?: string | number };

/**
 * Every state is exported, at 0 when nothing is in it, so a series drops to 0 when its last
 * pod goes instead of vanishing (a vanished series reads as "no data", not as zero).
 */
const POD_STATES = ['SANDBOX_READY', 'SANDBOX_NOTREADY'];
const CONTAINER_STATES = ['CONTAINER_CREATED', 'CONTAINER_RUNNING', 'CONTAINER_EXITED', 'CONTAINER_UNKNOWN'];

export interface DaemonMetrics {
  registry: Registry;
  /** What the daemon installs with hooks.setObserver. */
  observer: Observer;
}

/**
 * The registry with every metric, and the observer that feeds it. `onObserverError` hears of
 * what an observation threw: the observer runs inside the RPC wrapper and the step timer, so
 * it never throws itself (a metrics bug must not keep a call from being answered).
 */
export function createDaemonMetrics(lists: StateLists, onObserverError: (err: unknown) => void = () => undefined): DaemonMetrics {
  const registry = new Registry();
  // Prefixed like the rest (tscri_process_cpu_seconds_total, …): one job's series, one prefix.
  collectDefaultMetrics({ register: registry, prefix: 'tscri_' });
  stateGauge(registry, 'tscri_pods', 'Pod sandboxes by CRI state, counted at scrape time.', POD_STATES, () => lists.pods());
  stateGauge(registry, 'tscri_containers', 'Containers by CRI state, counted at scrape time.', CONTAINER_STATES, () => lists.containers());
  const observer = { ...callObserver(registry), ...pullObserver(registry) };
  return { registry, observer: guarded(observer, onObserverError) };
}

function stateGauge(registry: Registry, name: string, help: string, states: string[], list: () => ReadonlyArray<Stated>): void {
  new Gauge({
    name,
    help,
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = new Map(states.map((state) => [state, 0]));
      for (const { state = '' } of list()) counts.set(String(state), (counts.get(String(state)) ?? 0) + 1);
      for (const [state, count] of counts) this.set({ state }, count);
    },
  });
}

type CallObserver = Pick<Observer, 'rpc' | 'step' | 'eventSubscribers'>;
type PullObserver = Pick<Observer, 'pullBytes' | 'pullLayerDone' | 'pullFinished'>;

function callObserver(registry: Registry): CallObserver {
  const latency = (name: string, help: string, labelNames: string[]): Histogram =>
    new Histogram({ name, help, labelNames, buckets: LATENCY_BUCKETS_SECONDS, registers: [registry] });
  const rpcs = latency('tscri_cri_request_duration_seconds', 'Latency of unary CRI calls, from arrival to answer, by method and gRPC status code.', ['rpc', 'code']);
  const steps = latency(
    'tscri_operation_step_duration_seconds',
    'Latency of the steps of pod and container operations that succeeded (StopPodSandbox steps also run first in RemovePodSandbox).',
    ['operation', 'step'],
  );
  const subscribers = new Gauge({ name: 'tscri_event_subscribers', help: 'GetContainerEvents streams open.', registers: [registry] });
  const rpc = childCache((method, code: number) => rpcs.labels(method, codeName(code)));
  const step = childCache((operation, name: string) => steps.labels(operation, name));
  return {
    rpc: (method, code, seconds) => rpc(method, code).observe(seconds),
    step: (operation, name, seconds) => step(operation, name).observe(seconds),
    eventSubscribers: (delta) => subscribers.inc(delta),
  };
}

function pullObserver(registry: Registry): PullObserver {
  const bytes = new Counter({
    name: 'tscri_image_pull_fetched_bytes_total',
    help: 'Layer bytes pulls received from registries, each unpacked as it streamed in (a layer two pulls share while it downloads counts for both).',
    registers: [registry],
  });
  const layers = new Counter({ name: 'tscri_image_pull_unpacked_layers_total', help: 'Layers pulls fetched and unpacked.', registers: [registry] });
  const pulls = new Histogram({
    name: 'tscri_image_pull_duration_seconds',
    help: 'Duration of pulls, pulled or failed, from start to end; PullImage calls for an image already being pulled join that pull.',
    buckets: PULL_BUCKETS_SECONDS,
    registers: [registry],
  });
  return {
    pullBytes: (n) => bytes.inc(n),
    pullLayerDone: () => layers.inc(),
    pullFinished: (seconds) => pulls.observe(seconds),
  };
}

type HistogramChild = ReturnType<Histogram['labels']>;

/**
 * One labelled child per pair of label values, made on first use: prom-client's `labels()`
 * validates and builds a label object on each call, which a hot path should not pay. Label
 * values come from the code (method and step names, status codes), so the cache is bounded.
 */
function childCache<K>(make: (first: string, second: K) => HistogramChild): (first: string, second: K) => HistogramChild {
  const byFirst = new Map<string, Map<K, HistogramChild>>();
  return (first, second) => {
    let bySecond = byFirst.get(first);
    if (!bySecond) byFirst.set(first, (bySecond = new Map()));
    let child = bySecond.get(second);
    if (!child) bySecond.set(second, (child = make(first, second)));
    return child;
  };
}

/** The status code's name as gRPC spells it (OK, NOT_FOUND, …), as the README's code table does. */
function codeName(code: number): string {
  return GrpcStatus[code] ?? String(code);
}

/** Each report in a try: fixed arities, so no argument arrays are made per call. */
function guarded(inner: Observer, onError: (err: unknown) => void): Observer {
  return {
    rpc(method, code, seconds) {
      try { inner.rpc(method, code, seconds); } catch (err) { onError(err); }
    },
    step(operation, name, seconds) {
      try { inner.step(operation, name, seconds); } catch (err) { onError(err); }
    },
    eventSubscribers(delta) {
      try { inner.eventSubscribers(delta); } catch (err) { onError(err); }
    },
    pullBytes(n) {
      try { inner.pullBytes(n); } catch (err) { onError(err); }
    },
    pullLayerDone() {
      try { inner.pullLayerDone(); } catch (err) { onError(err); }
    },
    pullFinished(seconds) {
      try { inner.pullFinished(seconds); } catch (err) { onError(err); }
    },
  };
}
