/**
 * The real tscri daemon for end-to-end tests: built dist/, a temporary socket, root, state and
 * CNI conf dir, the real runc, conmon and CNI reference plugins, plus the recording test
 * plugin. Each test file gets its own bridge and /24 inside 10.88.0.0/16 so files never
 * share host state, and `stop()` checks that nothing is left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { inject } from 'vitest';
import { call, connect, type CriClients } from '../../src/cli/client.js';
import { bridgePorts, mountsUnder, processesMatching } from './host.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const TSCRI_BIN = path.join(REPO, 'dist/cli/main.js');
export const TEST_PLUGIN = path.join(REPO, 'test/fixtures/cni/tscri-test-plugin');
export const CNI_BIN_DIR = '/usr/lib/cni';

/** The cgroup parent (below every hierarchy's root) of every pod a run's daemons make. */
export const cgroupParentOf = (runId: string): string => `tscri-e2e-${runId}`;

/** A new directory inside the run's own (global-setup.ts), which the run removes at its end. */
export function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(inject('runDir'), prefix));
}

/** Bridges used in this process: several daemons of one file each need their own. */
const bridgesTaken = new Set<number>();

/**
 * A bridge index no interface on the host and no daemon of this file uses: tse2e<index>
 * with 10.88.<100 + index>.0/24. Files run one at a time, so checking the host is enough.
 */
async function freeBridgeIndex(): Promise<number> {
  const start = process.pid % 100;
  for (let i = 0; i < 150; i++) {
    const index = (start + i) % 150;
    if (bridgesTaken.has(index)) continue;
    const inUse = await fs.access(`/sys/class/net/tse2e${index}`).then(() => true, () => false);
    if (inUse) continue;
    bridgesTaken.add(index);
    return index;
  }
  throw new Error('no free test bridge: 150 tse2e* interfaces exist (left by earlier runs?)');
}

export interface NetworkPlan {
  /** Bridge interface name on the host (≤ 15 characters). */
  bridge: string;
  /** The file's own /24, e.g. 10.88.101.0/24. */
  subnet: string;
  /** host-local's allocation directory (inside the temp dir). */
  ipamDataDir: string;
  networkName: string;
}

export interface DaemonOptions {
  /** Which network to put in the conf dir: bridge+portmap+recorder (default), none, or a custom conflist. */
  network?: 'bridge' | 'none' | ((plan: NetworkPlan, dirs: TestDirs) => object);
  /** Let the daemon write its default network when the conf dir is empty. */
  defaultNetwork?: boolean;
  /** Extra TOML appended to the config. */
  extraToml?: string;
  /** The systemd cgroup driver, with a slice of the run's own as the default parent. */
  systemdDriver?: boolean;
  /** Environment variables the daemon gets on top of this process's (proxies, NOTIFY_SOCKET). */
  env?: Record<string, string>;
}

export interface TestDirs {
  base: string;
  root: string;
  state: string;
  confDir: string;
  binDir: string;
  /** JSON lines written by the recording test plugin. */
  recordFile: string;
}

/** A daemon process and the means to inspect it. */
export class TestDaemon {
  private process: ChildProcess | undefined;
  clients!: CriClients;
  logs = '';

  constructor(
    readonly dirs: TestDirs,
    readonly plan: NetworkPlan,
    readonly socket: string,
    readonly configFile: string,
    private readonly env: Record<string, string> = {},
  ) {}

