#!/usr/bin/env node
// tscri at node scale: List calls with many pods and containers running, and the daemon's
// memory over many container lifecycles. An instrument, not a test: never part of the suite.
//
//   npm run build
//   flock -w 1800 /tmp/tscri-e2e.lock node hack/bench-scale.mjs [--json FILE] [options]
//
// Take the e2e tests' lock as above (started without it, the script takes it itself).
//
// Options:
//   --pods N             pods kept running (200), each with --per-pod busybox `sleep 3600` (2)
//   --parallel P         pods and cycles in flight at once (3)
//   --calls C            timed calls of each List RPC (50), after 5 untimed
//   --lists LIST         which of ListPodSandbox,ListContainers,ListContainerStats,ListPodSandboxStats
//                        to time (all)
//   --cycles N           container create/start/stop/remove cycles (1000), 0 for none
//   --cycle-pods         each cycle runs in a pod of its own, run and removed with it
//   --sample-every K     read the daemon's memory every K cycles (100)
//   --warmup-cycles W    cycles before the memory baseline (200)
//   --daemon-node-args=S extra node flags for the daemon, e.g. --daemon-node-args="--cpu-prof"
//   --keep-log FILE      copy the daemon's log to FILE at the end
//   --json FILE          also write the result (schema tscri-bench-scale/1) to FILE
//
// The daemon runs with the V8 flags of dist/cli/main.js's shebang, as `tscri daemon` does.
// Latencies are from this process's side of the Unix socket (request encoded to reply decoded),
// one call at a time, p50 and p90 in ms; beside them the mean time inside the daemon's handler
// (from its metrics endpoint, on a free loopback port: tscri_cri_request_duration_seconds). Memory: the daemon's V8 heap used right after a full
// garbage collection (what is alive; the daemon runs with --inspect on a loopback port, and the
// script asks for the collection and the figure over the inspector protocol), then its VmRSS
// (/proc/PID/status); "stable" when every sample after the warm-up lies within ±10% of the
// first one. Every 10th cycle also calls ListContainerStats and ListPodSandboxStats, so the
// stats caches see containers come and go.
//
// The run gets, fresh and removed at its end (also on Ctrl-C or failure): a temporary root,
// state, socket and config, a registry (hack/lib/registry.mjs) holding the pause and busybox
// test images under bench.tscri.test/..., bridge tsbench-scale with 10.88.204.0/22 (a /24 is
// too small for the pods and the cycles' pods), cgroup parent /tsbench-scale-<run>. A bridge or
// route already there stops the run before it starts.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cniConflist, formatMB, formatMs, summarize, tscriConfig } from './lib/bench.mjs';
import {
  holdE2eLock,
  hostInfo,
  linkExists,
  mountsUnder,
  netnsNames,
  pool,
  removeCgroup,
  rssOf,
  run,
  stopDaemon,
  sweepHostLeftovers,
  waitDaemonReady,
  which,
} from './lib/bench-host.mjs';
import WebSocket from 'ws';
import { push } from './lib/images.mjs';
import { freePort, startRegistry } from './lib/registry.mjs';
import { buildTestImages } from './test-images.mjs';

const repo = fileURLToPath(new URL('..', import.meta.url));

const RESULT_SCHEMA = 'tscri-bench-scale/1';
const IMAGE_HOST = 'bench.tscri.test';
const CNI_BIN_DIR = '/usr/lib/cni';
const BRIDGE = 'tsbench-scale';
const SUBNET = '10.88.204.0/22';
/** cniConflist takes the /24 benchmarks use; the range is widened to SUBNET after. */
const SUBNET_24 = '10.88.204.0/24';
const LIST_WARMUP = 5;
const RPC_TIMEOUT_MS = 120_000;
const STATS_EVERY_CYCLES = 10;
const STABLE_BAND = 0.1;
/** Targets from the issue, p50 in ms. */
const TARGETS = { ListPodSandbox: 5, ListContainers: 5, ListContainerStats: 50 };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (...args) => console.error('bench-scale:', ...args);

// ---------------------------------------------------------------------------------------------
// Options

