#!/usr/bin/env node
// tscri against containerd: one workload, run against a tscri daemon and then (when the
// `containerd` binary is installed) against containerd, one after the other in one run, plus
// the "floor" under both measured by hand on the same machine. An instrument, not a test: it
// is never part of the test suite.
//
//   npm run build
//   flock -w 3600 /tmp/tscri-e2e.lock node hack/bench.mjs [--json FILE] [options]
//
// Take the e2e tests' lock as above so that nothing is measured while a test run holds the
// machine, and no test runs while this measures. Started without it, the script takes the
// same lock itself (waiting up to an hour) before it starts anything.
//
// Options:
//   --pods N            pod and container lifecycles per runtime (50), after 2 untimed
//   --parallel P        lifecycles in flight at once (2), as critest -benchmark runs them
//   --pulls K           PullImage of a 4-layer image of about 3 MB, each after RemoveImage (20)
//   --memory-pods M     pause-only pods running while memory is read (20)
//   --runtime R         tscri, containerd or both (both when containerd is installed)
//   --only LIST         a subset of floor,pods,containers,pull,memory
//   --steps             tscri only: the steps of RunPodSandbox, CreateContainer and
//                       StartContainer (their verbose status, read untimed)
//   --cpu-profile FILE  tscri only: run the daemon under node --cpu-prof, save the profile to
//                       FILE and print where its CPU went (self time by module and function)
//   --json FILE         also write the result (schema tscri-bench/1) to FILE
//   --render FILE       print the report of a saved result (with --markdown: as Markdown)
//   --compare FILE...   p50s and memory of several saved results side by side, with spread
//
// What each runtime gets, fresh for the run and removed at its end (also on Ctrl-C or failure):
// a temporary root, state, socket and config; the same CNI chain (bridge + host-local + portmap,
// tscri on bridge tsbench-ts with 10.88.201.0/24, containerd on tsbench-ctd with
// 10.88.202.0/24; the floor on tsbench-floor with 10.88.203.0/24); the same images, pushed to a
// registry started for the run (hack/lib/registry.mjs) under bench.tscri.test/..., which both
// runtimes mirror to it; the same pod cgroup parent scheme (/tsbench-<run>-<runtime>). Nothing
// already running is used: a bridge or subnet in use stops the run before it starts.
//
// containerd (Debian's 1.6) runs with its own root, state, sockets, opt (bin) dir, runc root and
// CNI conf dir, overlayfs, runc v2 with SystemdCgroup=false, and the same sandbox image (a pause
// image pushed to the run's registry); its shim sockets land in /run/containerd/s (a path
// containerd 1.6 fixes), which the run removes again.
//
// Measured per runtime: RunPodSandbox, StopPodSandbox, RemovePodSandbox and the whole pod
// lifecycle; in a pod of its own (run and removed untimed, as critest does) CreateContainer,
// StartContainer, StopContainer (timeout 0) and RemoveContainer of busybox `sleep 3600` and
// the whole; PullImage of an image removed just before (checked to be gone from the runtime's
// store); resident memory with M pause-only pods: the daemon, its monitors (conmon or
// containerd-shim-runc-v2) and the pods' processes, as summed RSS and as resident pages counted
// once (from /proc/PID/pagemap: shared library and binary pages count once). The floor: runc create,
// start, kill + wait and delete of a pause bundle; ip netns add and del; the CNI chain's ADD and
// DEL with the plugins executed directly. All latencies in ms, p50 and p90 (linear
// interpolation), from this process's side of the socket.
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { promises as fs, openSync, closeSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import {
  RESULT_SCHEMA,
  cniConflist,
  containerdConfig,
  median,
  pluginConfig,
  ratiosOf,
  renderComparison,
  renderMarkdown,
  renderText,
  summarize,
  tscriConfig,
} from './lib/bench.mjs';
import { renderProfile, summarizeProfile } from './lib/cpu-profile.mjs';
import {
  holdE2eLock,
  hostInfo,
  isDead,
  killAll,
  linkExists,
  memoryOfAll,
  mountsUnder,
  netnsNames,
  pidsInCgroup,
  pool,
  processTable,
  removeCgroup,
  routesIn,
  run,
  stopDaemon,
  sweepHostLeftovers,
  sweepIptables,
  uniqueBytes,
  unmountAll,
  waitDaemonReady,
  which,
  withDescendants,
} from './lib/bench-host.mjs';
import { image, layer, push } from './lib/images.mjs';
import { startRegistry } from './lib/registry.mjs';
import { buildTestImages } from './test-images.mjs';

const repo = fileURLToPath(new URL('..', import.meta.url));

const IMAGE_HOST = 'bench.tscri.test';
const CNI_BIN_DIR = '/usr/lib/cni';
const CNI_PLUGINS = ['bridge', 'host-local', 'portmap', 'loopback'];
const NETWORKS = {
  tscri: { bridge: 'tsbench-ts', subnet: '10.88.201.0/24' },
  containerd: { bridge: 'tsbench-ctd', subnet: '10.88.202.0/24' },
  floor: { bridge: 'tsbench-floor', subnet: '10.88.203.0/24' },
};
const PHASES = ['floor', 'pods', 'containers', 'pull', 'memory'];
/** Untimed iterations before each timed series. */
const WARMUP = 2;
const STOP_TIMEOUT_SECONDS = 0;
const RPC_TIMEOUT_MS = 120_000;
/** Memory is read this often, this far apart, after the pods have settled; medians are kept. */
const MEMORY_SAMPLES = 3;
const MEMORY_SETTLE_MS = 3000;
const GRPC_NOT_FOUND = 5;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const exists = (p) => fs.access(p).then(() => true, () => false);
const log = (...args) => console.error('bench:', ...args);

// ---------------------------------------------------------------------------------------------
// Options

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    pods: { type: 'string', default: '50' },
    parallel: { type: 'string', default: '2' },
    pulls: { type: 'string', default: '20' },
    'memory-pods': { type: 'string', default: '20' },
    runtime: { type: 'string' },
    only: { type: 'string' },
    steps: { type: 'boolean', default: false },
    'cpu-profile': { type: 'string' },
    json: { type: 'string' },
    render: { type: 'string' },
    markdown: { type: 'boolean', default: false },
    compare: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opts.help) {
  const header = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
  console.log(header.slice(1, header.findIndex((l) => l.startsWith('// What each runtime'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}

if (opts.render) {
  const result = readResult(opts.render);
  console.log(opts.markdown ? renderMarkdown(result) : renderText(result));
  process.exit(0);
}
if (opts.compare) {
  if (positionals.length < 2) usage('--compare needs two or more result files');
  console.log(renderComparison(positionals.map(readResult)));
  process.exit(0);
}
if (positionals.length) usage(`unexpected argument ${positionals[0]}`);

function usage(message) {
  console.error(`bench: ${message}\nusage: node hack/bench.mjs [--pods N] [--parallel P] [--pulls K] [--memory-pods M] [--runtime tscri|containerd|both] [--only LIST] [--steps] [--json FILE]\n       node hack/bench.mjs --render FILE [--markdown] | --compare FILE FILE...`);
  process.exit(2);
}

function readResult(file) {
  const result = JSON.parse(readFileSync(file, 'utf8'));
  if (result.schema !== RESULT_SCHEMA) throw new Error(`${file}: not a ${RESULT_SCHEMA} result`);
  return result;
}

function count(name, min) {
  const n = Number(opts[name]);
  if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer ≥ ${min}`);
  return n;
}
const params = {
  pods: count('pods', 1),
  parallel: count('parallel', 1),
  pulls: count('pulls', 1),
  memoryPods: count('memory-pods', 1),
  warmup: WARMUP,
  stopTimeoutSeconds: STOP_TIMEOUT_SECONDS,
};
const phases = new Set(opts.only ? opts.only.split(',').map((s) => s.trim()) : PHASES);
for (const p of phases) if (!PHASES.includes(p)) usage(`--only: unknown phase ${p} (${PHASES.join(', ')})`);

// ---------------------------------------------------------------------------------------------
// Interruption: the first Ctrl-C stops the workload and cleans up; the third gives up on that.

class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}
let interrupted = false;
let signals = 0;
/** Aborted by a signal: ends a wait for the e2e lock (nothing to clean up yet). */
const interruption = new AbortController();
let cleaningUp = false;
let baseDir;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    signals++;
    interrupted = true;
    interruption.abort(new Interrupted());
    if (signals === 1) log(`${sig}: stopping; cleaning up (pods, daemons, bridges, registry)…`);
    else if (signals < 3) log('still cleaning up; once more to abandon the cleanup');
    else {
      log(`cleanup abandoned: look for leftovers under ${baseDir ?? '/tmp/tsbench-*'}, bridges tsbench-*, netns, cgroups /tsbench-*`);
      process.exit(130);
    }
  });
}
const checkInterrupted = () => {
  if (interrupted && !cleaningUp) throw new Interrupted();
};

// ---------------------------------------------------------------------------------------------
// Main (called at the end of this file, once every constant below is defined)

async function main() {
  const runtimes = await chooseRuntimes();
  await preflight(runtimes);
  const lock = await holdE2eLock({ signal: interruption.signal, onWait: () => log('waiting for /tmp/tscri-e2e.lock (a test run holds it)…') });
  checkInterrupted();
  if (!lock.inherited) log('holding /tmp/tscri-e2e.lock');
  const runId = createHash('sha256').update(`${process.pid}-${Date.now()}`).digest('hex').slice(0, 6);
  baseDir = await fs.mkdtemp('/tmp/tsbench-');
  let registry;
  let failed = false;
  try {
    const result = {
      schema: RESULT_SCHEMA,
      date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      host: await hostInfo(),
      params,
      tools: await toolVersions(runtimes),
      images: {},
      floor: undefined,
      runtimes: {},
    };
    registry = await startRegistry({ dir: path.join(baseDir, 'registry') });
    const images = await pushImages(registry.address);
    result.images = Object.fromEntries(Object.entries(images).map(([k, v]) => [k, { reference: v.reference, layers: v.layers.length, compressedBytes: v.compressedBytes, unpackedBytes: v.unpackedBytes }]));
    const shared = { base: baseDir, runId, registry: registry.address, images };

    if (phases.has('floor')) {
      log('floor: runc, ip netns, CNI plugins by hand');
      result.floor = await measureFloor(shared);
    }
    for (const kind of runtimes) {
      checkInterrupted();
      log(`${kind}: starting`);
      result.runtimes[kind] = await benchRuntime(kind, shared);
    }
    result.ratios = ratiosOf(result);
    console.log(renderText(result));
    if (opts.json) {
      await fs.writeFile(opts.json, `${JSON.stringify(result, null, 2)}\n`);
      log(`result written to ${opts.json}`);
    }
    return 0;
  } catch (err) {
    failed = err instanceof Interrupted ? 'interruption' : 'failure';
    throw err;
  } finally {
    cleaningUp = true;
    if (registry) await registry.stop().catch((err) => log(`registry: ${err.message}`));
    const remaining = await mountsUnder(baseDir);
    if (remaining.length) log(`mounts remain under ${baseDir}; left in place: ${remaining.join(', ')}`);
    else await fs.rm(baseDir, { recursive: true, force: true });
    lock.release();
    if (failed) log(`cleaned up after the ${failed}`);
  }
}

async function chooseRuntimes() {
  const haveContainerd = (await which('containerd')) !== undefined && (await which('containerd-shim-runc-v2')) !== undefined;
  const wanted = opts.runtime ?? (haveContainerd ? 'both' : 'tscri');
  if (!['tscri', 'containerd', 'both'].includes(wanted)) usage('--runtime must be tscri, containerd or both');
  if (wanted !== 'tscri' && !haveContainerd) usage('containerd is not installed (containerd and containerd-shim-runc-v2 on PATH)');
  if (!opts.runtime && !haveContainerd) log('containerd is not installed: measuring tscri alone');
  if (opts.steps && wanted === 'containerd') usage('--steps is for tscri');
  return wanted === 'both' ? ['tscri', 'containerd'] : [wanted];
}

async function preflight(runtimes) {
  if (process.getuid?.() !== 0) usage('must run as root (runc, netns, bridges)');
  if (!(await exists(path.join(repo, 'dist/cli/main.js')))) usage('dist/ is missing: run npm run build first');
  const tools = ['runc', 'ip', 'iptables', 'iptables-save', 'umount', 'flock', 'docker-registry', 'catatonit'];
  if (runtimes.includes('tscri')) tools.push('conmon');
  for (const tool of tools) if (!(await which(tool))) usage(`${tool} is not installed (hack/setup.sh)`);
  for (const plugin of CNI_PLUGINS) if (!(await exists(path.join(CNI_BIN_DIR, plugin)))) usage(`CNI plugin ${plugin} is missing from ${CNI_BIN_DIR}`);
  for (const [name, { bridge, subnet }] of Object.entries(NETWORKS)) {
    if (name !== 'floor' && !runtimes.includes(name)) continue;
    if (name === 'floor' && !phases.has('floor')) continue;
    if (await linkExists(bridge)) usage(`interface ${bridge} exists (another run, or one that was killed): ip link del ${bridge}`);
    const routes = await routesIn(subnet);
    if (routes.length) usage(`${subnet} is already routed (${routes[0]}): something else uses it`);
  }
}


async function toolVersions(runtimes) {
  const first = async (cmd, args, pattern) => {
    const r = await run(cmd, args, { allowFail: true }).catch(() => undefined);
    return pattern.exec(`${r?.stdout ?? ''}${r?.stderr ?? ''}`)?.[1];
  };
  const pkg = JSON.parse(await fs.readFile(path.join(repo, 'package.json'), 'utf8'));
  const head = await first('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], /^(\w+)/);
  const dirty = (await run('git', ['-C', repo, 'status', '--porcelain', '--untracked-files=no'], { allowFail: true }).catch(() => undefined))?.stdout.trim();
  return {
    node: process.version,
    tscri: `${pkg.version}${head ? ` (${head}${dirty ? ', modified' : ''})` : ''}`,
    containerd: runtimes.includes('containerd') ? await first('containerd', ['--version'], /containerd\S*\s+\S+\s+v?(\S+)/) : undefined,
    runc: await first('runc', ['--version'], /runc version (\S+)/),
    conmon: runtimes.includes('tscri') ? await first('conmon', ['--version'], /conmon version (\S+)/) : undefined,
    cniPlugins: await first('dpkg-query', ['-W', '-f=${Version}', 'containernetworking-plugins'], /^(\S+)/),
  };
}

// ---------------------------------------------------------------------------------------------
// Images

/** Deterministic incompressible bytes: AES-CTR of zeros under a key derived from `seed`. */
function noise(seed, size) {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

/** Deterministic text that compresses about as well as source code or documentation. */
function prose(seed, size) {
  const words = 'the runtime starts a pod sandbox with its network namespace and pause container then each container of the pod is created from its image layers and started under a monitor process that records its exit'.split(' ');
  const bytes = noise(seed, size);
  let text = '';
  for (let i = 0; text.length < size; i++) text += words[bytes[i % size] % words.length] + (bytes[(i * 7) % size] % 11 === 0 ? '.\n' : ' ');
  return text.slice(0, size);
}

/** The image PullImage is timed with: four layers, about 3 MB compressed, shared with no other. */
async function pullImage() {
  const dirs = (...paths) => paths.map((p) => ({ path: p, type: 'dir' }));
  const layers = [
    await layer([...dirs('usr', 'usr/local', 'usr/local/bin'), { path: 'usr/local/bin/busybox', source: '/usr/bin/busybox', mode: 0o755 }]),
    await layer([...dirs('opt', 'opt/bench', 'opt/bench/data'), ...[0, 1, 2, 3].map((i) => ({ path: `opt/bench/data/blob-${i}`, content: noise(`blob-${i}`, 384 * 1024) }))]),
    await layer([...dirs('opt', 'opt/bench', 'opt/bench/doc'), ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({ path: `opt/bench/doc/page-${i}.txt`, content: prose(`page-${i}`, 256 * 1024) }))]),
    await layer([...dirs('etc'), { path: 'etc/bench-release', content: 'tscri bench payload 1\n' }]),
  ];
  return image({ layers, config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['/usr/local/bin/busybox', 'sleep', '3600'] } });
}

/** Push the sandbox, container and pull images; reference, layers and sizes of each. */
async function pushImages(registry) {
  const catalogue = await buildTestImages();
  const items = {
    sandbox: ['bench/pause', '1.0', catalogue.get('pause:1.0')],
    container: ['bench/busybox', '1.0', catalogue.get('busybox:1.0')],
    pull: ['bench/payload', '1.0', await pullImage()],
  };
  const out = {};
  for (const [key, [repository, tag, item]] of Object.entries(items)) {
    await push(registry, repository, tag, item);
    out[key] = {
      reference: `${IMAGE_HOST}/${repository}:${tag}`,
      layers: item.layers.map((l) => ({ digest: l.digest, diffId: l.diffId })),
      compressedBytes: item.layers.reduce((n, l) => n + l.size, 0),
      unpackedBytes: item.layers.reduce((n, l) => n + gunzipSync(l.bytes).length, 0),
    };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The runtimes

const hex = (digest) => digest.slice(digest.indexOf(':') + 1);

/** What differs between the two runtimes; everything else is the same code path. */
const KINDS = {
  tscri: {
    async configure(ctx, shared) {
      ctx.socket = path.join(ctx.dir, 'tscri.sock');
      const config = tscriConfig({
        socket: ctx.socket,
        root: path.join(ctx.dir, 'root'),
        state: path.join(ctx.dir, 'state'),
        sandboxImage: shared.images.sandbox.reference,
        cniConfDir: ctx.cniConfDir,
        cniBinDirs: [CNI_BIN_DIR],
        mirrorHost: IMAGE_HOST,
        mirrorEndpoint: `http://${shared.registry}`,
        cgroupParent: ctx.cgroupParent,
      });
      await fs.writeFile(path.join(ctx.dir, 'config.toml'), config);
      // Run as `tscri daemon` runs, through the script's shebang and the V8 flags it names.
      const main = path.join(repo, 'dist/cli/main.js');
      const daemonArgs = ['daemon', '--config', path.join(ctx.dir, 'config.toml')];
      if (!opts['cpu-profile']) return [main, daemonArgs];
      // Profiled: node started here with the shebang's flags, and the profiler's.
      const shebangFlags = readFileSync(main, 'utf8').split('\n', 1)[0].split(/\s+/).filter((w) => w.startsWith('--'));
      return [process.execPath, [...shebangFlags, '--cpu-prof', `--cpu-prof-dir=${path.join(ctx.dir, 'cpu-profile')}`, main, ...daemonArgs]];
    },
    isMonitor: (p, ctx) => p.comm === 'conmon' && p.cmdline.includes(ctx.dir),
    layerPresent: (ctx, l) => exists(path.join(ctx.dir, 'root/images/layers', hex(l.diffId))),
  },
  containerd: {
    async configure(ctx, shared) {
      ctx.socket = path.join(ctx.dir, 'containerd.sock');
      const config = containerdConfig({
        socket: ctx.socket,
        root: path.join(ctx.dir, 'root'),
        state: path.join(ctx.dir, 'state'),
        optDir: path.join(ctx.dir, 'opt'),
        runcRoot: path.join(ctx.dir, 'runc'),
        sandboxImage: shared.images.sandbox.reference,
        cniConfDir: ctx.cniConfDir,
        cniBinDir: CNI_BIN_DIR,
        mirrorHost: IMAGE_HOST,
        mirrorEndpoint: `http://${shared.registry}`,
      });
      await fs.writeFile(path.join(ctx.dir, 'config.toml'), config);
      ctx.shimSocketsBefore = new Set(await fs.readdir('/run/containerd/s').catch(() => []));
      ctx.runContainerdExisted = await exists('/run/containerd');
      return ['containerd', ['--config', path.join(ctx.dir, 'config.toml')]];
    },
    isMonitor: (p, ctx) => p.comm.startsWith('containerd-shim') && p.cmdline.includes(ctx.socket),
    layerPresent: (ctx, l) => exists(path.join(ctx.dir, 'root/io.containerd.content.v1.content/blobs/sha256', hex(l.digest))),
  },
};

