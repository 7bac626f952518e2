import path from 'node:path';
import { Command } from 'commander';
import type { Config, LogLevel } from '../../config/config.js';

const SHUTDOWN_DEADLINE_MS = 10_000;

interface DaemonOptions {
  config?: string;
  listen?: string;
  root?: string;
  state?: string;
  logLevel?: LogLevel;
}

export function daemonCommand(): Command {
  return new Command('daemon')
    .description('Run the CRI daemon (RuntimeService and ImageService on a Unix socket)')
    .option('-c, --config <file>', 'TOML config file (default: built-in defaults)')
    .option('--listen <endpoint>', 'override `listen`, e.g. unix:///run/tscri/tscri.sock')
    .option('--root <dir>', 'override `root`')
    .option('--state <dir>', 'override `state`')
    .option('--log-level <level>', 'override `log_level`')
    .action(async (opts: DaemonOptions) => {
      // Loaded here, not at the top: client commands should not pay for the daemon's modules.
      const [{ loadConfig }, { startDaemon }, { createLogger }] = await Promise.all([
        import('../../config/config.js'),
        import('../../daemon.js'),
        import('../../log.js'),
      ]);
      const config = withOverrides(await loadConfig(opts.config), opts);
      const log = createLogger(config.logLevel);
      // A bug in one request must not take every pod's management down with it: log loudly.
      process.on('unhandledRejection', (reason) => {
        log.error({ err: reason instanceof Error ? reason.stack : String(reason) }, 'unhandled rejection (a tscri bug)');
      });
      let daemon;
      try {
        daemon = await startDaemon(config, log);
      } catch (err) {
        log.fatal({ err: err instanceof Error ? err.message : String(err), hint: (err as { hint?: string }).hint }, 'tscri failed to start');
        process.exit(1);
      }
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'shutting down');
        // Pods do not depend on the daemon, so an operator's SIGTERM must end it even if some
        // connection refuses to close.
        setTimeout(() => {
          log.warn({ ms: SHUTDOWN_DEADLINE_MS }, 'shutdown took too long; exiting anyway');
          process.exit(1);
        }, SHUTDOWN_DEADLINE_MS).unref();
        daemon.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}

function withOverrides(config: Config, opts: DaemonOptions): Config {
  const out = { ...config };
  if (opts.listen) out.socketPath = opts.listen.replace(/^unix:\/\//, '').replace(/^unix:/, '');
  if (opts.root) out.root = path.resolve(opts.root);
  if (opts.state) out.state = path.resolve(opts.state);
  if (opts.logLevel) out.logLevel = opts.logLevel;
  return out;
}
