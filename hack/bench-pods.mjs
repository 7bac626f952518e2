#!/usr/bin/env node
// Pod sandbox benchmark: latency of RunPodSandbox / StopPodSandbox / RemovePodSandbox and the
// memory a pod costs, against a tscri daemon started here on a temporary socket and root
// (real runc, conmon and CNI bridge + host-local + portmap; pods in 10.88.200.0/24).
//
//   npm run build && node hack/bench-pods.mjs [--pods 50] [--parallel 2] [--memory-pods 22]
//
// Needs root and hack/setup.sh. Prints medians and p90 in ms, and resident memory of the
// daemon and of the per-pod processes (conmon + pause) with --memory-pods pods running.
import { spawn, execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const { call, connect } = await import(path.join(repo, 'dist/cli/client.js'));

const { values: opts } = parseArgs({
  options: {
    pods: { type: 'string', default: '50' },
    parallel: { type: 'string', default: '2' },
    'memory-pods': { type: 'string', default: '22' },
  },
});
const podCount = Number(opts.pods);
const parallel = Number(opts.parallel);
const memoryPods = Number(opts['memory-pods']);

const base = await fs.mkdtemp('/tmp/tsbench-');
const bridge = 'tsbench0';
const socket = path.join(base, 'tscri.sock');
await fs.mkdir(path.join(base, 'net.d'), { recursive: true });
await fs.writeFile(
  path.join(base, 'net.d', '10-bench.conflist'),
  JSON.stringify({
    cniVersion: '1.0.0',
    name: 'tsbench',
    plugins: [
      { type: 'bridge', bridge, isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '10.88.200.0/24' }]], dataDir: path.join(base, 'ipam') } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }),
);
await fs.writeFile(
  path.join(base, 'config.toml'),
  `listen = "unix://${socket}"\nroot = "${base}/root"\nstate = "${base}/state"\nlog_level = "warn"\n[cni]\nconf_dir = "${base}/net.d"\nbin_dirs = ["/usr/lib/cni"]\ndefault_network = false\n`,
);

const daemon = spawn(process.execPath, [path.join(repo, 'dist/cli/main.js'), 'daemon', '--config', path.join(base, 'config.toml')], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
const clients = connect(`unix://${socket}`);
const rpc = (method, request) => call(clients.runtime, method, request, 120_000);

try {
  await waitForDaemon();
  const samples = { RunPodSandbox: [], StopPodSandbox: [], RemovePodSandbox: [], lifecycle: [] };
  /** RunPodSandbox's own per-step timings, from verbose PodSandboxStatus (not timed above). */
  const steps = {};
  let next = 0;
  const worker = async () => {
    while (next < podCount) {
      const n = next++;
      const t0 = performance.now();
      const { pod_sandbox_id: id } = await timed(samples.RunPodSandbox, () => rpc('RunPodSandbox', { config: podConfig(n) }));
      const lifecycleStopped = performance.now();
      const { info } = await rpc('PodSandboxStatus', { pod_sandbox_id: id, verbose: true });
      for (const [step, ms] of Object.entries(JSON.parse(info.info).timingsMs)) (steps[step] ??= []).push(ms);
      const t1 = performance.now();
      const excluded = t1 - lifecycleStopped;
      await timed(samples.StopPodSandbox, () => rpc('StopPodSandbox', { pod_sandbox_id: id }));
      await timed(samples.RemovePodSandbox, () => rpc('RemovePodSandbox', { pod_sandbox_id: id }));
      samples.lifecycle.push(performance.now() - t0 - excluded);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: parallel }, worker));
  const wall = performance.now() - started;

  console.log(`\n${podCount} pod lifecycles, ${parallel} in parallel, ${(wall / 1000).toFixed(1)} s wall`);
  console.log('operation            median     p90     min     max  (ms)');
  for (const [name, values] of Object.entries(samples)) console.log(row(name, values));
  console.log('RunPodSandbox steps (cni and pauseCreate run in parallel):');
  for (const [name, values] of Object.entries(steps)) console.log(row(`  ${name}`, values));

  // Memory with pods left running: the daemon, and what each pod adds on the host.
  const ids = [];
  for (let n = 0; n < memoryPods; n++) ids.push((await rpc('RunPodSandbox', { config: podConfig(1000 + n) })).pod_sandbox_id);
  const daemonRss = await rssOf(daemon.pid);
  const monitors = await pidsOf('conmon', base);
  const pauses = await pidsOf('pause', '-P');
  const conmonRss = await sumRss(monitors);
  const pauseRss = await sumRss(pauses);
  console.log(`\nresident memory with ${memoryPods} pods running:`);
  console.log(`  tscri daemon     ${mb(daemonRss)}`);
  console.log(`  ${monitors.length} conmon        ${mb(conmonRss)}  (${mb(conmonRss / Math.max(1, monitors.length))} each)`);
  console.log(`  ${pauses.length} pause         ${mb(pauseRss)}  (${mb(pauseRss / Math.max(1, pauses.length))} each)`);
  console.log(`  per pod on host  ${mb((conmonRss + pauseRss) / Math.max(1, memoryPods))}`);
  for (const id of ids) await rpc('RemovePodSandbox', { pod_sandbox_id: id });
} finally {
  clients.close();
  daemon.kill('SIGTERM');
  await new Promise((resolve) => daemon.once('exit', resolve));
  try {
    execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
  } catch {}
  await fs.rm(base, { recursive: true, force: true });
}

function podConfig(n) {
  return { metadata: { name: `bench-${n}`, namespace: 'bench', uid: `bench-uid-${n}-${process.pid}`, attempt: 0 }, hostname: `bench-${n}`, linux: {} };
}

async function timed(into, fn) {
  const t0 = performance.now();
  const result = await fn();
  into.push(performance.now() - t0);
  return result;
}

function row(name, values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const f = (v) => v.toFixed(1).padStart(7);
  return `${name.padEnd(18)} ${f(at(0.5))} ${f(at(0.9))} ${f(sorted[0])} ${f(sorted[sorted.length - 1])}`;
}

async function waitForDaemon() {
  for (let i = 0; i < 200; i++) {
    try {
      await call(clients.runtime, 'Version', {}, 1000);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('daemon did not start');
}

async function rssOf(pid) {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) * 1024;
}

async function sumRss(pids) {
  let total = 0;
  for (const pid of pids) total += await rssOf(pid).catch(() => 0);
  return total;
}

/** Pids whose comm is `comm` and whose command line contains `needle`. */
async function pidsOf(comm, needle) {
  const pids = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if ((await fs.readFile(`/proc/${entry}/comm`, 'utf8')).trim() !== comm) continue;
      if ((await fs.readFile(`/proc/${entry}/cmdline`, 'utf8')).includes(needle)) pids.push(Number(entry));
    } catch {}
  }
  return pids;
}

function mb(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