async function benchRuntime(kind, shared) {
  const { bridge, subnet } = NETWORKS[kind];
  const dir = path.join(shared.base, kind);
  const ctx = {
    kind,
    dir,
    bridge,
    network: `tsbench-${kind}-${shared.runId}`,
    cgroupParent: `/tsbench-${shared.runId}-${kind}`,
    cniConfDir: path.join(dir, 'net.d'),
    logDir: path.join(dir, 'logs'),
    netnsBefore: new Set(await netnsNames()),
  };
  await fs.mkdir(ctx.cniConfDir, { recursive: true });
  await fs.mkdir(ctx.logDir);
  await fs.writeFile(path.join(ctx.cniConfDir, '10-bench.conflist'), JSON.stringify(cniConflist({ name: ctx.network, bridge, subnet, dataDir: path.join(dir, 'ipam') }), null, 2));
  const [command, args] = await KINDS[kind].configure(ctx, shared);

  const result = { operations: {}, phases: {}, leftovers: [] };
  let daemon;
  let clients;
  try {
    const logFile = openSync(path.join(dir, 'daemon.log'), 'a');
    // A process group of its own: a terminal's Ctrl-C reaches this script, which stops it last.
    daemon = spawn(command, args, { detached: true, stdio: ['ignore', logFile, logFile] });
    closeSync(logFile);
    daemon.exited = new Promise((resolve) => daemon.once('exit', resolve));
    await new Promise((resolve, reject) => daemon.once('spawn', resolve).once('error', reject));
    const { connect, call } = await import(path.join(repo, 'dist/cli/client.js'));
    clients = connect(`unix://${ctx.socket}`);
    const rpc = (method, request, timeoutMs = RPC_TIMEOUT_MS) =>
      call(clients.runtime, method, request, timeoutMs).catch((err) => {
        throw Object.assign(new Error(`${kind} ${method}: ${err.details ?? err.message}`), { code: err.code });
      });
    const irpc = (method, request) =>
      call(clients.image, method, request, RPC_TIMEOUT_MS).catch((err) => {
        throw Object.assign(new Error(`${kind} ${method}: ${err.details ?? err.message}`), { code: err.code });
      });
    const t0 = performance.now();
    await waitDaemonReady(daemon, rpc, { logFile: path.join(ctx.dir, 'daemon.log'), what: ctx.kind, checkInterrupted });
    result.phases.startMs = Math.round(performance.now() - t0);
    for (const key of ['sandbox', 'container']) await irpc('PullImage', { image: { image: shared.images[key].reference } });

    const env = { ctx, rpc, irpc, shared, daemon, result };
    if (phases.has('pods')) await podPhase(env);
    if (phases.has('containers')) await containerPhase(env);
    if (phases.has('pull')) await pullPhase(env);
    if (phases.has('memory')) await memoryPhase(env);
    return result;
  } finally {
    cleaningUp = true;
    await teardownRuntime(ctx, daemon, clients, result).catch((err) => log(`${kind}: cleanup: ${err.stack ?? err}`));
    cleaningUp = false;
  }
}

