// A throwaway image registry for tests and benchmarks: Debian's docker-registry (distribution
// 2.8) on a free loopback port, with its storage in a directory made for it. Nothing already
// running is ever reused, so a run can only pull what it pushed itself.
//
// From Node:  const registry = await startRegistry();  …  await registry.stop();
// From a shell (hack/critest.sh):
//   node hack/lib/registry.mjs start DIR    starts one with storage in DIR (which must not
//                                            exist yet), prints its address, leaves it running
//   node hack/lib/registry.mjs stop DIR     stops the one started in DIR and deletes DIR
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BINARY = 'docker-registry';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const PORT_ATTEMPTS = 3;

/** A port nobody listens on right now (whoever asked binds it a moment later). */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function configYaml(storage, address) {
  // Access log lines stay (one per request, useful when a pull fails); info chatter goes.
  // A fixed secret only silences the warning about upload state between instances.
  return `version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
http:
  addr: ${address}
  secret: tscri-test-registry
`;
}

async function answers(address) {
  try {
    const response = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Our registry's pid, or undefined: a pid file alone could name a recycled process. */
async function registryPid(dir) {
  const pid = Number(await fs.readFile(path.join(dir, 'registry.pid'), 'utf8').catch(() => ''));
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.includes(BINARY) && cmdline.includes(path.join(dir, 'config.yml')) ? pid : undefined;
}

/** Start the registry in `dir` on `address`; resolves once GET /v2/ answers. */
async function launch(dir, address) {
  const configFile = path.join(dir, 'config.yml');
  await fs.writeFile(configFile, configYaml(path.join(dir, 'data'), address));
  const log = await fs.open(path.join(dir, 'registry.log'), 'a');
  // Its own session and process group: stop() kills the group, and a terminal's ^C does not.
  const child = spawn(BINARY, ['serve', configFile], { detached: true, stdio: ['ignore', log.fd, log.fd] });
  const spawned = new Promise((resolve) => child.once('spawn', () => resolve(true)).once('error', () => resolve(false)));
  await log.close();
  if (!(await spawned)) throw new Error(`${BINARY} could not be started: run hack/setup.sh`);
  child.unref();
  await fs.writeFile(path.join(dir, 'registry.pid'), `${child.pid}\n`);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await answers(address)) return child.pid;
    if (child.exitCode !== null || !isAlive(child.pid)) break;
    await sleep(50);
  }
  await killGroup(child.pid);
  const tail = (await fs.readFile(path.join(dir, 'registry.log'), 'utf8').catch(() => '')).split('\n').slice(-10).join('\n');
  throw new Error(`${BINARY} did not answer on ${address}:\n${tail}`);
}

async function killGroup(pid) {
  const signal = (sig) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // Already gone.
    }
  };
  signal('SIGTERM');
  // It drains connections for about a second after SIGTERM.
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  signal('SIGKILL');
  while (isAlive(pid)) await sleep(20);
}

/**
 * Start a registry with its storage in `dir` (made here; by default a new temporary
 * directory). Returns its `address` (`127.0.0.1:<port>`) and `stop()`, which stops it and
 * deletes `dir`.
 */
export async function startRegistry({ dir } = {}) {
  const home = dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-registry-')));
  if (dir) await fs.mkdir(dir);
  let lastError;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const address = `127.0.0.1:${await freePort()}`;
    try {
      await launch(home, address);
      await fs.writeFile(path.join(home, 'address'), `${address}\n`);
      return { address, dir: home, stop: () => stopRegistry(home) };
    } catch (err) {
      // Another process may have taken the port between freePort() and the registry's bind.
      lastError = err;
    }
  }
  await fs.rm(home, { recursive: true, force: true });
  throw lastError;
}

/** Stop the registry started in `dir`, if it runs, and delete `dir`. */
export async function stopRegistry(dir) {
  const pid = await registryPid(dir);
  if (pid !== undefined) await killGroup(pid);
  await fs.rm(dir, { recursive: true, force: true });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command, dir] = process.argv.slice(2);
  if (!dir || (command !== 'start' && command !== 'stop')) {
    console.error('usage: node hack/lib/registry.mjs start|stop DIR');
    process.exit(2);
  }
  if (command === 'start') console.log((await startRegistry({ dir: path.resolve(dir) })).address);
  else await stopRegistry(path.resolve(dir));
}
