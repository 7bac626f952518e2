import { Command } from 'commander';
import { call } from '../client.js';
import { clientContext } from '../context.js';
import { parsedInfo, printJson } from '../output.js';
import { messageToJson } from '../proto-json.js';

export function runtimeCommands(): Command[] {
  const version = new Command('version')
    .description('Show the runtime version')
    .action(async (_opts: unknown, command: Command) => {
      const ctx = clientContext(command);
      const { runtime } = ctx.clients;
      const res = await call(runtime, 'Version', { version: 'v1' }, ctx.timeoutMs);
      process.stdout.write(
        `Version:  ${res.version}\nRuntimeName:  ${res.runtime_name}\nRuntimeVersion:  ${res.runtime_version}\nRuntimeApiVersion:  ${res.runtime_api_version}\n`,
      );
    });

  const info = new Command('info')
    .description('Show the runtime status and configuration')
    .option('-o, --output <format>', 'json', 'json')
    .action(async (_opts: unknown, command: Command) => {
      const ctx = clientContext(command);
      const { runtime } = ctx.clients;
      const res = await call(runtime, 'Status', { verbose: true }, ctx.timeoutMs);
      printJson({ status: messageToJson('RuntimeStatus', res.status), ...parsedInfo(res.info) });
    });

  return [version, info];
}
