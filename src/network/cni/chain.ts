/**
 * Running a network's plugin chain for one attachment, as the spec prescribes (tscri's
 * libcni): ADD in order, each plugin given the previous one's result as prevResult; DEL in
 * reverse; CHECK against the cached result; and the attachment cache that lets a DEL replay
 * its ADD after a restart or a config change. It neither picks the network nor serialises
 * operations on one attachment: the entry points (manager.ts) do both.
 */
import type { Logger } from 'pino';
import { FailedPreconditionError, messageOf } from '../../errors.js';
import { buildCniArgs, type CniArgPair } from './args.js';
import { AttachmentCache, type CacheEntry } from './cache.js';
import { parseNetworkConfigList, versionAtLeast, type NetworkConfigList, type PluginConfig } from './config.js';
import { CniPluginError, type CniCommand } from './errors.js';
import { ProcessPluginExecutor, findPlugin, invokePlugin, pluginEnv, type PluginExecutor } from './exec.js';
import { parseResultOutput, prevResultFor, type ParsedOutput } from './result.js';
import type { Attachment, AttachmentRef, CapabilityArgs } from './types.js';

export interface PluginChainOptions {
  /** Searched in order for plugin executables; also handed to plugins as CNI_PATH. */
  binDirs: string[];
  /** Where attachment cache entries live (one JSON file per attachment). */
  cacheDir: string;
  /** Runs plugin processes; tests substitute a fake. */
  executor?: PluginExecutor;
  /** How long one plugin invocation may run (default DEFAULT_PLUGIN_TIMEOUT_MS); unused with `executor`. */
  pluginTimeoutMs?: number;
}

/** A network and one attachment to it: what a chain runs with, fixed when the operation starts. */
export interface ChainInputs {
  network: NetworkConfigList;
  /** Its netnsPath is empty when the netns is gone (DEL only). */
  attachment: Attachment;
}

/** What an ADD recorded: its inputs, and its raw final result once the chain got that far. */
export interface AddRecord extends ChainInputs {
  result?: unknown;
}

/** A chain run under way: its inputs, with CNI_ARGS rendered once for every plugin. */
interface Invocation extends ChainInputs {
  cniArgs: string;
  log: Logger;
}

/** A plugin of the chain with the executable that will run it. */
interface ResolvedPlugin {
  config: PluginConfig;
  path: string;
}

export class PluginChain {
  private readonly cache: AttachmentCache;
  private readonly executor: PluginExecutor;
  private readonly binDirs: readonly string[];

  constructor(options: PluginChainOptions) {
    this.cache = new AttachmentCache(options.cacheDir);
    this.executor = options.executor ?? new ProcessPluginExecutor(options.pluginTimeoutMs);
    this.binDirs = options.binDirs;
  }

  async init(): Promise<void> {
    await this.cache.init();
  }

  /** The first plugin of the network without an executable in bin_dirs, if any. */
  missingPlugin(network: NetworkConfigList): PluginConfig | undefined {
    return network.plugins.find((plugin) => findPlugin(plugin.type, this.binDirs) === undefined);
  }

  /**
   * ADD the chain. The inputs are cached before the first plugin runs, and the result after
   * the last; on failure the chain is deleted again and the plugin's error thrown.
   */
  async add(inputs: ChainInputs, source: string, log: Logger): Promise<ParsedOutput> {
    const run = invocation(inputs, log);
    // Resolved before anything is written or run, so a missing binary leaves nothing to undo.
    const plugins = this.resolvePlugins(run.network, 'ADD');
    const { attachment, network } = run;
    const entry: CacheEntry = {
      version: 1,
      containerId: attachment.containerId,
      ifName: attachment.ifName,
      netnsPath: attachment.netnsPath,
      networkName: network.name,
      source,
      config: { ...network.raw },
      args: attachment.args.map(([key, value]): CniArgPair => [key, value]),
      capabilityArgs: attachment.capabilityArgs,
    };
    // Written before the first plugin runs: if the daemon dies mid-chain, a later DEL still
    // replays the config and args this ADD used.
    await this.cache.write(entry);
    try {
      const final = await this.addChain(run, plugins);
      await this.cache.write({ ...entry, result: final.raw });
      return final;
    } catch (err) {
      await this.undoFailedAdd(run, err);
      throw err;
    }
  }

  /**
   * DEL the chain with the ADD's result as prevResult (when the spec version has one). The
   * plugins' failures are returned, not thrown; the cache entry goes only when there were none.
   */
  async del(record: AddRecord, log: Logger): Promise<CniPluginError[]> {
    const run = invocation(record, log);
    const failures = await this.delChain(run, delPrevResult(record, log));
    if (failures.length === 0) await this.forget(run);
    return failures;
  }

