/**
 * tscri's CNI runtime: picks the network from conf_dir, runs plugin chains for ADD, DEL and
 * CHECK as the spec prescribes, and keeps the attachment cache that makes DEL repeatable.
 */
import { promises as fs, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { FailedPreconditionError, InvalidArgumentError, errnoCode, messageOf } from '../../errors.js';
import { writeJsonAtomic } from '../../store/atomic.js';
import { KeyedMutex } from '../../util/keyed-mutex.js';
import { buildCniArgs, type CniArgPair } from './args.js';
import { AttachmentCache, type CacheEntry } from './cache.js';
import {
  DEFAULT_NETWORK_FILE,
  defaultNetworkConfig,
  loadNetworkConfig,
  parseNetworkConfigList,
  versionAtLeast,
  type ConfDirScan,
  type LoadedNetwork,
  type NetworkConfigList,
  type PluginConfig,
} from './config.js';
import { CniPluginError, type CniCommand } from './errors.js';
import {
  ProcessPluginExecutor,
  findPlugin,
  findPluginSync,
  invokePlugin,
  pluginEnv,
  type PluginExecutor,
} from './exec.js';
import { parseResultOutput, prevResultFor, type ParsedOutput } from './result.js';
import type { Attachment, CapabilityArgs, NetworkManager, NetworkStatus, SetUpResult } from './types.js';

export interface CniNetworkManagerOptions {
  confDir: string;
  /** Searched in order for plugin executables; also handed to plugins as CNI_PATH. */
  binDirs: string[];
  /** Where attachment cache entries live (one JSON file per attachment). */
  cacheDir: string;
  logger: Logger;
  /** Runs plugin processes; tests substitute a fake. */
  executor?: PluginExecutor;
  /** How long one plugin invocation may run (default DEFAULT_PLUGIN_TIMEOUT_MS); unused with `executor`. */
  pluginTimeoutMs?: number;
  /** Written to conf_dir at start when it holds no valid network; false or absent: never. */
  defaultNetwork?: { name: string; bridge: string; subnet: string; dataDir?: string } | false;
  /** Quiet period after a conf dir change before reloading; editors write in several steps. */
  reloadDebounceMs?: number;
}

const NOT_READY = 'NetworkPluginNotReady';
/** fs.statfs type of an nsfs mount: what a live netns path (bind mount or /proc/<pid>/ns/net) is. */
const NSFS_MAGIC = 0x6e736673;
const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const REWATCH_DELAY_MS = 1000;

/** A plugin of the chain with the executable that will run it. */
interface ResolvedPlugin {
  config: PluginConfig;
  path: string;
}

/** Everything one chain run uses, fixed when the operation starts so a reload cannot change it midway. */
interface ChainRun {
  network: NetworkConfigList;
  containerId: string;
  /** Empty when the netns is gone (DEL only). */
  netnsPath: string;
  ifName: string;
  cniArgs: string;
  capabilityArgs: CapabilityArgs;
  log: Logger;
}

/** The inputs of a DEL: from the cache entry when there is one, else from the present. */
interface TeardownInputs {
  /** From the ADD's cache entry (else the network loaded now, for a precautionary DEL). */
  cached: boolean;
  network: NetworkConfigList;
  netnsPath: string;
  args: CniArgPair[];
  capabilityArgs: CapabilityArgs;
  /** The ADD's raw final result, when the ADD got that far. */
  result?: unknown;
}

export class CniNetworkManager implements NetworkManager {
  private readonly cache: AttachmentCache;
  private readonly executor: PluginExecutor;
  private readonly log: Logger;
  /** One operation at a time per attachment, as the spec requires of runtimes. */
  private readonly locks = new KeyedMutex();
  /** Replaced as a whole on reload; an operation keeps the snapshot it started with. */
  private scan: ConfDirScan = { rejected: [] };
  private lastRejectedSummary = '';
  private watcher: FSWatcher | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;
  private rewatchTimer: NodeJS.Timeout | undefined;
  private reloads: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: CniNetworkManagerOptions) {
    this.cache = new AttachmentCache(options.cacheDir);
    this.executor = options.executor ?? new ProcessPluginExecutor(options.pluginTimeoutMs);
    this.log = options.logger.child({ component: 'cni' });
  }

  async start(): Promise<void> {
    await fs.mkdir(this.options.confDir, { recursive: true });
    await this.cache.init();
    let scan = await loadNetworkConfig(this.options.confDir);
    if (scan.network === undefined && this.options.defaultNetwork) {
      await this.writeDefaultNetwork(this.options.defaultNetwork);
      scan = await loadNetworkConfig(this.options.confDir);
    }
    this.applyScan(scan);
    this.watchConfDir();
  }

  status(): NetworkStatus {
    const loaded = this.scan.network;
    if (loaded === undefined) {
      return { ready: false, reason: NOT_READY, message: this.noNetworkMessage() };
    }
    const identity = { networkName: loaded.config.name, source: loaded.source };
    // Checked on every call rather than at load: plugin binaries are often installed after
    // the config (a CNI DaemonSet), and nothing else would tell us they have arrived.
    const missing = loaded.config.plugins.find((plugin) => findPluginSync(plugin.type, this.options.binDirs) === undefined);
    if (missing !== undefined) {
      const message = `plugin "${missing.type}" of network "${loaded.config.name}" not found in ${this.options.binDirs.join(':')}`;
      return { ready: false, reason: NOT_READY, message, ...identity };
    }
    return { ready: true, reason: '', message: '', ...identity };
  }

  async setUp(att: Attachment): Promise<SetUpResult> {
    validateAttachment(att);
    if (att.netnsPath === '') throw new InvalidArgumentError('a network namespace path is required to set up the pod network');
    return this.locks.run(lockKey(att), () => this.setUpLocked(att));
  }

  async tearDown(att: Pick<Attachment, 'containerId' | 'netnsPath' | 'ifName'> & Partial<Attachment>): Promise<void> {
    validateAttachment(att);
    return this.locks.run(lockKey(att), () => this.tearDownLocked(att));
  }

  async check(att: Pick<Attachment, 'containerId' | 'netnsPath' | 'ifName'>): Promise<void> {
    validateAttachment(att);
    return this.locks.run(lockKey(att), () => this.checkLocked(att));
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.reloadTimer);
    clearTimeout(this.rewatchTimer);
  }

  // ---- ADD ----

  private async setUpLocked(att: Attachment): Promise<SetUpResult> {
    const loaded = this.scan.network;
    if (loaded === undefined) throw new FailedPreconditionError(`pod network is not ready: ${this.noNetworkMessage()}`);
    const run = this.chainRun(loaded.config, att.containerId, att.netnsPath, att.ifName, att.args, att.capabilityArgs);
    // Resolved before anything is written or run, so a missing binary leaves nothing to undo.
    const plugins = await this.resolvePlugins(run.network, 'ADD');
    const entry: CacheEntry = {
      version: 1,
      containerId: att.containerId,
      ifName: att.ifName,
      netnsPath: att.netnsPath,
      networkName: run.network.name,
      source: loaded.source,
      config: { ...run.network.raw },
      args: att.args.map(([key, value]): CniArgPair => [key, value]),
      capabilityArgs: att.capabilityArgs,
    };
    // Written before the first plugin runs: if the daemon dies mid-chain, a later DEL still
    // replays the config and args this ADD used.
    await this.cache.write(entry);
    const started = Date.now();
    try {
      const final = await this.addChain(run, plugins);
      await this.cache.write({ ...entry, result: final.raw });
      run.log.info(
        { network: run.network.name, ips: final.result.ips.map((ip) => ip.address), durationMs: Date.now() - started },
        'pod network set up',
      );
      return { networkName: run.network.name, networkSource: loaded.source, result: final.result, rawResult: final.raw };
    } catch (err) {
      await this.undoFailedAdd(run, err);
      throw err;
    }
  }

  private async addChain(run: ChainRun, plugins: ResolvedPlugin[]): Promise<ParsedOutput> {
    let previous: ParsedOutput | undefined;
    for (const plugin of plugins) {
      const prevResult = previous === undefined ? undefined : prevResultFor(previous.raw, run.network.cniVersion);
      const stdout = await this.runPlugin(run, 'ADD', plugin, prevResult);
      previous = parseAddOutput(plugin.config.type, stdout, run.network.cniVersion);
    }
    if (previous === undefined) throw new FailedPreconditionError(`network "${run.network.name}" has no plugins`);
    return previous;
  }

  /**
   * The spec's answer to a failed ADD: DEL the whole chain, including plugins that never
   * ran. The cache entry goes only when that DEL succeeded; otherwise it stays so a later
   * tearDown can retry with the same inputs instead of leaking the IP.
   */
  private async undoFailedAdd(run: ChainRun, cause: unknown): Promise<void> {
    run.log.warn({ err: messageOf(cause) }, 'CNI ADD failed; deleting what the chain set up');
    let failures: unknown[];
    try {
      failures = await this.delChain(run, undefined);
    } catch (err) {
      // Whatever went wrong here, the caller must see the ADD's error, not this one.
      failures = [err];
    }
    if (failures.length > 0) {
      run.log.warn(
        { errors: failures.map(messageOf) },
        'DEL after the failed ADD failed too; keeping the cache entry for a later tearDown',
      );
      return;
    }
    await this.removeCacheEntry(run);
  }

  // ---- DEL ----

  private async tearDownLocked(att: Pick<Attachment, 'containerId' | 'netnsPath' | 'ifName'> & Partial<Attachment>): Promise<void> {
    const log = this.options.logger.child({ podSandboxId: att.containerId });
    const inputs = await this.teardownInputs(att, log);
    if (inputs === undefined) {
      log.warn('no cached CNI attachment and no network loaded; nothing to tear down');
      return;
    }
    const netnsPath = (await isLiveNetns(inputs.netnsPath)) ? inputs.netnsPath : '';
    if (netnsPath === '') log.debug({ netns: inputs.netnsPath }, 'netns is gone; plugins will release what they can without it');
    const run = this.chainRun(inputs.network, att.containerId, netnsPath, att.ifName, inputs.args, inputs.capabilityArgs);
    const failures = await this.delChain(run, this.delPrevResult(inputs, log));
    const [first, ...others] = failures;
    if (first !== undefined && !inputs.cached) {
      // ADD writes its cache entry before any plugin runs: without one, no ADD ever started
      // for this attachment, and this DEL was only a precaution. Nothing is left to retry.
      log.warn({ errors: failures.map(messageOf) }, 'CNI DEL without a cached ADD failed; nothing was attached');
      return;
    }
    if (first !== undefined) {
      if (others.length > 0) log.warn({ errors: others.map(messageOf) }, 'further CNI DEL failures');
      throw first;
    }
    await this.removeCacheEntry(run);
    log.info({ network: run.network.name }, 'pod network torn down');
  }

  private async teardownInputs(
    att: Pick<Attachment, 'containerId' | 'netnsPath' | 'ifName'> & Partial<Attachment>,
    log: Logger,
  ): Promise<TeardownInputs | undefined> {
    const cached = await this.readCachedInputs(att.containerId, att.ifName, log);
    if (cached !== undefined) return cached;
    const current = this.scan.network;
    if (current === undefined) return undefined;
    log.debug({ network: current.config.name }, 'no CNI cache entry; tearing down with the current network');
    return {
      cached: false,
      network: current.config,
      netnsPath: att.netnsPath,
      args: att.args ?? [],
      capabilityArgs: att.capabilityArgs ?? {},
    };
  }

  /** The cached ADD inputs; a corrupt entry is logged and treated as absent. */
  private async readCachedInputs(containerId: string, ifName: string, log: Logger): Promise<TeardownInputs | undefined> {
    try {
      const entry = await this.cache.read(containerId, ifName);
      if (entry === undefined) return undefined;
      return {
        cached: true,
        network: parseNetworkConfigList(entry.config),
        netnsPath: entry.netnsPath,
        args: entry.args,
        capabilityArgs: entry.capabilityArgs,
        result: entry.result,
      };
    } catch (err) {
      log.warn({ err: messageOf(err) }, 'ignoring unusable CNI cache entry');
      return undefined;
    }
  }

  /** prevResult on DEL exists from spec 0.4.0 on, and only when the ADD finished. */
  private delPrevResult(inputs: TeardownInputs, log: Logger): Record<string, unknown> | undefined {
    if (inputs.result === undefined || !versionAtLeast(inputs.network.cniVersion, '0.4.0')) return undefined;
    try {
      return prevResultFor(inputs.result, inputs.network.cniVersion);
    } catch (err) {
      log.warn({ err: messageOf(err) }, 'cached CNI result is unusable; running DEL without prevResult');
      return undefined;
    }
  }

  /**
   * DEL every plugin in reverse order. A failing plugin does not stop the others: each DEL
   * releases its own resources, and the caller retries the whole (idempotent) chain anyway.
   */
  private async delChain(run: ChainRun, prevResult: Record<string, unknown> | undefined): Promise<CniPluginError[]> {
    const failures: CniPluginError[] = [];
    for (const config of [...run.network.plugins].reverse()) {
      try {
        const plugin = await this.resolvePlugin(config, 'DEL');
        await this.runPlugin(run, 'DEL', plugin, prevResult);
      } catch (err) {
        if (!(err instanceof CniPluginError)) throw err;
        run.log.warn({ err: err.message }, 'CNI DEL failed');
        failures.push(err);
      }
    }
    return failures;
  }

  // ---- CHECK ----

  private async checkLocked(att: Pick<Attachment, 'containerId' | 'netnsPath' | 'ifName'>): Promise<void> {
    const log = this.options.logger.child({ podSandboxId: att.containerId });
    const entry = await this.cache.read(att.containerId, att.ifName);
    if (entry?.result === undefined) {
      throw new FailedPreconditionError(`no completed CNI ADD is cached for ${att.containerId}/${att.ifName}`);
    }
    const network = parseNetworkConfigList(entry.config);
    if (network.disableCheck || !versionAtLeast(network.cniVersion, '0.4.0')) {
      log.debug({ network: network.name, cniVersion: network.cniVersion }, 'CNI CHECK skipped for this network');
      return;
    }
    const run = this.chainRun(network, att.containerId, att.netnsPath, att.ifName, entry.args, entry.capabilityArgs);
    const plugins = await this.resolvePlugins(network, 'CHECK');
    const prevResult = prevResultFor(entry.result, network.cniVersion);
    for (const plugin of plugins) await this.runPlugin(run, 'CHECK', plugin, prevResult);
  }

  // ---- running plugins ----

  private chainRun(
    network: NetworkConfigList,
    containerId: string,
    netnsPath: string,
    ifName: string,
    args: ReadonlyArray<readonly [string, string]>,
    capabilityArgs: CapabilityArgs,
  ): ChainRun {
    const log = this.options.logger.child({ podSandboxId: containerId });
    return { network, containerId, netnsPath, ifName, cniArgs: buildCniArgs(args), capabilityArgs, log };
  }

  private async resolvePlugins(network: NetworkConfigList, command: CniCommand): Promise<ResolvedPlugin[]> {
    const resolved: ResolvedPlugin[] = [];
    for (const config of network.plugins) resolved.push(await this.resolvePlugin(config, command));
    return resolved;
  }

  private async resolvePlugin(config: PluginConfig, command: CniCommand): Promise<ResolvedPlugin> {
    const found = await findPlugin(config.type, this.options.binDirs);
    if (found === undefined) {
      throw new CniPluginError({ plugin: config.type, command, cniMsg: `executable not found in ${this.options.binDirs.join(':')}` });
    }
    return { config, path: found };
  }

  private async runPlugin(
    run: ChainRun,
    command: CniCommand,
    plugin: ResolvedPlugin,
    prevResult: Record<string, unknown> | undefined,
  ): Promise<string> {
    const env = pluginEnv({ ...run, command, binDirs: this.options.binDirs });
    const config = pluginStdin(plugin.config, run.network, run.capabilityArgs, prevResult);
    const started = Date.now();
    let ok = false;
    try {
      const stdout = await invokePlugin(this.executor, command, { type: plugin.config.type, pluginPath: plugin.path, env, config });
      ok = true;
      return stdout;
    } finally {
      run.log.debug({ plugin: plugin.config.type, command, ok, durationMs: Date.now() - started }, 'CNI plugin finished');
    }
  }

  private async removeCacheEntry(run: ChainRun): Promise<void> {
    try {
      await this.cache.remove(run.containerId, run.ifName);
    } catch (err) {
      run.log.warn({ err: messageOf(err) }, 'could not remove CNI cache entry');
    }
  }

  // ---- conf dir ----

  private async writeDefaultNetwork(opts: { name: string; bridge: string; subnet: string; dataDir?: string }): Promise<void> {
    const file = path.join(this.options.confDir, DEFAULT_NETWORK_FILE);
    await writeJsonAtomic(file, defaultNetworkConfig(opts), { mode: 0o644 });
    this.log.info({ file, network: opts.name, subnet: opts.subnet }, 'no CNI network configured; wrote the default network');
  }

  private applyScan(scan: ConfDirScan): void {
    const before = this.scan.network;
    this.scan = scan;
    const rejectedSummary = scan.rejected.map((r) => `${r.file}: ${r.reason}`).join('; ');
    if (rejectedSummary !== this.lastRejectedSummary && rejectedSummary !== '') {
      this.log.warn({ confDir: this.options.confDir, rejected: scan.rejected }, 'skipping invalid CNI config files');
    }
    this.lastRejectedSummary = rejectedSummary;
    const after = scan.network;
    if (after?.source !== before?.source || after?.config.name !== before?.config.name) {
      if (after === undefined) this.log.warn({ confDir: this.options.confDir }, 'no valid CNI network config');
      else this.log.info({ network: after.config.name, source: after.source, cniVersion: after.config.cniVersion }, 'CNI network selected');
    }
  }

  private noNetworkMessage(): string {
    const { confDir } = this.options;
    const rejected = this.scan.rejected;
    if (rejected.length === 0) return `no CNI network config in ${confDir} (no *.conflist, *.conf or *.json file)`;
    return `no valid CNI network config in ${confDir} (${rejected.map((r) => `${r.file}: ${r.reason}`).join('; ')})`;
  }

  private watchConfDir(): void {
    if (this.closed) return;
    try {
      // Not persistent: watching must never be what keeps the process alive.
      this.watcher = watch(this.options.confDir, { persistent: false }, () => this.scheduleReload());
      this.watcher.on('error', (err) => this.rewatchLater(err));
    } catch (err) {
      this.rewatchLater(err);
    }
  }

  /** The conf dir itself was removed or replaced; watch it again once it is back. */
  private rewatchLater(err: unknown): void {
    this.log.warn({ err: messageOf(err), confDir: this.options.confDir }, 'watching the CNI conf dir failed; retrying');
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.rewatchTimer);
    this.rewatchTimer = setTimeout(() => {
      this.watchConfDir();
      this.scheduleReload();
    }, REWATCH_DELAY_MS);
    this.rewatchTimer.unref();
  }

  private scheduleReload(): void {
    if (this.closed) return;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => {
      // Chained so two reloads never interleave and the last change always wins.
      this.reloads = this.reloads.then(() => this.reload());
    }, this.options.reloadDebounceMs ?? 100);
    this.reloadTimer.unref();
  }

  private async reload(): Promise<void> {
    if (this.closed) return;
    try {
      this.applyScan(await loadNetworkConfig(this.options.confDir));
    } catch (err) {
      this.log.warn({ err: messageOf(err) }, 'reloading the CNI conf dir failed; keeping the previous network');
    }
  }
}

