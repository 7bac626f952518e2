#!/usr/bin/env -S node --max-semi-space-size=1 --single-threaded
// The V8 flags above keep the daemon small (measured with hack/bench.mjs: about 35 MB less
// resident memory for the same work): a 1 MB young generation instead of 16 MB, and no
// background V8 threads for a heap this size. Only a shebang can set them (NODE_OPTIONS
// refuses them, and V8 ignores them once started), so run the daemon as `tscri daemon` or
// `dist/cli/main.js daemon`, not through `node`.
import { Command, CommanderError } from 'commander';
import { TscriError } from '../errors.js';
import { TSCRI_VERSION } from '../version.js';
import { containerCommands } from './commands/container.js';
import { daemonCommand } from './commands/daemon.js';
import { imageCommands } from './commands/image.js';
import { loadCommand } from './commands/load.js';
import { runtimeCommands } from './commands/runtime.js';
import { sandboxCommands } from './commands/sandbox.js';
import { streamCommands } from './commands/stream.js';
import { DEFAULT_ENDPOINT } from './context.js';

const program = new Command('tscri')
  .description('tscri: a Kubernetes CRI runtime (daemon) and a crictl-like client')
  .version(TSCRI_VERSION, '--version')
  .option('-r, --runtime-endpoint <endpoint>', `CRI endpoint (env CONTAINER_RUNTIME_ENDPOINT, default ${DEFAULT_ENDPOINT})`)
  .option('-i, --image-endpoint <endpoint>', 'image service endpoint (default: the runtime endpoint)')
  .option('-t, --timeout <duration>', 'timeout of each call, e.g. 2s, 1m', '2m')
  .showHelpAfterError()
  // Options after a subcommand belong to it, so `exec ID sh -c …` passes -c to the command.
  .enablePositionalOptions()
  .exitOverride();

program.addCommand(daemonCommand());
for (const command of [...runtimeCommands(), ...sandboxCommands(), ...containerCommands(), ...streamCommands(), ...imageCommands(), loadCommand()]) program.addCommand(command);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`tscri: ${describe(err)}\n`);
  process.exit(1);
}

/** gRPC errors carry the server's message in `details`; typed errors their own message. */
function describe(err: unknown): string {
  if (err instanceof TscriError) return err.message;
  if (typeof err === 'object' && err !== null && 'details' in err && typeof err.details === 'string') {
    const code = 'code' in err ? ` (code ${String(err.code)})` : '';
    return `${err.details}${code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