/** The profile the daemon wrote as it exited: saved to --cpu-profile and summarized. */
async function keepProfile(ctx) {
  const dir = path.join(ctx.dir, 'cpu-profile');
  const [file] = (await fs.readdir(dir).catch(() => [])).filter((f) => f.endsWith('.cpuprofile'));
  if (!file) {
    const tail = (await fs.readFile(path.join(ctx.dir, 'daemon.log'), 'utf8').catch(() => '')).split('\n').slice(-5).join('\n');
    throw new Error(`the daemon wrote no profile in ${dir}; its log ends:\n${tail}`);
  }
  await fs.copyFile(path.join(dir, file), opts['cpu-profile']);
  const summary = summarizeProfile(JSON.parse(await fs.readFile(path.join(dir, file), 'utf8')));
  console.log(renderProfile(summary));
  log(`cpu profile written to ${opts['cpu-profile']}`);
}

function podConfig(ctx, name) {
  return {
    metadata: { name, namespace: 'tsbench', uid: `${ctx.network}-${name}`, attempt: 0 },
    hostname: name,
    log_directory: path.join(ctx.logDir, name),
    linux: {
      cgroup_parent: ctx.cgroupParent,
      security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } },
    },
  };
}

/** A pod's config with its log directory made (kubelet makes it before RunPodSandbox). */
async function newPod(ctx, name) {
  const config = podConfig(ctx, name);
  await fs.mkdir(config.log_directory, { recursive: true });
  return config;
}