const { values: opts } = parseArgs({
  options: {
    pods: { type: 'string', default: '200' },
    'per-pod': { type: 'string', default: '2' },
    parallel: { type: 'string', default: '3' },
    calls: { type: 'string', default: '50' },
    lists: { type: 'string' },
    cycles: { type: 'string', default: '1000' },
    'cycle-pods': { type: 'boolean', default: false },
    'sample-every': { type: 'string', default: '100' },
    'warmup-cycles': { type: 'string', default: '200' },
    'daemon-node-args': { type: 'string', default: '' },
    'keep-log': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opts.help) {
  const header = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
  console.log(header.slice(1, header.findIndex((l) => l.startsWith('// The run gets'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}

function usage(message) {
  console.error(`bench-scale: ${message}\nusage: node hack/bench-scale.mjs [--pods N] [--per-pod K] [--parallel P] [--calls C] [--cycles N] [--cycle-pods] [--sample-every K] [--warmup-cycles W] [--json FILE]`);
  process.exit(2);
}

function count(name, min) {
  const n = Number(opts[name]);
  if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer ≥ ${min}`);
  return n;
}
const params = {
  pods: count('pods', 1),
  perPod: count('per-pod', 0),
  parallel: count('parallel', 1),
  calls: count('calls', 1),
  cycles: count('cycles', 0),
  cyclePods: opts['cycle-pods'],
  sampleEvery: count('sample-every', 1),
  warmupCycles: count('warmup-cycles', 0),
};

// ---------------------------------------------------------------------------------------------
// Interruption: the first Ctrl-C stops the workload and cleans up; the third gives up on that.

class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}
let interrupted = false;
let signals = 0;
const interruption = new AbortController();
let baseDir;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    signals++;
    interrupted = true;
    interruption.abort(new Interrupted());
    if (signals === 1) log(`${sig}: stopping; cleaning up (pods, daemon, bridge, registry)…`);
    else if (signals < 3) log('still cleaning up; once more to abandon the cleanup');
    else {
      log(`cleanup abandoned: look for leftovers under ${baseDir ?? '/tmp/tsbench-scale-*'}, bridge ${BRIDGE}, netns, cgroups /tsbench-scale-*`);
      process.exit(130);
    }
  });
}
/** Set while cleaning up: the workload's checks stop throwing so the cleanup can use the daemon. */
let cleaningUp = false;
const checkInterrupted = () => {
  if (interrupted && !cleaningUp) throw new Interrupted();
};

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  await preflight();
  const lock = await holdE2eLock({ waitSeconds: 1800, signal: interruption.signal, onWait: () => log('waiting for /tmp/tscri-e2e.lock…') });
  checkInterrupted();
  const runId = createHash('sha256').update(`${process.pid}-${Date.now()}`).digest('hex').slice(0, 6);
  baseDir = await fs.mkdtemp('/tmp/tsbench-scale-');
  const ctx = {
    dir: baseDir,
    runId,
    network: `tsbench-scale-${runId}`,
    cgroupParent: `/tsbench-scale-${runId}`,
    logDir: path.join(baseDir, 'logs'),
    netnsBefore: new Set(await netnsNames()),
  };
  let registry;
  let daemon;
  let clients;
  const leftovers = [];
  try {
    registry = await startRegistry({ dir: path.join(baseDir, 'registry') });
    const images = await pushImages(registry.address);
    ({ daemon, clients } = await startDaemon(ctx, registry.address, images));
    const rpc = rpcOf(clients);
    for (const reference of Object.values(images)) await rpc.image('PullImage', { image: { image: reference } });

    const result = { schema: RESULT_SCHEMA, date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), host: await hostInfo(), params, tools: await toolVersions() };
    const t0 = performance.now();
    await populate(ctx, rpc, images);
    result.populateMs = Math.round(performance.now() - t0);
    result.list = await measureLists(rpc, ctx.metricsPort);
    result.memoryAtScale = await readMemory(daemon.pid, ctx.inspectPort);
    if (params.cycles > 0) result.cycles = await runCycles(ctx, rpc, images, daemon.pid);
    console.log(renderText(result));
    if (opts.json) {
      await fs.writeFile(opts.json, `${JSON.stringify(result, null, 2)}\n`);
      log(`result written to ${opts.json}`);
    }
    return 0;
  } finally {
    cleaningUp = true;
    await teardown(ctx, daemon, clients, leftovers).catch((err) => log(`cleanup: ${err.stack ?? err}`));
    if (registry) await registry.stop().catch((err) => log(`registry: ${err.message}`));
    const remaining = await mountsUnder(baseDir);
    if (remaining.length) log(`mounts remain under ${baseDir}; left in place: ${remaining.join(', ')}`);
    else await fs.rm(baseDir, { recursive: true, force: true });
    lock.release();
    if (leftovers.length) log(`removed what the daemon left behind: ${leftovers.join('; ')}`);
  }
}

async function preflight() {
  if (process.getuid?.() !== 0) usage('must run as root (runc, netns, bridges)');
  const mainJs = path.join(repo, 'dist/cli/main.js');
  if (!(await fs.access(mainJs).then(() => true, () => false))) usage('dist/ is missing: run npm run build first');
  for (const tool of ['runc', 'conmon', 'ip', 'iptables', 'iptables-save', 'umount', 'flock', 'docker-registry']) {
    if (!(await which(tool))) usage(`${tool} is not installed (hack/setup.sh)`);
  }
  if (await linkExists(BRIDGE)) usage(`interface ${BRIDGE} exists (another run, or one that was killed): ip link del ${BRIDGE}`);
  // Routes inside the subnet (`root`) or covering part of it more precisely than a default.
  const routes = (await run('ip', ['-4', 'route', 'show', 'root', SUBNET], { allowFail: true })).stdout.trim();
  if (routes) usage(`${SUBNET} is already routed (${routes.split('\n')[0]}): something else uses it`);
}


async function toolVersions() {
  const first = async (cmd, args, pattern) => pattern.exec((await run(cmd, args, { allowFail: true }).catch(() => undefined))?.stdout ?? '')?.[1];
  return {
    node: process.version,
    tscri: await first('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], /^(\w+)/),
    runc: await first('runc', ['--version'], /runc version (\S+)/),
    conmon: await first('conmon', ['--version'], /conmon version (\S+)/),
  };
}

/** The pause and busybox test images, pushed to the run's registry; their references. */
async function pushImages(registry) {
  const catalogue = await buildTestImages();
  const out = {};
  for (const [key, repository, nameTag] of [
    ['sandbox', 'bench/pause', 'pause:1.0'],
    ['container', 'bench/busybox', 'busybox:1.0'],
  ]) {
    await push(registry, repository, '1.0', catalogue.get(nameTag));
    out[key] = `${IMAGE_HOST}/${repository}:1.0`;
  }
  return out;
}


async function startDaemon(ctx, registry, images) {
  const cniConfDir = path.join(ctx.dir, 'net.d');
  await fs.mkdir(cniConfDir, { recursive: true });
  await fs.mkdir(ctx.logDir);
  const conflist = cniConflist({ name: ctx.network, bridge: BRIDGE, subnet: SUBNET_24, dataDir: path.join(ctx.dir, 'ipam') });
  conflist.plugins[0].ipam.ranges = [[{ subnet: SUBNET }]];
  await fs.writeFile(path.join(cniConfDir, '10-bench.conflist'), JSON.stringify(conflist, null, 2));
  ctx.socket = path.join(ctx.dir, 'tscri.sock');
  ctx.inspectPort = await freePort();
  ctx.metricsPort = await freePort();
  const config = tscriConfig({
    socket: ctx.socket,
    root: path.join(ctx.dir, 'root'),
    state: path.join(ctx.dir, 'state'),
    sandboxImage: images.sandbox,
    cniConfDir,
    cniBinDirs: [CNI_BIN_DIR],
    mirrorHost: IMAGE_HOST,
    mirrorEndpoint: `http://${registry}`,
    cgroupParent: ctx.cgroupParent,
  });
  // The daemon's own metrics: how long each call took inside it, serialization left out.
  await fs.writeFile(path.join(ctx.dir, 'config.toml'), `${config}\n[metrics]\naddress = "127.0.0.1:${ctx.metricsPort}"\n`);
  ctx.logFile = path.join(ctx.dir, 'daemon.log');
  const logFd = openSync(ctx.logFile, 'a');
  // Run as `tscri daemon` runs, with the V8 flags its script's shebang names, plus the
  // inspector and any flags asked for.
  const main = path.join(repo, 'dist/cli/main.js');
  const nodeArgs = [...shebangFlags(main), `--inspect=127.0.0.1:${ctx.inspectPort}`, ...opts['daemon-node-args'].split(/\s+/).filter(Boolean)];
  // A process group of its own: a terminal's Ctrl-C reaches this script, which stops it last.
  const daemon = spawn(process.execPath, [...nodeArgs, main, 'daemon', '--config', path.join(ctx.dir, 'config.toml')], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  daemon.exited = new Promise((resolve) => daemon.once('exit', resolve));
  await new Promise((resolve, reject) => daemon.once('spawn', resolve).once('error', reject));
  const { connect } = await import(path.join(repo, 'dist/cli/client.js'));
  const clients = connect(`unix://${ctx.socket}`);
  await waitDaemonReady(daemon, rpcOf(clients), { logFile: ctx.logFile, what: 'the daemon', checkInterrupted });
  return { daemon, clients };
}

/** The node flags of a script's `#!/usr/bin/env -S node FLAGS…` line. */
function shebangFlags(script) {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0];
  const words = /^#!\S*env\s+-S\s+(.*)$/.exec(first)?.[1].trim().split(/\s+/) ?? [];
  return words[0] === 'node' ? words.slice(1) : [];
}

function rpcOf(clients) {
  const client = import(path.join(repo, 'dist/cli/client.js'));
  const wrap = (service) => async (method, request, timeoutMs = RPC_TIMEOUT_MS) => {
    const { call } = await client;
    return call(clients[service], method, request, timeoutMs).catch((err) => {
      throw Object.assign(new Error(`${method}: ${err.details ?? err.message}`), { code: err.code });
    });
  };
  const runtime = wrap('runtime');
  runtime.image = wrap('image');
  return runtime;
}

// ---------------------------------------------------------------------------------------------
// The workload

async function runPod(ctx, rpc, name) {
  const config = {
    metadata: { name, namespace: 'tsbench-scale', uid: `${ctx.network}-${name}`, attempt: 0 },
    hostname: name,
    log_directory: path.join(ctx.logDir, name),
    linux: { cgroup_parent: ctx.cgroupParent, security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  await fs.mkdir(config.log_directory, { recursive: true });
  const { pod_sandbox_id: id } = await rpc('RunPodSandbox', { config });
  return { id, config };
}

async function removePod(rpc, pod) {
  await rpc('StopPodSandbox', { pod_sandbox_id: pod.id });
  await rpc('RemovePodSandbox', { pod_sandbox_id: pod.id });
}

async function runContainer(rpc, pod, name, image) {
  const config = {
    metadata: { name, attempt: 0 },
    image: { image },
    command: ['sleep', '3600'],
    log_path: `${name}_0.log`,
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { container_id: id } = await rpc('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config });
  await rpc('StartContainer', { container_id: id });
  return id;
}

async function populate(ctx, rpc, images) {
  log(`running ${params.pods} pods with ${params.perPod} containers each, ${params.parallel} at a time`);
  let done = 0;
  await pool(params.pods, params.parallel, async (i) => {
    const pod = await runPod(ctx, rpc, `pod-${i}`);
    for (let c = 0; c < params.perPod; c++) await runContainer(rpc, pod, `sleeper-${c}`, images.container);
    if (++done % 50 === 0) log(`${done} pods running`);
  }, checkInterrupted);
}

async function measureLists(rpc, metricsPort) {
  const expected = { ListPodSandbox: params.pods, ListContainers: params.pods * params.perPod, ListContainerStats: params.pods * params.perPod, ListPodSandboxStats: params.pods };
  const sizeOf = { ListPodSandbox: (r) => r.items.length, ListContainers: (r) => r.containers.length, ListContainerStats: (r) => r.stats.length, ListPodSandboxStats: (r) => r.stats.length };
  const wanted = opts.lists ? opts.lists.split(',').map((m) => m.trim()) : Object.keys(expected);
  for (const method of wanted) if (!(method in expected)) usage(`--lists: unknown RPC ${method} (${Object.keys(expected).join(', ')})`);
  const out = {};
  for (const method of wanted) {
    log(`${method}: ${params.calls} calls`);
    const samples = [];
    let before;
    for (let i = 0; i < LIST_WARMUP + params.calls; i++) {
      if (i === LIST_WARMUP) before = await handlerTime(metricsPort, method);
      checkInterrupted();
      const t0 = performance.now();
      const reply = await rpc(method, {});
      const ms = performance.now() - t0;
      if (sizeOf[method](reply) !== expected[method]) throw new Error(`${method} answered ${sizeOf[method](reply)} items, not ${expected[method]}`);
      if (i >= LIST_WARMUP) samples.push(ms);
    }
    const after = await handlerTime(metricsPort, method);
    const handlerMeanMs = after && before && after.count > before.count ? ((after.sum - before.sum) / (after.count - before.count)) * 1000 : undefined;
    out[method] = { ...summarize(samples), handlerMeanMs, items: expected[method], targetP50: TARGETS[method] };
  }
  return out;
}

/** The daemon's total time and count of `method` calls (tscri_cri_request_duration_seconds). */
async function handlerTime(metricsPort, method) {
  const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text(), () => '');
  const value = (suffix) => Number(new RegExp(`^tscri_cri_request_duration_seconds_${suffix}\\{rpc="${method}",code="OK"\\} (\\S+)$`, 'm').exec(text)?.[1]);
  const sum = value('sum');
  const count = value('count');
  return Number.isFinite(sum) && Number.isFinite(count) ? { sum, count } : undefined;
}

/** One memory sample: the heap used after a full collection, then VmRSS. */
async function readMemory(pid, inspectPort) {
  const heapUsed = await heapAfterGc(inspectPort).catch((err) => {
    log(`heap: ${err.message}`);
    return undefined;
  });
  return { rss: await rssOf(pid), heapUsed };
}

/** Over the inspector protocol: a full garbage collection, then the heap's used size. */
async function heapAfterGc(port) {
  const targets = await fetch(`http://127.0.0.1:${port}/json/list`).then((r) => r.json());
  const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  try {
    let next = 0;
    const send = (method) =>
      new Promise((resolve, reject) => {
        const id = ++next;
        const onMessage = (data) => {
          const reply = JSON.parse(String(data));
          if (reply.id !== id) return;
          socket.off('message', onMessage);
          if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
          else resolve(reply.result);
        };
        socket.on('message', onMessage);
        socket.send(JSON.stringify({ id, method }));
      });
    await send('HeapProfiler.collectGarbage');
    return (await send('Runtime.getHeapUsage')).usedSize;
  } finally {
    socket.close();
  }
}

async function runCycles(ctx, rpc, images, daemonPid) {
  log(`${params.cycles} container cycles${params.cyclePods ? ' (each in a pod of its own)' : ''}, ${params.parallel} at a time; memory every ${params.sampleEvery}`);
  const shared = params.cyclePods ? undefined : await runPod(ctx, rpc, 'cycles');
  const samples = [{ cycle: 0, ...(await readMemory(daemonPid, ctx.inspectPort)) }];
  const lifecycle = [];
  let done = 0;
  // Samples in cycle order, one at a time, whichever worker finished the cycle.
  let sampling = Promise.resolve();
  await pool(params.cycles, params.parallel, async (i) => {
    const t0 = performance.now();
    const pod = shared ?? (await runPod(ctx, rpc, `cycle-${i}`));
    const id = await runContainer(rpc, pod, `cycle-${i}`, images.container);
    await rpc('StopContainer', { container_id: id, timeout: 0 });
    await rpc('RemoveContainer', { container_id: id });
    if (!shared) await removePod(rpc, pod);
    lifecycle.push(performance.now() - t0);
    const at = ++done;
    if (at % STATS_EVERY_CYCLES === 0) {
      await rpc('ListContainerStats', {});
      await rpc('ListPodSandboxStats', {});
    }
    if (at % params.sampleEvery === 0) {
      sampling = sampling.then(async () => samples.push({ cycle: at, ...(await readMemory(daemonPid, ctx.inspectPort)) }));
      await sampling;
      if (at % (params.sampleEvery * 5) === 0 || at === params.cycles) log(`${at} cycles`);
    }
  }, checkInterrupted);
  await sampling;
  if (shared) await removePod(rpc, shared);
  return { lifecycle: summarize(lifecycle), samples, ...stability(samples) };
}

/** The first sample at or after the warm-up is the baseline; stable when all later stay within the band. */
function stability(samples) {
  const after = samples.filter((s) => s.cycle >= params.warmupCycles);
  if (after.length < 2) return { stable: undefined };
  const base = after[0];
  const within = (pick) => after.every((s) => pick(s) === undefined || Math.abs(pick(s) / pick(base) - 1) <= STABLE_BAND);
  const drift = (pick) => (pick(base) ? pick(after.at(-1)) / pick(base) - 1 : undefined);
  return {
    baseline: base,
    end: after.at(-1),
    rssStable: within((s) => s.rss),
    heapStable: within((s) => s.heapUsed),
    rssDrift: drift((s) => s.rss),
    heapDrift: drift((s) => s.heapUsed),
    stable: within((s) => s.rss) && within((s) => s.heapUsed),
  };
}

// ---------------------------------------------------------------------------------------------
// Report

function renderText(result) {
  const p = result.params;
  const pad = (s, n) => String(s).padStart(n);
  const out = [
    `${result.date} · kernel ${result.host.kernel} · ${result.host.cpuModel} × ${result.host.cores} cores · node ${result.tools.node} · tscri ${result.tools.tscri ?? '?'}`,
    `${p.pods} pods × ${p.perPod} busybox containers running (made in ${(result.populateMs / 1000).toFixed(0)} s, ${p.parallel} at a time); ${p.calls} calls each, one at a time`,
    '',
    `${'latency, ms'.padEnd(22)} │ ${pad('items', 6)} ${pad('p50', 7)} ${pad('p90', 7)} ${pad('max', 7)} │ ${pad('in daemon', 9)} │ target p50`,
  ];
  for (const [method, s] of Object.entries(result.list)) {
    const verdict = s.targetP50 === undefined ? '' : `${s.targetP50} ms ${s.p50 <= s.targetP50 ? 'met' : 'MISSED'}`;
    const inDaemon = s.handlerMeanMs === undefined ? '–' : `${formatMs(s.handlerMeanMs)} avg`;
    out.push(`${method.padEnd(22)} │ ${pad(s.items, 6)} ${pad(formatMs(s.p50), 7)} ${pad(formatMs(s.p90), 7)} ${pad(formatMs(s.max), 7)} │ ${pad(inDaemon, 9)} │ ${verdict}`);
  }
  out.push(`  (in daemon: the handler's mean time from the daemon's own metrics, before the reply is serialized)`);
  out.push('', `daemon at scale: RSS ${formatMB(result.memoryAtScale.rss)}, heap used ${formatMB(result.memoryAtScale.heapUsed)}`);
  const c = result.cycles;
  if (c) {
    out.push(
      '',
      `${p.cycles} cycles of CreateContainer, StartContainer, StopContainer, RemoveContainer${p.cyclePods ? ' (and a pod each)' : ''}: p50 ${formatMs(c.lifecycle.p50)} ms, p90 ${formatMs(c.lifecycle.p90)} ms`,
      `${'cycle'.padStart(7)} │ ${pad('RSS', 10)} ${pad('heap used', 10)}`,
    );
    for (const s of c.samples) out.push(`${pad(s.cycle, 7)} │ ${pad(formatMB(s.rss), 10)} ${pad(formatMB(s.heapUsed), 10)}${s.cycle < p.warmupCycles ? '  (warm-up)' : ''}`);
    const pct = (v) => (v === undefined ? '–' : `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)}%`);
    if (c.stable === undefined) out.push(`too few samples after the ${p.warmupCycles}-cycle warm-up to judge`);
    else {
      out.push(
        `after cycle ${c.baseline.cycle}: RSS ${formatMB(c.baseline.rss)} → ${formatMB(c.end.rss)} (${pct(c.rssDrift)}), heap ${formatMB(c.baseline.heapUsed)} → ${formatMB(c.end.heapUsed)} (${pct(c.heapDrift)}): ` +
          `${c.stable ? 'stable' : 'NOT stable'} within ±${STABLE_BAND * 100}% (RSS ${c.rssStable ? 'yes' : 'no'}, heap ${c.heapStable ? 'yes' : 'no'})`,
      );
    }
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Teardown

/**
 * Pods removed through the API while the daemon runs, then the daemon stopped, then on the host
 * whatever is still there (recorded as leftovers: it should not be).
 */
async function teardown(ctx, daemon, clients, leftovers) {
  const alive = () => daemon && daemon.exitCode === null && daemon.signalCode === null;
  if (clients && alive()) {
    const rpc = rpcOf(clients);
    const pods = await rpc('ListPodSandbox', {}, 30_000).then((r) => r.items, () => []);
    if (pods.length) log(`removing ${pods.length} pods`);
    await pool(pods.length, 4, (i) => removePod(rpc, pods[i]).catch((err) => log(`pod ${pods[i].id}: ${err.message}`)), checkInterrupted);
  }
  clients?.close();
  await stopDaemon(daemon, leftovers);
  if (opts['keep-log'] && ctx.logFile) await fs.copyFile(ctx.logFile, opts['keep-log']).catch(() => {});
  await sweepHostLeftovers(ctx, { bridge: BRIDGE, isMonitor: (p) => p.comm === 'conmon' && p.cmdline.includes(ctx.dir), leftovers, log });
  const cgroupsLeft = await removeCgroup(ctx.cgroupParent);
  if (cgroupsLeft.length) log(`could not remove cgroups ${cgroupsLeft.join(', ')}`);
}

const exitCode = await main().catch((err) => {
  if (!(err instanceof Interrupted)) console.error(`bench-scale: ${err.stack ?? err}`);
  return err instanceof Interrupted ? 130 : 1;
});
process.exit(exitCode);
