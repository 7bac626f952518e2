import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import type * as cri from '../../api/cri.js';
import { InvalidArgumentError, messageOf } from '../../errors.js';
import { call } from '../client.js';
import { clientContext, collect, parseLabels, type ClientContext } from '../context.js';
import { sandboxStatusJson } from '../inspect.js';
import { newestFirst, withListOptions, type ListOptions } from '../listing.js';
import { ago, eachInTurn, inspectEach, inspectView, printMessage, printTable, sampleMs, shortId, sleep } from '../output.js';
import { messageFromJson } from '../proto-json.js';
import { POD_STATS_HEADER, podStatsRows } from '../stats.js';

/** Read a JSON config file (crictl's pod-config.json format) as a CRI message. */
export async function readConfigFile(typeName: string, file: string): Promise<Record<string, unknown>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`cannot read ${file}: ${messageOf(err)}`);
  }
  return messageFromJson(typeName, json);
}

async function listSandboxes(ctx: ClientContext, filter: Record<string, unknown>): Promise<cri.PodSandbox[]> {
  const { runtime } = ctx.clients;
  const res = await call(runtime, 'ListPodSandbox', { filter }, ctx.timeoutMs);
  return res.items as cri.PodSandbox[];
}

export function sandboxCommands(): Command[] {
  const runp = new Command('runp')
    .description('Run a new pod sandbox from a JSON config')
    .argument('<pod-config.json>')
    .option('--runtime <handler>', 'runtime handler', '')
    .action(async (file: string, opts: { runtime: string }, command: Command) => {
      const ctx = clientContext(command);
      const config = await readConfigFile('PodSandboxConfig', file);
      const { runtime } = ctx.clients;
      const res = await call(runtime, 'RunPodSandbox', { config, runtime_handler: opts.runtime }, ctx.timeoutMs);
      process.stdout.write(`${res.pod_sandbox_id}\n`);
    });

  const stopp = new Command('stopp')
    .description('Stop one or more running pod sandboxes')
    .argument('<pod-id...>')
    .action(async (ids: string[], _opts: unknown, command: Command) => {
      const ctx = clientContext(command);
      await eachInTurn(ids, (id) => call(ctx.clients.runtime, 'StopPodSandbox', { pod_sandbox_id: id }, ctx.timeoutMs), (id) => `Stopped sandbox ${id}`);
    });

  const rmp = new Command('rmp')
    .description('Remove one or more pod sandboxes')
    .argument('[pod-id...]')
    .option('-a, --all', 'remove all pods')
    .option('-f, --force', 'stop a running pod before removing it (always done)')
    .action(async (ids: string[], opts: { all?: boolean }, command: Command) => {
      const ctx = clientContext(command);
      const targets = opts.all ? (await listSandboxes(ctx, {})).map((s) => s.id) : ids;
      if (targets.length === 0) throw new InvalidArgumentError('no pod id given (or use --all)');
      await eachInTurn(targets, (id) => call(ctx.clients.runtime, 'RemovePodSandbox', { pod_sandbox_id: id }, ctx.timeoutMs), (id) => `Removed sandbox ${id}`);
    });

  const pods = new Command('pods')
    .description('List pod sandboxes')
    .option('--id <id>', 'filter by pod id (prefix)')
    .option('--name <name>', 'filter by pod name (regular expression)')
    .option('--namespace <ns>', 'filter by pod namespace (regular expression)')
    .option('-s, --state <state>', 'filter by state: ready or notready')
    .option('-v, --verbose', 'verbose output');
  withListOptions(pods, 'pod').action(async (opts: PodsOptions, command: Command) => {
      const ctx = clientContext(command);
      const filter: Record<string, unknown> = { label_selector: parseLabels(opts.label) };
      if (opts.id) filter.id = opts.id;
      if (opts.state) filter.state = { state: sandboxStateName(opts.state) };
      const matching = (await listSandboxes(ctx, filter))
        .filter((s) => !opts.name || new RegExp(opts.name).test(s.metadata?.name ?? ''))
        .filter((s) => !opts.namespace || new RegExp(opts.namespace).test(s.metadata?.namespace ?? ''));
      const items = newestFirst(matching, opts);
      if (opts.quiet) {
        for (const s of items) process.stdout.write(`${s.id}\n`);
      } else if (opts.output === 'json') {
        printMessage('ListPodSandboxResponse', { items });
      } else {
        printTable(
          ['POD ID', 'CREATED', 'STATE', 'NAME', 'NAMESPACE', 'ATTEMPT', 'RUNTIME'],
          items.map((s) => [
            shortId(s.id, !opts.trunc),
            ago(s.created_at),
            s.state === 'SANDBOX_READY' ? 'Ready' : 'NotReady',
            s.metadata?.name ?? '',
            s.metadata?.namespace ?? '',
            String(s.metadata?.attempt ?? 0),
            s.runtime_handler || '(default)',
          ]),
        );
      }
    });

  const inspectp = new Command('inspectp')
    .description('Show the status of one or more pod sandboxes')
    .argument('<pod-id...>')
    .option('-o, --output <format>', 'json or table', 'json')
    .action(async (ids: string[], opts: { output: string }, command: Command) => {
      const ctx = clientContext(command);
      await inspectEach(ids, async (id) => {
        const { runtime } = ctx.clients;
        const res = await call(runtime, 'PodSandboxStatus', { pod_sandbox_id: id, verbose: true }, ctx.timeoutMs);
        const status = res.status as cri.PodSandboxStatus;
        if (opts.output !== 'table') return inspectView(sandboxStatusJson(status), res.info);
        printTable(['ID', 'NAME', 'NAMESPACE', 'STATE', 'IP', 'CREATED'], [
          [status.id, status.metadata?.name ?? '', status.metadata?.namespace ?? '', status.state, status.network?.ip ?? '', ago(status.created_at)],
        ]);
        return undefined;
      });
    });

  const statsp = new Command('statsp')
    .description("Show pods' resource usage; CPU % is measured over a sample of --seconds")
    .argument('[pod-id]')
    .option('--id <id>', 'filter by pod id (prefix)')
    .option('--label <key=value>', 'filter by label (repeatable)', collect, [])
    .option('-o, --output <format>', 'json or table', 'table')
    .option('-s, --seconds <n>', 'sample duration for CPU %, in seconds', '1')
    .action(async (id: string | undefined, opts: { id?: string; label: string[]; output: string; seconds: string }, command: Command) => {
      const ctx = clientContext(command);
      const filter = { id: opts.id ?? id ?? '', label_selector: parseLabels(opts.label) };
      const sample = async () => (await call(ctx.clients.runtime, 'ListPodSandboxStats', { filter }, ctx.timeoutMs)).stats as cri.PodSandboxStats[];
      const before = await sample();
      if (opts.output === 'json') return printMessage('ListPodSandboxStatsResponse', { stats: before });
      await sleep(sampleMs(opts.seconds));
      printTable(POD_STATS_HEADER, podStatsRows(before, await sample()));
    });

  return [runp, stopp, rmp, pods, inspectp, statsp];
}

interface PodsOptions extends ListOptions {
  id?: string;
  name?: string;
  namespace?: string;
  state?: string;
  verbose?: boolean;
}

function sandboxStateName(state: string): string {
  switch (state.toLowerCase()) {
    case 'ready':
    case 'sandbox_ready':
      return 'SANDBOX_READY';
    case 'notready':
    case 'sandbox_notready':
      return 'SANDBOX_NOTREADY';
    default:
      throw new InvalidArgumentError(`unknown pod state "${state}" (ready or notready)`);
  }
}