async function podPhase({ ctx, rpc, result }) {
  const series = { RunPodSandbox: [], StopPodSandbox: [], RemovePodSandbox: [], PodLifecycle: [] };
  const steps = {};
  const lifecycle = async (name, record) => {
    const config = await newPod(ctx, name);
    const t0 = performance.now();
    const { pod_sandbox_id: id } = await rpc('RunPodSandbox', { config });
    const t1 = performance.now();
    if (record && opts.steps && ctx.kind === 'tscri') {
      const { info } = await rpc('PodSandboxStatus', { pod_sandbox_id: id, verbose: true });
      for (const [step, ms] of Object.entries(JSON.parse(info.info).timingsMs ?? {})) (steps[step] ??= []).push(ms);
    }
    const t2 = performance.now();
    await rpc('StopPodSandbox', { pod_sandbox_id: id });
    const t3 = performance.now();
    await rpc('RemovePodSandbox', { pod_sandbox_id: id });
    const t4 = performance.now();
    if (!record) return;
    series.RunPodSandbox.push(t1 - t0);
    series.StopPodSandbox.push(t3 - t2);
    series.RemovePodSandbox.push(t4 - t3);
    series.PodLifecycle.push(t4 - t0 - (t2 - t1));
  };
  log(`${ctx.kind}: ${params.pods} pod lifecycles, ${params.parallel} in parallel`);
  await pool(WARMUP, params.parallel, (i) => lifecycle(`warm-pod-${i}`, false), checkInterrupted);
  const t0 = performance.now();
  await pool(params.pods, params.parallel, (i) => lifecycle(`pod-${i}`, true), checkInterrupted);
  result.phases.podsWallMs = Math.round(performance.now() - t0);
  for (const [name, samples] of Object.entries(series)) result.operations[name] = summarize(samples);
  if (Object.keys(steps).length) result.runPodSandboxSteps = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, summarize(v)]));
}

