// Host-side helpers of hack/bench.mjs: running tools, the process table and resident memory,
// and finding and removing what a run made (mounts, netns, links, iptables rules, cgroups).
import { spawn } from 'node:child_process';
import { constants as fsConstants, promises as fs, closeSync, openSync, readdirSync, realpathSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { networkRules } from './bench.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Run a tool and wait for it: `{ code, signal, stdout, stderr, ms }`, where `ms` is the time
 * from spawn to the process's exit (not to its pipes' close: a container started by `runc
 * create` may hold them). Rejects when it cannot be started, and, unless `allowFail`, when it
 * exits non-zero (the message quotes its stderr).
 */
export function run(command, args, { input, env, stdio, allowFail = false, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, { stdio: stdio ?? [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    let exited;
    let done = false;
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.stdout?.destroy();
      child.stderr?.destroy();
      const result = { ...exited, stdout, stderr };
      if (result.code !== 0 && !allowFail) {
        const why = result.signal ? `signal ${result.signal}` : `status ${result.code}`;
        reject(new Error(`${command} ${args.join(' ')}: ${why}: ${(stderr || stdout).trim().slice(0, 600)}`));
      } else resolve(result);
    };
    child.once('error', (err) => {
      done = true;
      clearTimeout(timer);
      reject(new Error(`${command}: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      exited = { code, signal, ms: performance.now() - t0 };
      // 'close' follows once the pipes are closed; something the tool left running may hold
      // them, so do not wait for that long.
      setTimeout(finish, 200);
    });
    child.once('close', () => finish());
    if (input !== undefined) child.stdin.on('error', () => {}).end(input);
  });
}

/** Whether `command` is found in PATH (or is an executable path). */
export async function which(command) {
  const dirs = command.includes('/') ? [''] : (process.env.PATH ?? '').split(':');
  for (const dir of dirs) {
    const file = path.join(dir, command);
    try {
      await fs.access(file, fsConstants.X_OK);
      if ((await fs.stat(file)).isFile()) return file;
    } catch {}
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Processes and memory

/** Every process: pid → { pid, ppid, comm, cmdline } (cmdline's NULs as spaces). */
export async function processTable() {
  const table = new Map();
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8');
      // comm is in parentheses and may itself contain spaces and parentheses.
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const [state, ppid] = stat.slice(close + 2).split(' ');
      const cmdline = (await fs.readFile(`/proc/${entry}/cmdline`, 'utf8')).replace(/\0/g, ' ').trim();
      table.set(Number(entry), { pid: Number(entry), ppid: Number(ppid), comm, state, cmdline });
    } catch {
      // Gone meanwhile.
    }
  }
  return table;
}

/** The pids of `roots` and all their descendants in `table`. */
export function withDescendants(table, roots) {
  const children = new Map();
  for (const p of table.values()) {
    if (!children.has(p.ppid)) children.set(p.ppid, []);
    children.get(p.ppid).push(p.pid);
  }
  const out = new Set();
  const stack = [...roots];
  while (stack.length) {
    const pid = stack.pop();
    if (out.has(pid) || !table.has(pid)) continue;
    out.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

const PAGE_SIZE = 4096;
const PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;

/** A process's resident memory (VmRSS) in bytes, 0 once it is gone. */
export async function rssOf(pid) {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

/**
 * The physical pages a process has resident, added to `into` (page frame numbers, read from
 * /proc/PID/pagemap for the mappings smaps shows resident; needs root). A set of processes'
 * union counts a page they share once, whoever else maps it too: unlike RSS (which counts it in
 * each) and PSS (which divides it among every process on the host that maps it, this benchmark's
 * own node included).
 */
export async function residentPages(pid, into) {
  let smaps;
  let handle;
  try {
    smaps = await fs.readFile(`/proc/${pid}/smaps`, 'utf8');
    handle = await fs.open(`/proc/${pid}/pagemap`, 'r');
  } catch {
    await handle?.close();
    return into;
  }
  try {
    let range;
    for (const line of smaps.split('\n')) {
      const header = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
      if (header) {
        range = [parseInt(header[1], 16), parseInt(header[2], 16)];
        continue;
      }
      const rss = /^Rss:\s+(\d+) kB/.exec(line);
      if (!rss || !range || rss[1] === '0') continue;
      const pages = (range[1] - range[0]) / PAGE_SIZE;
      const buffer = Buffer.alloc(pages * 8);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, (range[0] / PAGE_SIZE) * 8).catch(() => ({ bytesRead: 0 }));
      for (let offset = 0; offset + 8 <= bytesRead; offset += 8) {
        const entry = buffer.readBigUInt64LE(offset);
        if (entry & PRESENT) into.add(Number(entry & PFN_MASK));
      }
      range = undefined;
    }
  } finally {
    await handle.close();
  }
  return into;
}

/**
 * The memory of a group of processes: { count, rss (summed VmRSS), unique (their resident pages
 * counted once), pages (those pages, for unions with other groups) }.
 */
export async function memoryOfAll(pids) {
  let rss = 0;
  const pages = new Set();
  for (const pid of pids) {
    rss += await rssOf(pid);
    await residentPages(pid, pages);
  }
  return { count: pids.length, rss, unique: pages.size * PAGE_SIZE, pages };
}

/** Bytes of the pages in all the given sets, each page counted once. */
export function uniqueBytes(...sets) {
  const all = new Set();
  for (const set of sets) for (const page of set) all.add(page);
  return all.size * PAGE_SIZE;
}

/** Whether a process is gone or a zombie (dead, waiting for a parent that may never reap it). */
export async function isDead(pid) {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** SIGKILL every pid, then wait (up to `timeoutMs`) until they are dead. */
export async function killAll(pids, timeoutMs = 5000) {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  const deadline = Date.now() + timeoutMs;
  for (const pid of pids) while (!(await isDead(pid)) && Date.now() < deadline) await sleep(20);
}

// ---------------------------------------------------------------------------------------------
// cgroups

/** The directories of cgroup `parent` (a path from the root) in every mounted hierarchy. */
export async function cgroupDirs(parent) {
  const root = '/sys/fs/cgroup';
  const roots = [root, ...(await fs.readdir(root).catch(() => [])).map((c) => path.join(root, c))];
  const dirs = [];
  for (const r of roots) {
    const dir = path.join(r, parent);
    if (await fs.stat(dir).then((s) => s.isDirectory(), () => false)) dirs.push(dir);
  }
  return dirs;
}

/** Every pid in cgroup `parent` or below it, in any hierarchy. */
export async function pidsInCgroup(parent) {
  const pids = new Set();
  const walk = async (dir) => {
    const procs = await fs.readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const line of procs.split('\n')) if (line.trim()) pids.add(Number(line));
    for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await walk(path.join(dir, entry.name));
    }
  };
  for (const dir of await cgroupDirs(parent)) await walk(dir);
  return [...pids];
}

/** Remove cgroup `parent` and everything below it (empty directories, deepest first). */
export async function removeCgroup(parent) {
  const failed = [];
  const walk = async (dir) => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await walk(path.join(dir, entry.name));
    }
    for (let i = 0; i < 50; i++) {
      try {
        await fs.rmdir(dir);
        return;
      } catch (err) {
        if (err.code === 'ENOENT') return;
        // A cgroup whose last task just died can be busy for a moment.
        if (err.code !== 'EBUSY' || i === 49) {
          failed.push(`${dir}: ${err.code}`);
          return;
        }
        await sleep(20);
      }
    }
  };
  for (const dir of await cgroupDirs(parent)) await walk(dir);
  return failed;
}

// ---------------------------------------------------------------------------------------------
// Mounts, netns, links, iptables

/** Mount points at or below `dir`, deepest first. */
export async function mountsUnder(dir) {
  const mounts = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const unescape = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  const points = mounts
    .split('\n')
    .filter(Boolean)
    .map((line) => unescape(line.split(' ')[4]))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Unmount everything at or below `dir`; what could not be unmounted. */
export async function unmountAll(dir) {
  for (let round = 0; round < 5; round++) {
    const points = await mountsUnder(dir);
    if (points.length === 0) return [];
    for (const point of points) {
      const r = await run('umount', [point], { allowFail: true });
      if (r.code !== 0) await run('umount', ['-l', point], { allowFail: true });
    }
  }
  return mountsUnder(dir);
}

/** Named network namespaces (`ip netns` names, files in /run/netns). */
export async function netnsNames() {
  return (await fs.readdir('/run/netns').catch(() => [])).sort();
}

export async function linkExists(name) {
  return (await run('ip', ['link', 'show', 'dev', name], { allowFail: true })).code === 0;
}

/** Routes of the main table inside `subnet` (a /24 another interface already serves). */
export async function routesIn(subnet) {
  const r = await run('ip', ['-4', 'route', 'show', 'match', subnet], { allowFail: true });
  const prefix = subnet.split('/')[0].split('.').slice(0, 3).join('.');
  return r.stdout
    .split('\n')
    .filter((line) => line.startsWith(`${prefix}.`));
}

/**
 * Delete the NAT rules and chains the bridge plugin made for attachments of `network` (only
 * there when a pod's CNI DEL never ran); what was removed, as readable lines.
 */
export async function sweepIptables(network) {
  const save = await run('iptables-save', ['-t', 'nat'], { allowFail: true });
  if (save.code !== 0) return [];
  const { rules, chains } = networkRules(save.stdout, network);
  const removed = [];
  for (const rule of rules) {
    if ((await run('iptables', ['-w', '-t', 'nat', ...rule], { allowFail: true })).code === 0) removed.push(`iptables rule ${rule.slice(1).join(' ')}`);
  }
  for (const chain of chains) {
    await run('iptables', ['-w', '-t', 'nat', '-F', chain], { allowFail: true });
    if ((await run('iptables', ['-w', '-t', 'nat', '-X', chain], { allowFail: true })).code === 0) removed.push(`iptables chain ${chain}`);
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// The e2e lock

export const E2E_LOCK = '/tmp/tscri-e2e.lock';

/** Whether this process inherited an open descriptor of `file` (as `flock FILE command` leaves). */
function inheritedLock(file) {
  let target;
  try {
    target = statSync(file);
  } catch {
    return false;
  }
  let fds = [];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {}
  for (const fd of fds) {
    try {
      const s = statSync(`/proc/self/fd/${fd}`);
      if (s.ino === target.ino && s.dev === target.dev) return true;
    } catch {}
  }
  return false;
}

/**
 * Hold the lock the e2e tests take (`flock /tmp/tscri-e2e.lock`), so nothing is measured while
 * tests run and no test runs while something is measured. When this process was started under
 * `flock` on that file it already holds it; otherwise a `flock` child takes it (waiting up to
 * `waitSeconds`) and keeps it until release() or until this process exits (its stdin closes).
 */
export async function holdE2eLock({ waitSeconds = 3600, onWait, signal } = {}) {
  if (signal?.aborted) throw signal.reason ?? new Error('aborted');
  closeSync(openSync(E2E_LOCK, 'a'));
  if (inheritedLock(realpathSync(E2E_LOCK))) return { inherited: true, release() {} };
  const child = spawn('flock', ['-w', String(waitSeconds), E2E_LOCK, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    detached: true,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting = setTimeout(() => onWait?.(), 1000);
  // Given up while waiting: the flock child goes too, so it does not take the lock later.
  const abort = () => child.kill('SIGKILL');
  signal?.addEventListener('abort', abort);
  const locked = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', () => resolve(true));
    child.once('exit', () => resolve(false));
  });
  clearTimeout(waiting);
  signal?.removeEventListener('abort', abort);
  if (signal?.aborted) throw signal.reason ?? new Error('aborted');
  if (!locked) throw new Error(`could not take ${E2E_LOCK} within ${waitSeconds} s`);
  child.stdout.destroy();
  child.unref();
  return {
    inherited: false,
    release() {
      child.stdin.end();
      child.stdin.unref?.();
    },
  };
}

export async function hostInfo() {
  const cpus = os.cpus();
  const release = await fs.readFile('/etc/os-release', 'utf8').catch(() => '');
  const cgroup = (await pathExists('/sys/fs/cgroup/cgroup.controllers')) ? 'v2' : (await pathExists('/sys/fs/cgroup/unified')) ? 'v1 (hybrid)' : 'v1';
  return {
    os: /^PRETTY_NAME="?([^"\n]*)"?/m.exec(release)?.[1] ?? 'Linux',
    kernel: os.release(),
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    cgroup,
  };
}

/**
 * Run fn(0..n-1) with at most `parallel` in flight; stops at the first error, or when
 * `beforeEach` throws (a benchmark's interruption check).
 */
export async function pool(n, parallel, fn, beforeEach = () => {}) {
  let next = 0;
  let failure;
  const worker = async () => {
    while (next < n && failure === undefined) {
      const i = next++;
      try {
        beforeEach();
        await fn(i);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  if (failure !== undefined) throw failure;
}

const pathExists = (p) => fs.access(p).then(() => true, () => false);

/**
 * Wait until a daemon's Status says RuntimeReady and NetworkReady (a minute at most); if it
 * exits or never gets there, fail with the last answer and the end of its log.
 */
export async function waitDaemonReady(daemon, rpc, { logFile, what, checkInterrupted = () => {} }) {
  const deadline = Date.now() + 60_000;
  let last = 'no answer';
  while (Date.now() < deadline) {
    checkInterrupted();
    if (daemon.exitCode !== null || daemon.signalCode !== null) break;
    try {
      const { status } = await rpc('Status', {}, 2000);
      const conditions = Object.fromEntries((status?.conditions ?? []).map((c) => [c.type, c]));
      if (conditions.RuntimeReady?.status && conditions.NetworkReady?.status) return;
      last = JSON.stringify(status?.conditions);
    } catch (err) {
      last = err.message;
    }
    await sleep(100);
  }
  const tail = (await fs.readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
  throw new Error(`${what} did not become ready (${last}); its log ends:\n${tail}`);
}

/** SIGTERM a daemon still running, and SIGKILL it (noted in `leftovers`) if it ignores that for 20 s. */
export async function stopDaemon(daemon, leftovers) {
  if (!daemon || daemon.exitCode !== null || daemon.signalCode !== null) return;
  daemon.kill('SIGTERM');
  const stopped = await Promise.race([daemon.exited.then(() => true), sleep(20_000).then(() => false)]);
  if (stopped) return;
  leftovers.push('daemon ignored SIGTERM for 20 s');
  daemon.kill('SIGKILL');
  await daemon.exited;
}

/**
 * Remove what a benchmark run left on the host once its daemon is gone, each noted in
 * `leftovers`: the processes of its monitors (`isMonitor(process)`) and of its pod cgroups,
 * mounts below its directory, network namespaces made since `ctx.netnsBefore`, its
 * network's iptables rules and its bridge.
 */
export async function sweepHostLeftovers(ctx, { bridge, isMonitor, leftovers, log }) {
  const table = await processTable();
  const monitors = [...table.values()].filter(isMonitor).map((p) => p.pid);
  const stray = new Set([...withDescendants(table, monitors), ...(await pidsInCgroup(ctx.cgroupParent))]);
  if (stray.size) {
    leftovers.push(`${stray.size} processes (${[...new Set([...stray].map((pid) => table.get(pid)?.comm ?? pid))].join(', ')})`);
    await killAll([...stray]);
  }
  const mounts = await mountsUnder(ctx.dir);
  if (mounts.length) {
    leftovers.push(`${mounts.length} mounts`);
    const stuck = await unmountAll(ctx.dir);
    if (stuck.length) log(`could not unmount ${stuck.join(', ')}`);
  }
  for (const name of await netnsNames()) {
    if (ctx.netnsBefore.has(name)) continue;
    leftovers.push(`netns ${name}`);
    await run('ip', ['netns', 'del', name], { allowFail: true });
  }
  leftovers.push(...(await sweepIptables(ctx.network)));
  await run('ip', ['link', 'del', bridge], { allowFail: true });
}