  /** The daemon's process id while it runs (to read its memory from /proc). */
  get pid(): number | undefined {
    const child = this.process;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  async start(): Promise<void> {
    // Through the script's shebang, as `tscri daemon` runs, with the V8 flags it names.
    const child = spawn(TSCRI_BIN, ['daemon', '--config', this.configFile], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const mirror = process.env.TSCRI_E2E_LOGS ? path.join(process.env.TSCRI_E2E_LOGS, `${path.basename(this.dirs.base)}.log`) : undefined;
    child.stderr!.on('data', (chunk: Buffer) => {
      // The last few MB are what a failure report needs; a fuzzed daemon logs far more.
      this.logs = (this.logs + chunk.toString()).slice(-4 * 1024 * 1024);
      // For debugging a failed run: TSCRI_E2E_LOGS=/some/dir keeps every daemon's log there.
      if (mirror) void fs.appendFile(mirror, chunk);
    });
    this.process = child;
    this.clients = connect(`unix://${this.socket}`);
    await this.waitReady(child);
  }

  private async waitReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`daemon exited (${child.exitCode}):\n${this.logs}`);
      try {
        await call(this.clients.runtime, 'Version', { version: 'v1' }, 1000);
        await call(this.clients.runtime, 'ListPodSandbox', {}, 1000);
        return;
      } catch {
        await sleep(50);
      }
    }
    throw new Error(`daemon did not become ready:\n${this.logs}`);
  }

  /** SIGTERM and wait: the graceful shutdown that must leave pods running. */
  async terminate(): Promise<void> {
    const child = this.process;
    this.clients?.close();
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  /** SIGKILL: the daemon dies at whatever line it is on. */
  async kill9(): Promise<void> {
    const child = this.process;
    this.clients?.close();
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async restart(): Promise<void> {
    await this.terminate();
    await this.start();
  }

  /** Run a unary RuntimeService call. */
  runtime<K extends keyof CriClients['runtime'] & string>(
    method: K,
    request: Parameters<typeof call<CriClients['runtime'], K>>[2],
    timeoutMs = 60_000,
  ) {
    return call(this.clients.runtime, method, request, timeoutMs);
  }

  /** Run a unary ImageService call. */
  images<K extends keyof CriClients['image'] & string>(
    method: K,
    request: Parameters<typeof call<CriClients['image'], K>>[2],
    timeoutMs = 120_000,
  ) {
    return call(this.clients.image, method, request, timeoutMs);
  }

  /** Every invocation the recording CNI plugin saw. */
  async cniRecords(): Promise<CniRecord[]> {
    try {
      const text = await fs.readFile(this.dirs.recordFile, 'utf8');
      return text.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as CniRecord);
    } catch {
      return [];
    }
  }

  /**
   * Remove every sandbox through the API, stop the daemon, and then insist that nothing the
   * daemon made is left: no process started from its state dir, no mount under its dirs, no
   * veth on its bridge. The bridge and temp dirs go last, whatever the verdict.
   */
  async stop(): Promise<void> {
    let removal: unknown;
    try {
      const { items } = await this.runtime('ListPodSandbox', {});
      for (const sandbox of items) await this.runtime('RemovePodSandbox', { pod_sandbox_id: sandbox.id });
    } catch (err) {
      removal = err;
    }
    // Whatever happened above, the daemon goes: a failed test must not leave it running.
    await this.terminate();
    try {
      if (removal) throw new Error(`removing every pod failed: ${String(removal)}`);
      const leftovers = [
        ...(await processesMatching(path.join(this.dirs.state, 'bundles'))).map((pid) => `process ${pid}`),
        ...(await mountsUnder(this.dirs.base)).map((m) => `mount ${m}`),
        ...(await bridgePorts(this.plan.bridge)).map((veth) => `veth ${veth}`),
      ];
      if (leftovers.length > 0) throw new Error(`left behind after removing every pod: ${leftovers.join(', ')}`);
    } finally {
      await execa('ip', ['link', 'del', this.plan.bridge], { reject: false });
      // Never delete through a mount a leftover pod still has: the run's teardown reports it.
      if ((await mountsUnder(this.dirs.base)).length === 0) await fs.rm(this.dirs.base, { recursive: true, force: true });
      // host-local's default data dir, used by the daemon's default network.
      await fs.rm(`/var/lib/cni/networks/${this.plan.networkName}-default`, { recursive: true, force: true });
    }
  }
}

export interface CniRecord {
  command: string;
  containerId: string;
  netns: string;
  ifName: string;
  args: string;
  stdin: Record<string, unknown>;
}