async function containerPhase({ ctx, rpc, shared, result }) {
  const series = { CreateContainer: [], StartContainer: [], StopContainer: [], RemoveContainer: [], ContainerLifecycle: [] };
  const steps = {};
  const lifecycle = async (name, record) => {
    const podConfigured = await newPod(ctx, name);
    const { pod_sandbox_id: pod } = await rpc('RunPodSandbox', { config: podConfigured });
    const config = {
      metadata: { name: 'bench', attempt: 0 },
      image: { image: shared.images.container.reference },
      command: ['sleep', '3600'],
      log_path: 'bench_0.log',
      linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    };
    const t0 = performance.now();
    const { container_id: id } = await rpc('CreateContainer', { pod_sandbox_id: pod, config, sandbox_config: podConfigured });
    const t1 = performance.now();
    await rpc('StartContainer', { container_id: id });
    const t2 = performance.now();
    if (record && opts.steps && ctx.kind === 'tscri') {
      const { info } = await rpc('ContainerStatus', { container_id: id, verbose: true });
      for (const [step, ms] of Object.entries(JSON.parse(info.info).timingsMs ?? {})) (steps[step] ??= []).push(ms);
    }
    const t2b = performance.now();
    await rpc('StopContainer', { container_id: id, timeout: STOP_TIMEOUT_SECONDS });
    const t3 = performance.now();
    await rpc('RemoveContainer', { container_id: id });
    const t4 = performance.now();
    await rpc('StopPodSandbox', { pod_sandbox_id: pod });
    await rpc('RemovePodSandbox', { pod_sandbox_id: pod });
    if (!record) return;
    series.CreateContainer.push(t1 - t0);
    series.StartContainer.push(t2 - t1);
    series.StopContainer.push(t3 - t2b);
    series.RemoveContainer.push(t4 - t3);
    series.ContainerLifecycle.push(t4 - t0 - (t2b - t2));
  };
  log(`${ctx.kind}: ${params.pods} container lifecycles, ${params.parallel} in parallel`);
  await pool(WARMUP, params.parallel, (i) => lifecycle(`warm-ctr-${i}`, false), checkInterrupted);
  const t0 = performance.now();
  await pool(params.pods, params.parallel, (i) => lifecycle(`ctr-${i}`, true), checkInterrupted);
  result.phases.containersWallMs = Math.round(performance.now() - t0);
  for (const [name, samples] of Object.entries(series)) result.operations[name] = summarize(samples);
  if (Object.keys(steps).length) result.containerSteps = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, summarize(v)]));
}

