/**
 * Which network is current: conf_dir scanned at start (with tscri's default network written
 * when it holds none), watched, and scanned again after each change. The conf syncer of
 * tscri's CNI layer; it never runs a plugin, and an operation under way keeps the network
 * it started with, whatever a reload selects meanwhile.
 */
import { promises as fs, statSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { writeJsonAtomic } from '../../persistence/atomic.js';
import {
  DEFAULT_NETWORK_FILE,
  defaultNetworkConfig,
  loadNetworkConfig,
  type ConfDirScan,
  type DefaultNetworkOptions,
  type LoadedNetwork,
  type RejectedFile,
} from './config.js';

export interface ConfDirOptions {
  confDir: string;
  logger: Logger;
  /** Written to conf_dir at start when it holds no valid network; false or absent: never. */
  defaultNetwork?: DefaultNetworkOptions | false;
  /** Quiet period after a conf dir change before reloading; editors write in several steps. */
  reloadDebounceMs?: number;
}

const DEFAULT_RELOAD_DEBOUNCE_MS = 100;
const REWATCH_DELAY_MS = 1000;

export class ConfDirWatcher {
  private readonly confDir: string;
  /** Replaced as a whole on reload; an operation keeps the snapshot it started with. */
  private scan: ConfDirScan = { rejected: [] };
  private lastRejectedSummary = '';
  private watcher: FSWatcher | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;
  private rewatchTimer: NodeJS.Timeout | undefined;
  private reloads: Promise<void> = Promise.resolve();
  private closed = false;
  /** The directory the watch is on (device and inode): one removed and made again is another. */
  private watched: string | undefined;

  constructor(private readonly options: ConfDirOptions) {
    this.confDir = options.confDir;
  }

  /** Select the network (writing the default one when configured and needed), then watch. */
  async start(): Promise<void> {
    await fs.mkdir(this.confDir, { recursive: true });
    let scan = await loadNetworkConfig(this.confDir);
    if (scan.network === undefined && this.options.defaultNetwork) {
      await this.writeDefaultNetwork(this.options.defaultNetwork);
      scan = await loadNetworkConfig(this.confDir);
    }
    this.applyScan(scan);
    this.watch();
  }

  /** The network new attachments use, or undefined while conf_dir holds no valid one. */
  current(): LoadedNetwork | undefined {
    return this.scan.network;
  }

  /** Why there is no network (no file, or each file's problem), for status and errors. */
  whyNone(): string {
    const rejected = this.scan.rejected;
    if (rejected.length === 0) return `no CNI network config in ${this.confDir} (no *.conflist, *.conf or *.json file)`;
    return `no valid CNI network config in ${this.confDir} (${summary(rejected)})`;
  }

  /** Stop watching; a reload already due does nothing. */
  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.reloadTimer);
    clearTimeout(this.rewatchTimer);
  }

  private async writeDefaultNetwork(opts: DefaultNetworkOptions): Promise<void> {
    const file = path.join(this.confDir, DEFAULT_NETWORK_FILE);
    await writeJsonAtomic(file, defaultNetworkConfig(opts), { mode: 0o644 });
    this.options.logger.info({ file, network: opts.name, subnet: opts.subnet }, 'no CNI network configured; wrote the default network');
  }

  /** Take a scan's result, logging only what changed: rejections and the selected network. */
  private applyScan(scan: ConfDirScan): void {
    const log = this.options.logger;
    const before = this.scan.network;
    this.scan = scan;
    const rejectedSummary = summary(scan.rejected);
    if (rejectedSummary !== this.lastRejectedSummary && rejectedSummary !== '') {
      log.warn({ confDir: this.confDir, rejected: scan.rejected }, 'skipping invalid CNI config files');
    }
    this.lastRejectedSummary = rejectedSummary;
    const after = scan.network;
    if (after?.source !== before?.source || after?.config.name !== before?.config.name) {
      if (after === undefined) log.warn({ confDir: this.confDir }, 'no valid CNI network config');
      else log.info({ network: after.config.name, source: after.source, cniVersion: after.config.cniVersion }, 'CNI network selected');
    }
  }

  private watch(): void {
    if (this.closed) return;
    try {
      this.watched = identityOf(this.confDir);
      // Not persistent: watching must never be what keeps the process alive.
      this.watcher = watch(this.confDir, { persistent: false }, () => this.scheduleReload());
      this.watcher.on('error', (err) => this.rewatchLater(err));
    } catch (err) {
      this.rewatchLater(err);
    }
  }

  /**
   * The conf dir itself was removed or replaced; watch it again once it is back. Linux gives
   * a watch on a removed directory no error, so reloads also compare the directory's identity.
   */
  private rewatchLater(err: unknown): void {
    // Logged once per outage, not at every retry.
    if (this.watcher || this.watched) this.options.logger.warn({ err, confDir: this.confDir }, 'watching the CNI conf dir failed; retrying');
    this.watcher?.close();
    this.watcher = undefined;
    this.watched = undefined;
    clearTimeout(this.rewatchTimer);
    this.rewatchTimer = setTimeout(() => {
      this.watch();
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
    }, this.options.reloadDebounceMs ?? DEFAULT_RELOAD_DEBOUNCE_MS);
    this.reloadTimer.unref();
  }

  private async reload(): Promise<void> {
    if (this.closed) return;
    if (this.watcher && safeIdentityOf(this.confDir) !== this.watched) {
      this.rewatchLater(new Error(`${this.confDir} was removed or replaced`));
    }
    try {
      this.applyScan(await loadNetworkConfig(this.confDir));
    } catch (err) {
      this.options.logger.warn({ err }, 'reloading the CNI conf dir failed; keeping the previous network');
    }
  }
}

/** A directory's device and inode; throws when it is not there. */
function identityOf(dir: string): string {
  const stat = statSync(dir);
  return `${stat.dev}:${stat.ino}`;
}

function safeIdentityOf(dir: string): string | undefined {
  try {
    return identityOf(dir);
  } catch {
    return undefined;
  }
}

function summary(rejected: readonly RejectedFile[]): string {
  return rejected.map((r) => `${r.file}: ${r.reason}`).join('; ');
}