  /** CHECK the chain against the cached result of a completed ADD. */
  async check(ref: AttachmentRef, log: Logger): Promise<void> {
    const entry = await this.cache.read(ref.containerId, ref.ifName);
    if (entry?.result === undefined) {
      throw new FailedPreconditionError(`no completed CNI ADD is cached for ${ref.containerId}/${ref.ifName}`);
    }
    const network = parseNetworkConfigList(entry.config);
    if (network.disableCheck || !versionAtLeast(network.cniVersion, '0.4.0')) {
      log.debug({ network: network.name, cniVersion: network.cniVersion }, 'CNI CHECK skipped for this network');
      return;
    }
    const run = invocation({ network, attachment: { ...attachmentOf(entry), netnsPath: ref.netnsPath } }, log);
    const plugins = this.resolvePlugins(network, 'CHECK');
    const prevResult = prevResultFor(entry.result, network.cniVersion);
    for (const plugin of plugins) await this.runPlugin(run, 'CHECK', plugin, prevResult);
  }

  /** What the ADD of this attachment recorded; a corrupt entry is logged and treated as absent. */
  async recorded(containerId: string, ifName: string, log: Logger): Promise<AddRecord | undefined> {
    try {
      const entry = await this.cache.read(containerId, ifName);
      if (entry === undefined) return undefined;
      return { network: parseNetworkConfigList(entry.config), attachment: attachmentOf(entry), result: entry.result };
    } catch (err) {
      log.warn({ err }, 'ignoring unusable CNI cache entry');
      return undefined;
    }
  }

  private async addChain(run: Invocation, plugins: ResolvedPlugin[]): Promise<ParsedOutput> {
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
  private async undoFailedAdd(run: Invocation, cause: unknown): Promise<void> {
    run.log.warn({ err: cause }, 'CNI ADD failed; deleting what the chain set up');
    let failures: unknown[];
    try {
      failures = await this.delChain(run, undefined);
    } catch (err) {
      // Whatever went wrong here, the caller must see the ADD's error, not this one.
      failures = [err];
    }
    if (failures.length > 0) {
      run.log.warn({ err: new AggregateError(failures, 'CNI DEL failures') }, 'DEL after the failed ADD failed too; keeping the cache entry for a later tearDown');
      return;
    }
    await this.forget(run);
  }

  /**
   * DEL every plugin in reverse order. A failing plugin does not stop the others: each DEL
   * releases its own resources, and the caller retries the whole (idempotent) chain anyway.
   */
  private async delChain(run: Invocation, prevResult: Record<string, unknown> | undefined): Promise<CniPluginError[]> {
    const failures: CniPluginError[] = [];
    for (const config of [...run.network.plugins].reverse()) {
      try {
        await this.runPlugin(run, 'DEL', this.resolvePlugin(config, 'DEL'), prevResult);
      } catch (err) {
        if (!(err instanceof CniPluginError)) throw err;
        run.log.warn({ err }, 'CNI DEL failed');
        failures.push(err);
      }
    }
    return failures;
  }

  private async forget(run: Invocation): Promise<void> {
    try {
      await this.cache.remove(run.attachment.containerId, run.attachment.ifName);
    } catch (err) {
      run.log.warn({ err }, 'could not remove CNI cache entry');
    }
  }

  private resolvePlugins(network: NetworkConfigList, command: CniCommand): ResolvedPlugin[] {
    return network.plugins.map((config) => this.resolvePlugin(config, command));
  }

  private resolvePlugin(config: PluginConfig, command: CniCommand): ResolvedPlugin {
    const found = findPlugin(config.type, this.binDirs);
    if (found === undefined) {
      throw new CniPluginError({ plugin: config.type, command, cniMsg: `executable not found in ${this.binDirs.join(':')}` });
    }
    return { config, path: found };
  }

  private async runPlugin(
    run: Invocation,
    command: CniCommand,
    plugin: ResolvedPlugin,
    prevResult: Record<string, unknown> | undefined,
  ): Promise<string> {
    const { containerId, netnsPath, ifName, capabilityArgs } = run.attachment;
    const env = pluginEnv({ command, containerId, netnsPath, ifName, cniArgs: run.cniArgs, binDirs: this.binDirs });
    const config = pluginStdin(plugin.config, run.network, capabilityArgs, prevResult);
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
}

/** Rendering CNI_ARGS first: bad args fail the operation before anything is written or run. */
function invocation(inputs: ChainInputs, log: Logger): Invocation {
  return { network: inputs.network, attachment: inputs.attachment, cniArgs: buildCniArgs(inputs.attachment.args), log };
}

function attachmentOf(entry: CacheEntry): Attachment {
  const { containerId, netnsPath, ifName, args, capabilityArgs } = entry;
  return { containerId, netnsPath, ifName, args, capabilityArgs };
}

/** prevResult on DEL exists from spec 0.4.0 on, and only when the ADD finished. */
function delPrevResult(record: AddRecord, log: Logger): Record<string, unknown> | undefined {
  if (record.result === undefined || !versionAtLeast(record.network.cniVersion, '0.4.0')) return undefined;
  try {
    return prevResultFor(record.result, record.network.cniVersion);
  } catch (err) {
    log.warn({ err }, 'cached CNI result is unusable; running DEL without prevResult');
    return undefined;
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