async function pullPhase({ ctx, irpc, shared, result }) {
  const target = shared.images.pull;
  const samples = [];
  let warm = 0;
  log(`${ctx.kind}: ${params.pulls} pulls of ${target.reference}`);
  for (let i = 0; i < WARMUP + params.pulls; i++) {
    checkInterrupted();
    await irpc('RemoveImage', { image: { image: target.reference } }).catch((err) => {
      if (err.code !== GRPC_NOT_FOUND) throw err;
    });
    // The layers must be gone from the store, or the pull would skip their download and unpack
    // (containerd collects garbage after RemoveImage; give it a moment).
    let cold = false;
    for (let wait = 0; wait < 100 && !cold; wait++) {
      cold = !(await Promise.all(target.layers.map((l) => KINDS[ctx.kind].layerPresent(ctx, l)))).some(Boolean);
      if (!cold) await sleep(50);
    }
    if (!cold && i >= WARMUP) warm++;
    const t0 = performance.now();
    await irpc('PullImage', { image: { image: target.reference } });
    if (i >= WARMUP) samples.push(performance.now() - t0);
  }
  if (warm) log(`${ctx.kind}: ${warm} of ${params.pulls} pulls found layers still in the store`);
  result.operations.PullImage = { ...summarize(samples), layersStillPresent: warm };
}

async function memoryPhase({ ctx, rpc, daemon, result }) {
  log(`${ctx.kind}: memory with ${params.memoryPods} pause pods`);
  const ids = [];
  try {
    for (let i = 0; i < params.memoryPods; i++) {
      checkInterrupted();
      ids.push((await rpc('RunPodSandbox', { config: await newPod(ctx, `mem-${i}`) })).pod_sandbox_id);
    }
    await sleep(MEMORY_SETTLE_MS);
    const readings = [];
    for (let i = 0; i < MEMORY_SAMPLES; i++) {
      if (i) await sleep(1000);
      checkInterrupted();
      readings.push(await readMemory(ctx, daemon.pid));
    }
    const pick = (group, field) => median(readings.map((r) => r[group][field]));
    const memory = { podCount: params.memoryPods };
    for (const group of ['daemon', 'monitors', 'pods', 'perPod', 'total']) {
      memory[group] = { rss: pick(group, 'rss'), unique: pick(group, 'unique') };
      if (readings[0][group].count !== undefined) memory[group].count = Math.round(pick(group, 'count'));
      if (readings[0][group].names) memory[group].names = readings.at(-1)[group].names;
    }
    result.memory = memory;
  } finally {
    for (const id of ids) {
      await rpc('StopPodSandbox', { pod_sandbox_id: id }).catch(() => {});
      await rpc('RemovePodSandbox', { pod_sandbox_id: id }).catch(() => {});
    }
  }
}

/**
 * One reading: the daemon (with any child it keeps), its monitors, and the pods' processes
 * below them, as summed RSS and as resident pages counted once; per pod is monitors + pods
 * over the pod count.
 */
