import path from 'node:path';
import { Command } from 'commander';
import type { Logger } from 'pino';
import type { Config, LogFormat, LogLevel } from '../../config/config.js';
import type { Daemon } from '../../daemon.js';
import type { SystemdNotifier } from '../../service/notify.js';
import { InvalidArgumentError } from '../../errors.js';

const SHUTDOWN_DEADLINE_MS = 10_000;

interface DaemonOptions {
  config?: string;
  listen?: string;
  root?: string;
  state?: string;
  /** As typed: checked by checkLogOptions before use. */
  logLevel?: LogLevel;
  logFormat?: LogFormat;
}

export function daemonCommand(): Command {
  return new Command('daemon')
    .description('Run the CRI daemon (RuntimeService and ImageService on a Unix socket)')
    .option('-c, --config <file>', 'TOML config file (default: built-in defaults)')
    .option('--listen <endpoint>', 'override `listen`, e.g. unix:///run/tscri/tscri.sock')
    .option('--root <dir>', 'override `root`')
    .option('--state <dir>', 'override `state`')
    .option('--log-level <level>', 'override `log_level`: trace, debug, info, warn, error or fatal')
    .option('--log-format <format>', 'override `log_format`: json (one object per line, the default) or text')
    .action(async (opts: DaemonOptions) => {
      // Loaded here, not at the top: client commands should not pay for the daemon's modules.
      const [{ loadConfig, LOG_LEVELS }, { startDaemon }, { createLogger }, { SystemdNotifier }] = await Promise.all([
        import('../../config/config.js'),
        import('../../daemon.js'),
        import('../../log.js'),
        import('../../service/notify.js'),
      ]);
      checkLogOptions(opts, LOG_LEVELS);
      const config = withOverrides(await loadConfig(opts.config), opts);
      const log = createLogger(config.logLevel, config.logFormat);
      // A bug in one request must not take every pod's management down with it: log loudly.
      process.on('unhandledRejection', (reason) => {
        log.error({ err: reason }, 'unhandled rejection (a tscri bug)');
      });
      const systemd = new SystemdNotifier(log);
      let daemon: Daemon | undefined;
      // Without a handler, SIGHUP (a closed terminal, `systemctl reload`) would end the daemon.
      process.on('SIGHUP', () => {
        if (daemon) void reload(opts, daemon, log, systemd, loadConfig);
        else log.info({ signal: 'SIGHUP' }, 'still starting; the configuration is not reloaded');
      });
      try {
        daemon = await startDaemon(config, log);
        await systemd.notify('READY=1', `serving on ${config.socketPath}`);
      } catch (err) {
        log.fatal({ err }, 'tscri failed to start');
        process.exit(1);
      }
      const started = daemon;
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'shutting down');
        void systemd.notify('STOPPING=1');
        // Pods do not depend on the daemon, so an operator's SIGTERM must end it even if some
        // connection refuses to close.
        setTimeout(() => {
          log.warn({ ms: SHUTDOWN_DEADLINE_MS }, 'shutdown took too long; exiting anyway');
          process.exit(1);
        }, SHUTDOWN_DEADLINE_MS).unref();
        started.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}

/**
 * Read the config file again and hand it to the daemon, with the command line's overrides
 * still in force. A file that no longer parses is logged and changes nothing.
 */
async function reload(opts: DaemonOptions, daemon: Daemon, log: Logger, systemd: SystemdNotifier, load: (file?: string) => Promise<Config>): Promise<void> {
  await systemd.notify('RELOADING=1', 'reloading the configuration');
  try {
    const changes = daemon.reload(withOverrides(await load(opts.config), opts));
    log.info({ signal: 'SIGHUP', applied: changes.live, needRestart: changes.atRestart }, 'configuration reloaded');
  } catch (err) {
    log.error({ signal: 'SIGHUP', err }, 'configuration not reloaded; the running one stays');
  }
  await systemd.notify('READY=1', 'serving');
}

const LOG_FORMATS: readonly LogFormat[] = ['json', 'text'];

/** A wrong flag is refused with the values it takes, before anything starts. */
function checkLogOptions(opts: DaemonOptions, levels: readonly LogLevel[]): void {
  checkOneOf('--log-level', opts.logLevel, levels);
  checkOneOf('--log-format', opts.logFormat, LOG_FORMATS);
}

function checkOneOf(flag: string, value: string | undefined, allowed: readonly string[]): void {
  if (value !== undefined && !allowed.includes(value)) {
    throw new InvalidArgumentError(`invalid ${flag} "${value}": use one of ${allowed.join(', ')}`);
  }
}

function withOverrides(config: Config, opts: DaemonOptions): Config {
  const out = { ...config };
  if (opts.listen) out.socketPath = opts.listen.replace(/^unix:\/\//, '').replace(/^unix:/, '');
  if (opts.root) out.root = path.resolve(opts.root);
  if (opts.state) out.state = path.resolve(opts.state);
  if (opts.logLevel) out.logLevel = opts.logLevel;
  if (opts.logFormat) out.logFormat = opts.logFormat;
  return out;
}