/**
 * The config a plugin gets on stdin: its own, with the list's name and version (so every
 * plugin of the chain speaks the same version), `runtimeConfig` limited to the capabilities
 * it declares, and the runtime's `prevResult`.
 */
function pluginStdin(
  plugin: PluginConfig,
  network: NetworkConfigList,
  capabilityArgs: CapabilityArgs,
  prevResult: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const config: Record<string, unknown> = { ...plugin.raw, name: network.name, cniVersion: network.cniVersion };
  delete config['prevResult'];
  const available = new Map<string, unknown>(Object.entries(capabilityArgs));
  const runtimeConfig = Object.fromEntries(
    plugin.capabilities.filter((name) => available.get(name) !== undefined).map((name) => [name, available.get(name)]),
  );
  if (Object.keys(runtimeConfig).length > 0) config['runtimeConfig'] = runtimeConfig;
  if (prevResult !== undefined) config['prevResult'] = prevResult;
  return config;
}

function parseAddOutput(type: string, stdout: string, cniVersion: string): ParsedOutput {
  try {
    return parseResultOutput(stdout, cniVersion);
  } catch (err) {
    throw new CniPluginError({ plugin: type, command: 'ADD', cniMsg: 'printed an unusable result', details: messageOf(err) }, { cause: err });
  }
}

/** The spec's rules for container ids and interface names; both also name the cache file. */
function validateAttachment(att: Pick<Attachment, 'containerId' | 'ifName'>): void {
  if (!CONTAINER_ID.test(att.containerId)) {
    throw new InvalidArgumentError(`invalid CNI container id "${att.containerId}"`);
  }
  const ifName = att.ifName;
  if (ifName === '' || ifName === '.' || ifName === '..' || ifName.length > 15 || /[/:\s]/.test(ifName)) {
    throw new InvalidArgumentError(`invalid interface name "${ifName}"`);
  }
}

function lockKey(att: Pick<Attachment, 'containerId' | 'ifName'>): string {
  return `${att.containerId}/${att.ifName}`;
}

/**
 * True when the path is a mounted network namespace. A netns path whose mount is gone (the
 * file under /run/netns left behind) makes plugins fail on DEL instead of cleaning up, so
 * it counts as gone, like a missing file.
 */
async function isLiveNetns(netnsPath: string): Promise<boolean> {
  if (netnsPath === '') return false;
  try {
    return (await fs.statfs(netnsPath)).type === NSFS_MAGIC;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return false;
    throw err;
  }
}