async function readMemory(ctx, daemonPid) {
  const table = await processTable();
  const monitors = [...table.values()].filter((p) => KINDS[ctx.kind].isMonitor(p, ctx)).map((p) => p.pid);
  // A pod's processes are what its cgroup holds, wherever their parent is (tscri's pause
  // containers have no monitor as a parent), with anything still below a monitor.
  const inPods = await pidsInCgroup(ctx.cgroupParent);
  const podPids = [...new Set([...inPods, ...withDescendants(table, monitors)])].filter((pid) => !monitors.includes(pid) && table.has(pid));
  const daemonPids = [...withDescendants(table, [daemonPid])].filter((pid) => !monitors.includes(pid) && !podPids.includes(pid));
  const names = (pids) => [...new Set(pids.map((pid) => table.get(pid)?.comm))].sort();
  const daemon = await memoryOfAll(daemonPids);
  const mons = await memoryOfAll(monitors);
  const pods = await memoryOfAll(podPids);
  const n = params.memoryPods;
  return {
    daemon: { count: daemon.count, rss: daemon.rss, unique: daemon.unique },
    monitors: { count: mons.count, rss: mons.rss, unique: mons.unique, names: names(monitors) },
    pods: { count: pods.count, rss: pods.rss, unique: pods.unique, names: names(podPids) },
    perPod: { rss: (mons.rss + pods.rss) / n, unique: uniqueBytes(mons.pages, pods.pages) / n },
    total: { rss: daemon.rss + mons.rss + pods.rss, unique: uniqueBytes(daemon.pages, mons.pages, pods.pages) },
  };
}

/**
 * Stop and delete everything the runtime made: its pods through the API while it runs, then the
 * daemon, then on the host whatever is still there (recorded as leftovers when it should not be).
 */
async function teardownRuntime(ctx, daemon, clients, result) {
  const leftovers = result.leftovers;
  if (clients && daemon && daemon.exitCode === null && daemon.signalCode === null) {
    const { call } = await import(path.join(repo, 'dist/cli/client.js'));
    const items = await call(clients.runtime, 'ListPodSandbox', {}, 10_000).then((r) => r.items ?? [], () => []);
    for (const pod of items) {
      await call(clients.runtime, 'StopPodSandbox', { pod_sandbox_id: pod.id }, 60_000).catch(() => {});
      await call(clients.runtime, 'RemovePodSandbox', { pod_sandbox_id: pod.id }, 60_000).catch((err) => log(`${ctx.kind}: RemovePodSandbox ${pod.id}: ${err.message}`));
    }
  }
  clients?.close();
  await stopDaemon(daemon, leftovers);

  // Written as the daemon exited, into the directory removed below.
  if (opts['cpu-profile'] && ctx.kind === 'tscri') await keepProfile(ctx).catch((err) => log(`cpu profile: ${err.message}`));

  // Processes: monitors naming this run's directory or socket, what they run, and anything in
  // the run's pod cgroups; then mounts, network namespaces, rules and the bridge.
  await sweepHostLeftovers(ctx, {
    bridge: ctx.bridge,
    isMonitor: (p) => KINDS[ctx.kind].isMonitor(p, ctx),
    leftovers,
    log: (message) => log(`${ctx.kind}: ${message}`),
  });
  // libcni's cache of attachment results (containerd); removed by a DEL that ran.
  for (const file of await fs.readdir('/var/lib/cni/results').catch(() => [])) {
    if (!file.startsWith(`${ctx.network}-`)) continue;
    leftovers.push(`/var/lib/cni/results/${file}`);
    await fs.rm(path.join('/var/lib/cni/results', file), { force: true });
  }
  if (ctx.shimSocketsBefore) {
    // containerd 1.6 puts its shims' sockets in /run/containerd/s whatever its state dir is.
    for (const file of await fs.readdir('/run/containerd/s').catch(() => [])) {
      if (!ctx.shimSocketsBefore.has(file)) await fs.rm(path.join('/run/containerd/s', file), { force: true });
    }
    if (!ctx.runContainerdExisted) {
      await fs.rmdir('/run/containerd/s').catch(() => {});
      await fs.rmdir('/run/containerd').catch(() => {});
    }
  }
  const cgroupsLeft = await removeCgroup(ctx.cgroupParent);
  if (cgroupsLeft.length) log(`${ctx.kind}: could not remove cgroups ${cgroupsLeft.join(', ')}`);
  if ((await mountsUnder(ctx.dir)).length === 0) await fs.rm(ctx.dir, { recursive: true, force: true });
  if (leftovers.length) log(`${ctx.kind}: removed what it left behind: ${leftovers.join('; ')}`);
}

// ---------------------------------------------------------------------------------------------
// The floor: the same host work done by hand, one operation at a time

