import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { connect, type CriClients } from './client.js';

export const DEFAULT_ENDPOINT = 'unix:///run/tscri/tscri.sock';

/** What every client command needs: connected clients and the call timeout. */
export interface ClientContext {
  clients: CriClients;
  timeoutMs: number;
}

export function clientContext(command: Command): ClientContext {
  const { runtimeEndpoint, imageEndpoint } = endpointsOf(command);
  const opts = command.optsWithGlobals<{ timeout?: string }>();
  return { clients: connect(runtimeEndpoint, imageEndpoint), timeoutMs: parseDuration(opts.timeout ?? '2m') };
}

/** The endpoints the global options, or else the environment, name. */
export function endpointsOf(command: Command): { runtimeEndpoint: string; imageEndpoint: string } {
  const opts = command.optsWithGlobals<{ runtimeEndpoint?: string; imageEndpoint?: string }>();
  const runtimeEndpoint = opts.runtimeEndpoint ?? process.env.CONTAINER_RUNTIME_ENDPOINT ?? DEFAULT_ENDPOINT;
  const imageEndpoint = opts.imageEndpoint ?? process.env.IMAGE_SERVICE_ENDPOINT ?? runtimeEndpoint;
  return { runtimeEndpoint, imageEndpoint };
}

/** "500ms", "2s", "1m", "1h" or a bare number of seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new InvalidArgumentError(`invalid duration "${text}" (use e.g. 500ms, 2s, 1m)`);
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  return value * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!;
}

/** Parse repeated key=value flags (--label) into a map. */
export function parseLabels(pairs: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`invalid label "${pair}": expected key=value`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