/** Make the temp dirs, config and CNI conf dir, and start a daemon. */
export async function startTestDaemon(options: DaemonOptions = {}): Promise<TestDaemon> {
  const index = await freeBridgeIndex();
  const runId = inject('runId');
  const base = await tempDir('d');
  const dirs: TestDirs = {
    base,
    root: path.join(base, 'root'),
    state: path.join(base, 'state'),
    confDir: path.join(base, 'net.d'),
    binDir: path.join(base, 'bin'),
    recordFile: path.join(base, 'cni-records.jsonl'),
  };
  await Promise.all([fs.mkdir(dirs.confDir, { recursive: true }), fs.mkdir(dirs.binDir, { recursive: true })]);
  await fs.copyFile(TEST_PLUGIN, path.join(dirs.binDir, 'tscri-test-plugin'));
  await fs.chmod(path.join(dirs.binDir, 'tscri-test-plugin'), 0o755);

  const plan: NetworkPlan = {
    bridge: `tse2e${index}`,
    subnet: `10.88.${100 + index}.0/24`,
    ipamDataDir: path.join(base, 'ipam'),
    networkName: `tse2e-${runId}-${index}`,
  };
  const network = options.network ?? 'bridge';
  if (network !== 'none') {
    const conflist = network === 'bridge' ? bridgeNetwork(plan, dirs) : network(plan, dirs);
    await fs.writeFile(path.join(dirs.confDir, '10-test.conflist'), JSON.stringify(conflist, null, 2));
  }

  const socket = path.join(base, 'tscri.sock');
  const configFile = path.join(base, 'config.toml');
  await fs.writeFile(
    configFile,
    [
      `listen = "unix://${socket}"`,
      `root = "${dirs.root}"`,
      `state = "${dirs.state}"`,
      `log_level = "debug"`,
      options.systemdDriver
        ? `cgroup_driver = "systemd"\ndefault_cgroup_parent = "${cgroupParentOf(runId)}.slice"`
        : `default_cgroup_parent = "/${cgroupParentOf(runId)}"`,
      // Top-level keys of the caller first, then any tables it adds, then ours.
      options.extraToml ?? '',
      `[cni]`,
      `conf_dir = "${dirs.confDir}"`,
      `bin_dirs = ["${dirs.binDir}", "${CNI_BIN_DIR}"]`,
      options.defaultNetwork
        ? `default_bridge = "${plan.bridge}"\ndefault_subnet = "${plan.subnet}"\ndefault_network_name = "${plan.networkName}-default"`
        : `default_network = false`,
    ].join('\n') + '\n',
  );
  const daemon = new TestDaemon(dirs, plan, socket, configFile, options.env);
  try {
    await daemon.start();
  } catch (err) {
    await daemon.terminate();
    await fs.rm(base, { recursive: true, force: true });
    throw err;
  }
  return daemon;
}

/** bridge + host-local, portmap, and the recorder last (it passes the result through). */
export function bridgeNetwork(plan: NetworkPlan, dirs: TestDirs, extra: object[] = []): object {
  return {
    cniVersion: '1.0.0',
    name: plan.networkName,
    plugins: [
      {
        type: 'bridge',
        bridge: plan.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: plan.subnet }]],
          dataDir: plan.ipamDataDir,
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'tscri-test-plugin', recordFile: dirs.recordFile, capabilities: { portMappings: true } },
      ...extra,
    ],
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A pod config as kubelet would send it, with a unique uid. */
export function podConfig(name: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    metadata: { name, namespace: 'e2e', uid: `uid-${name}-${Math.random().toString(36).slice(2, 10)}`, attempt: 0 },
    hostname: name,
    log_directory: '',
    labels: { app: name, suite: 'e2e' },
    annotations: { 'e2e/owner': 'tscri' },
    linux: {},
    ...overrides,
  };
}

/** A Writable that keeps what it is given (a stream's output, for the test to read). */
export function collector(): Writable & { text(): string; bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  }) as Writable & { text(): string; bytes(): Buffer };
  stream.bytes = () => Buffer.concat(chunks);
  stream.text = () => Buffer.concat(chunks).toString();
  return stream;
}
