/**
 * tscri's CNI entry points (its go-cni): the NetworkManager the sandbox service calls. Each
 * call checks the pod's attachment, takes that attachment's lock, asks the conf dir
 * (conf-dir.ts) which network is current and has the chain (chain.ts) run it.
 */
import type { Logger } from 'pino';
import { FailedPreconditionError, InvalidArgumentError } from '../../errors.js';
import { KeyedMutex } from '../../util/keyed-mutex.js';
import { isLiveNetns } from '../netns.js';
import { PluginChain, type AddRecord, type PluginChainOptions } from './chain.js';
import { ConfDirWatcher, type ConfDirOptions } from './conf-dir.js';
import type { Attachment, AttachmentRef, NetworkManager, NetworkStatus, SetUpResult, TeardownAttachment } from './types.js';

export interface CniNetworkManagerOptions extends ConfDirOptions, PluginChainOptions {}

const NOT_READY = 'NetworkPluginNotReady';
const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export class CniNetworkManager implements NetworkManager {
  /** Which network is current. */
  private readonly networks: ConfDirWatcher;
  /** Runs it, and keeps what each ADD recorded. */
  private readonly chain: PluginChain;
  /** One operation at a time per attachment, as the spec requires of runtimes. */
  private readonly locks = new KeyedMutex();

  constructor(private readonly options: CniNetworkManagerOptions) {
    this.networks = new ConfDirWatcher({ ...options, logger: options.logger.child({ component: 'cni' }) });
    this.chain = new PluginChain(options);
  }

  async start(): Promise<void> {
    await this.chain.init();
    await this.networks.start();
  }

  status(): NetworkStatus {
    const loaded = this.networks.current();
    if (loaded === undefined) return { ready: false, reason: NOT_READY, message: this.networks.whyNone() };
    const identity = { networkName: loaded.config.name, source: loaded.source };
    // Checked on every call rather than at load: plugin binaries are often installed after
    // the config (a CNI DaemonSet), and nothing else would tell us they have arrived.
    const missing = this.chain.missingPlugin(loaded.config);
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

  async tearDown(att: TeardownAttachment): Promise<void> {
    validateAttachment(att);
    return this.locks.run(lockKey(att), () => this.tearDownLocked(att));
  }

  async check(att: AttachmentRef): Promise<void> {
    validateAttachment(att);
    return this.locks.run(lockKey(att), () => this.chain.check(att, this.podLog(att)));
  }

  close(): void {
    this.networks.close();
  }

  private async setUpLocked(att: Attachment): Promise<SetUpResult> {
    const loaded = this.networks.current();
    if (loaded === undefined) throw new FailedPreconditionError(`pod network is not ready: ${this.networks.whyNone()}`);
    const log = this.podLog(att);
    const started = Date.now();
    const final = await this.chain.add({ network: loaded.config, attachment: att }, loaded.source, log);
    const networkName = loaded.config.name;
    log.info({ network: networkName, ips: final.result.ips.map((ip) => ip.address), durationMs: Date.now() - started }, 'pod network set up');
    return { networkName, networkSource: loaded.source, result: final.result, rawResult: final.raw };
  }

  /**
   * DEL with what the ADD recorded when there is a record, else with the network loaded now.
   * A netns that is gone is not handed to plugins: they release what they can without it.
   */
  private async tearDownLocked(att: TeardownAttachment): Promise<void> {
    const log = this.podLog(att);
    const recorded = await this.chain.recorded(att.containerId, att.ifName, log);
    const record = recorded ?? this.precautionaryRecord(att, log);
    if (record === undefined) {
      log.warn('no cached CNI attachment and no network loaded; nothing to tear down');
      return;
    }
    const recordedNetns = record.attachment.netnsPath;
    const netnsPath = (await isLiveNetns(recordedNetns)) ? recordedNetns : '';
    if (netnsPath === '') log.debug({ netns: recordedNetns }, 'netns is gone; plugins will release what they can without it');
    const attachment = { ...record.attachment, containerId: att.containerId, ifName: att.ifName, netnsPath };
    const [first, ...others] = await this.chain.del({ ...record, attachment }, log);
    if (first !== undefined && recorded === undefined) {
      // ADD writes its cache entry before any plugin runs: without one, no ADD ever started
      // for this attachment, and this DEL was only a precaution. Nothing is left to retry.
      log.warn({ err: new AggregateError([first, ...others], 'CNI DEL failures') }, 'CNI DEL without a cached ADD failed; nothing was attached');
      return;
    }
    if (first !== undefined) {
      if (others.length > 0) log.warn({ err: new AggregateError(others, 'CNI DEL failures') }, 'further CNI DEL failures');
      throw first;
    }
    log.info({ network: record.network.name }, 'pod network torn down');
  }

  /** A DEL without a cache entry: the network loaded now, with the args the caller has. */
  private precautionaryRecord(att: TeardownAttachment, log: Logger): AddRecord | undefined {
    const current = this.networks.current();
    if (current === undefined) return undefined;
    log.debug({ network: current.config.name }, 'no CNI cache entry; tearing down with the current network');
    const { containerId, netnsPath, ifName } = att;
    return { network: current.config, attachment: { containerId, netnsPath, ifName, args: att.args ?? [], capabilityArgs: att.capabilityArgs ?? {} } };
  }

  private podLog(att: AttachmentRef): Logger {
    return this.options.logger.child({ podSandboxId: att.containerId });
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