async function measureFloor(shared) {
  const dir = path.join(shared.base, 'floor');
  const { bridge, subnet } = NETWORKS.floor;
  const runcRoot = path.join(dir, 'runc');
  const bundle = path.join(dir, 'bundle');
  const cgroupParent = `/tsbench-${shared.runId}-floor`;
  const network = `tsbench-floor-${shared.runId}`;
  const netnsPrefix = `tsbench-${shared.runId}-`;
  const series = Object.fromEntries(['runcCreate', 'runcStart', 'runcKillWait', 'runcDelete', 'runcLifecycle', 'netnsAdd', 'netnsDel', 'cniAdd', 'cniDel'].map((k) => [k, []]));
  const n = params.pods;
  const leftovers = [];
  await fs.mkdir(path.join(bundle, 'rootfs'), { recursive: true });
  try {
    // A pause bundle like the runtimes' pause containers: catatonit -P as 65535, read-only
    // root, no capabilities, its own namespaces, in a cgroup of the run's.
    await fs.copyFile((await which('catatonit')) ?? '/usr/bin/catatonit', path.join(bundle, 'rootfs/pause'));
    await fs.chmod(path.join(bundle, 'rootfs/pause'), 0o755);
    for (const d of ['proc', 'dev', 'sys']) await fs.mkdir(path.join(bundle, 'rootfs', d));
    await run('runc', ['spec', '--bundle', bundle]);
    const spec = JSON.parse(await fs.readFile(path.join(bundle, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['/pause', '-P'];
    spec.process.user = { uid: 65535, gid: 65535 };
    spec.process.noNewPrivileges = true;
    spec.process.capabilities = { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] };
    spec.root = { path: 'rootfs', readonly: true };
    spec.hostname = 'floor';
    spec.linux.cgroupsPath = `${cgroupParent}/pause`;
    await fs.writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec));
    const runc = (...args) => run('runc', ['--root', runcRoot, ...args]);

    for (let i = 0; i < WARMUP + n; i++) {
      checkInterrupted();
      const id = `tsbench-${shared.runId}-${i}`;
      const pidFile = path.join(dir, 'pause.pid');
      // runc create hands its stdio to the container: give it files, not this process's pipes.
      const errFile = path.join(dir, 'runc-create.err');
      const err = openSync(errFile, 'w');
      const create = await run('runc', ['--root', runcRoot, 'create', '--bundle', bundle, '--pid-file', pidFile, id], { stdio: ['ignore', 'ignore', err], allowFail: true });
      closeSync(err);
      if (create.code !== 0) throw new Error(`runc create: ${(await fs.readFile(errFile, 'utf8')).trim()}`);
      const pid = Number(await fs.readFile(pidFile, 'utf8'));
      const start = await runc('start', id);
      const k0 = performance.now();
      await runc('kill', id, 'KILL');
      while (!(await isDead(pid))) await sleep(1);
      const killWait = performance.now() - k0;
      const del = await runc('delete', id);
      if (i < WARMUP) continue;
      series.runcCreate.push(create.ms);
      series.runcStart.push(start.ms);
      series.runcKillWait.push(killWait);
      series.runcDelete.push(del.ms);
      series.runcLifecycle.push(create.ms + start.ms + killWait + del.ms);
    }

    for (let i = 0; i < WARMUP + n; i++) {
      checkInterrupted();
      const name = `${netnsPrefix}n${i}`;
      const add = await run('ip', ['netns', 'add', name]);
      const del = await run('ip', ['netns', 'del', name]);
      if (i < WARMUP) continue;
      series.netnsAdd.push(add.ms);
      series.netnsDel.push(del.ms);
    }

    const conflist = cniConflist({ name: network, bridge, subnet, dataDir: path.join(dir, 'ipam') });
    for (let i = 0; i < WARMUP + n; i++) {
      checkInterrupted();
      const name = `${netnsPrefix}c${i}`;
      const id = `${network}-${i}`;
      await run('ip', ['netns', 'add', name]);
      const env = (command) => ({
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: id,
        CNI_NETNS: `/run/netns/${name}`,
        CNI_IFNAME: 'eth0',
        CNI_PATH: CNI_BIN_DIR,
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=tsbench;K8S_POD_NAME=floor-${i};K8S_POD_INFRA_CONTAINER_ID=${id}`,
      });
      const plugin = (index, command, prevResult) => {
        const config = pluginConfig(conflist, index, prevResult);
        return run(path.join(CNI_BIN_DIR, config.type), [], { env: env(command), input: JSON.stringify(config) });
      };
      const a0 = performance.now();
      const bridgeResult = JSON.parse((await plugin(0, 'ADD')).stdout);
      const finalResult = JSON.parse((await plugin(1, 'ADD', bridgeResult)).stdout);
      const add = performance.now() - a0;
      const d0 = performance.now();
      await plugin(1, 'DEL', finalResult);
      await plugin(0, 'DEL', finalResult);
      const del = performance.now() - d0;
      await run('ip', ['netns', 'del', name]);
      if (i < WARMUP) continue;
      series.cniAdd.push(add);
      series.cniDel.push(del);
    }
  } finally {
    cleaningUp = true;
    const list = await run('runc', ['--root', runcRoot, 'list', '-q'], { allowFail: true });
    for (const id of list.stdout.split('\n').filter(Boolean)) {
      leftovers.push(`runc container ${id}`);
      await run('runc', ['--root', runcRoot, 'delete', '-f', id], { allowFail: true });
    }
    for (const name of await netnsNames()) {
      if (!name.startsWith(netnsPrefix)) continue;
      leftovers.push(`netns ${name}`);
      await run('ip', ['netns', 'del', name], { allowFail: true });
    }
    leftovers.push(...(await sweepIptables(network)));
    await run('ip', ['link', 'del', bridge], { allowFail: true });
    const stray = await pidsInCgroup(cgroupParent);
    if (stray.length) await killAll(stray);
    await removeCgroup(cgroupParent);
    await unmountAll(dir);
    await fs.rm(dir, { recursive: true, force: true });
    if (leftovers.length) log(`floor: removed ${leftovers.join('; ')}`);
    cleaningUp = false;
  }
  return { operations: Object.fromEntries(Object.entries(series).map(([k, v]) => [k, summarize(v)])) };
}

const exitCode = await main().catch((err) => {
  if (!(err instanceof Interrupted)) console.error(`bench: ${err.stack ?? err}`);
  return err instanceof Interrupted ? 130 : 1;
});
process.exit(exitCode);
