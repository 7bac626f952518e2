import { Command } from 'commander';
import type * as cri from '../../api/cri.js';
import { InvalidArgumentError } from '../../errors.js';
import { call } from '../client.js';
import { clientContext, collect, parseLabels, type ClientContext } from '../context.js';
import { followLog, printLog } from '../logs.js';
import { containerStatusJson } from '../inspect.js';
import { newestFirst, withListOptions, type ListOptions } from '../listing.js';
import { ago, eachInTurn, inspectEach, inspectView, printMessage, printTable, sampleMs, shortId, sleep } from '../output.js';
import { CONTAINER_STATS_HEADER, containerStatsRows } from '../stats.js';
import { runInTerminal } from './stream.js';
import { readConfigFile } from './sandbox.js';

const STATES: Record<string, string> = {
  created: 'CONTAINER_CREATED',
  running: 'CONTAINER_RUNNING',
  exited: 'CONTAINER_EXITED',
  unknown: 'CONTAINER_UNKNOWN',
};

function stateFilter(state: string): string {
  const value = STATES[state.toLowerCase()] ?? (Object.values(STATES).includes(state.toUpperCase()) ? state.toUpperCase() : undefined);
  if (!value) throw new InvalidArgumentError(`unknown container state "${state}" (created, running, exited, unknown)`);
  return value;
}

async function createContainer(ctx: ClientContext, podId: string, containerFile: string, podFile: string): Promise<string> {
  const [config, sandboxConfig] = await Promise.all([readConfigFile('ContainerConfig', containerFile), readConfigFile('PodSandboxConfig', podFile)]);
  const { container_id } = await call(ctx.clients.runtime, 'CreateContainer', { pod_sandbox_id: podId, config, sandbox_config: sandboxConfig }, ctx.timeoutMs);
  return container_id;
}

async function status(ctx: ClientContext, id: string): Promise<cri.ContainerStatusResponse> {
  return (await call(ctx.clients.runtime, 'ContainerStatus', { container_id: id, verbose: false }, ctx.timeoutMs)) as cri.ContainerStatusResponse;
}

export function containerCommands(): Command[] {
  return [
    createCommand(),
    runCommand(),
    startCommand(),
    stopCommand(),
    rmCommand(),
    psCommand(),
    inspectCommand(),
    logsCommand(),
    execCommand(),
    statsCommand(),
    updateCommand(),
  ];
}

function createCommand(): Command {
  return new Command('create')
    .description('Create a container in a pod')
    .argument('<pod-id>')
    .argument('<container-config.json>')
    .argument('<pod-config.json>')
    .action(async (podId: string, containerFile: string, podFile: string, _opts: unknown, command: Command) => {
      const ctx = clientContext(command);
      process.stdout.write(`${await createContainer(ctx, podId, containerFile, podFile)}\n`);
    });
}

function runCommand(): Command {
  return new Command('run')
    .description('Run a pod and a container in it: runp, create and start in one')
    .argument('<container-config.json>')
    .argument('<pod-config.json>')
    .option('--runtime <handler>', 'runtime handler', '')
    .action(async (containerFile: string, podFile: string, opts: { runtime: string }, command: Command) => {
      const ctx = clientContext(command);
      const config = await readConfigFile('PodSandboxConfig', podFile);
      const { pod_sandbox_id } = await call(ctx.clients.runtime, 'RunPodSandbox', { config, runtime_handler: opts.runtime }, ctx.timeoutMs);
      const id = await createContainer(ctx, pod_sandbox_id, containerFile, podFile);
      await call(ctx.clients.runtime, 'StartContainer', { container_id: id }, ctx.timeoutMs);
      process.stdout.write(`${id}\n`);
    });
}

/** A command without options on one or more containers. */
function onContainers(name: string, description: string, run: (ctx: ClientContext, ids: string[]) => Promise<void>): Command {
  return new Command(name)
    .description(description)
    .argument('<container-id...>')
    .action((ids: string[], _opts: unknown, command: Command) => run(clientContext(command), ids));
}

function startCommand(): Command {
  return onContainers('start', 'Start one or more created containers', (ctx, ids) =>
    eachInTurn(ids, (id) => call(ctx.clients.runtime, 'StartContainer', { container_id: id }, ctx.timeoutMs)),
  );
}

function stopCommand(): Command {
  return new Command('stop')
    .description('Stop one or more running containers')
    .argument('<container-id...>')
    .option('-t, --timeout <seconds>', 'seconds to wait after the stop signal before killing', '0')
    .action(async (ids: string[], opts: { timeout: string }, command: Command) => {
      const ctx = clientContext(command);
      const timeout = Number(opts.timeout);
      await eachInTurn(ids, (id) => call(ctx.clients.runtime, 'StopContainer', { container_id: id, timeout }, ctx.timeoutMs + timeout * 1000));
    });
}

function rmCommand(): Command {
  return new Command('rm')
    .description('Remove one or more containers')
    .argument('[container-id...]')
    .option('-f, --force', 'stop a running container before removing it')
    .option('-a, --all', 'remove all containers')
    .action(async (ids: string[], opts: { force?: boolean; all?: boolean }, command: Command) => {
      const ctx = clientContext(command);
      const targets = opts.all ? (await call(ctx.clients.runtime, 'ListContainers', {}, ctx.timeoutMs)).containers.map((c) => c.id) : ids;
      if (targets.length === 0) throw new InvalidArgumentError('no container id given (or use --all)');
      await eachInTurn(targets, async (id) => {
        const { status: s } = await status(ctx, id);
        if (s?.state === 'CONTAINER_RUNNING' && !opts.force) {
          throw new InvalidArgumentError(`container ${id} is running: stop it first or use --force`);
        }
        await call(ctx.clients.runtime, 'RemoveContainer', { container_id: id }, ctx.timeoutMs);
      });
    });
}

function psCommand(): Command {
  const ps = new Command('ps')
    .description('List containers')
    .option('-a, --all', 'show all containers, not only running ones')
    .option('--id <id>', 'filter by container id (prefix)')
    .option('--name <regexp>', 'filter by container name')
    .option('-p, --pod <pod-id>', 'filter by pod id')
    .option('-s, --state <state>', 'filter by state: created, running, exited, unknown');
  return withListOptions(ps, 'container').action(async (opts: PsOptions, command: Command) => {
      const ctx = clientContext(command);
      const filter: Record<string, unknown> = { label_selector: parseLabels(opts.label) };
      if (opts.id) filter.id = opts.id;
      if (opts.pod) filter.pod_sandbox_id = opts.pod;
      if (opts.state) filter.state = { state: stateFilter(opts.state) };
      else if (!opts.all && !opts.latest && !opts.last) filter.state = { state: 'CONTAINER_RUNNING' };
      const containers = (await call(ctx.clients.runtime, 'ListContainers', { filter }, ctx.timeoutMs)).containers as cri.Container[];
      const list = newestFirst(containers.filter((c) => !opts.name || new RegExp(opts.name).test(c.metadata?.name ?? '')), opts);
      if (opts.quiet) {
        for (const c of list) process.stdout.write(`${c.id}\n`);
        return;
      }
      if (opts.output === 'json') return printMessage('ListContainersResponse', { containers: list });
      const pods = new Map(
        ((await call(ctx.clients.runtime, 'ListPodSandbox', {}, ctx.timeoutMs)).items as cri.PodSandbox[]).map((p) => [p.id, p.metadata?.name ?? '']),
      );
      printTable(
        ['CONTAINER', 'IMAGE', 'CREATED', 'STATE', 'NAME', 'ATTEMPT', 'POD ID', 'POD'],
        list.map((c) => [
          shortId(c.id, !opts.trunc),
          c.image?.image ?? '',
          ago(c.created_at),
          c.state.replace('CONTAINER_', '').replace(/^(.)(.*)$/, (_m, a: string, b: string) => a + b.toLowerCase()),
          c.metadata?.name ?? '',
          String(c.metadata?.attempt ?? 0),
          shortId(c.pod_sandbox_id, !opts.trunc),
          pods.get(c.pod_sandbox_id) ?? 'unknown',
        ]),
      );
    });
}

function inspectCommand(): Command {
  return onContainers('inspect', 'Show the status of one or more containers', (ctx, ids) =>
    inspectEach(ids, async (id) => {
      const res = await call(ctx.clients.runtime, 'ContainerStatus', { container_id: id, verbose: true }, ctx.timeoutMs);
      return inspectView(containerStatusJson(res.status as cri.ContainerStatus), res.info);
    }),
  );
}

function logsCommand(): Command {
  return new Command('logs')
    .description("Print a container's log")
    .argument('<container-id>')
    .option('-f, --follow', 'keep printing new lines until the container exits')
    .option('--tail <n>', 'only the last n lines')
    .option('-t, --timestamps', 'show the time of each line')
    .action(async (id: string, opts: { follow?: boolean; tail?: string; timestamps?: boolean }, command: Command) => {
      const ctx = clientContext(command);
      const { status: s } = await status(ctx, id);
      if (!s?.log_path) throw new InvalidArgumentError(`container ${id} has no log (its pod has no log directory)`);
      const options = { timestamps: opts.timestamps ?? false, ...(opts.tail !== undefined ? { tail: Number(opts.tail) } : {}) };
      const offset = await printLog(s.log_path, options);
      if (opts.follow) {
        await followLog(s.log_path, offset, { timestamps: options.timestamps }, async () => (await status(ctx, id)).status?.state !== 'CONTAINER_RUNNING');
      }
    });
}

function execCommand(): Command {
  return new Command('exec')
    .description('Run a command in a running container')
    .argument('<container-id>')
    .argument('<command...>')
    .option('-i, --interactive', "send this terminal's input to the command")
    .option('-t, --tty', 'give the command a terminal')
    .option('-s, --sync', 'run synchronously (ExecSync) instead of streaming')
    .option('--timeout <seconds>', 'with --sync: kill the command after this many seconds (0: never)', '0')
    .option('--transport <spdy|websocket>', 'streaming protocol', 'spdy')
    // Everything after the container id is the command, its own flags included.
    .passThroughOptions()
    .action(async (id: string, cmd: string[], opts: ExecOptions, command: Command) => {
      const ctx = clientContext(command);
      if (opts.sync) {
        const timeout = Number(opts.timeout);
        const res = await call(ctx.clients.runtime, 'ExecSync', { container_id: id, cmd, timeout }, timeout > 0 ? timeout * 1000 + ctx.timeoutMs : 24 * 3600 * 1000);
        process.stdout.write(res.stdout);
        process.stderr.write(res.stderr);
        process.exitCode = res.exit_code;
        return;
      }
      const tty = opts.tty ?? false;
      const request = { container_id: id, cmd, tty, stdin: opts.interactive ?? false, stdout: true, stderr: !tty };
      const { url } = await call(ctx.clients.runtime, 'Exec', request, ctx.timeoutMs);
      const transport = opts.transport === 'websocket' ? 'websocket' : 'spdy';
      process.exitCode = await runInTerminal(url, { stdin: opts.interactive ?? false, tty, transport });
    });
}

function statsCommand(): Command {
  return new Command('stats')
    .description('Show container resource usage; CPU % is measured over a sample of --seconds')
    .argument('[container-id]')
    .option('--id <id>', 'filter by container id (prefix)')
    .option('-a, --all', 'include containers that are not running')
    .option('-p, --pod <pod-id>', 'only this pod')
    .option('--label <key=value>', 'filter by label (repeatable)', collect, [])
    .option('-o, --output <format>', 'json or table', 'table')
    .option('-s, --seconds <n>', 'sample duration for CPU %, in seconds', '1')
    .action(async (id: string | undefined, opts: StatsOptions, command: Command) => {
      const ctx = clientContext(command);
      const filter = { id: opts.id ?? id ?? '', pod_sandbox_id: opts.pod ?? '', label_selector: parseLabels(opts.label) };
      const sample = async () => (await call(ctx.clients.runtime, 'ListContainerStats', { filter }, ctx.timeoutMs)).stats as cri.ContainerStats[];
      const before = await sample();
      if (opts.output === 'json') return printMessage('ListContainerStatsResponse', { stats: before });
      await sleep(sampleMs(opts.seconds));
      printTable(CONTAINER_STATS_HEADER, containerStatsRows(before, await sample(), opts.all ?? false));
    });
}

function updateCommand(): Command {
  return new Command('update')
    .description('Change the resource limits of running containers')
    .argument('<container-id...>')
    .option('--cpu-period <us>', 'CPU CFS period')
    .option('--cpu-quota <us>', 'CPU CFS quota')
    .option('--cpu-share <shares>', 'CPU shares')
    .option('--cpuset-cpus <cpus>', 'CPUs allowed, e.g. 0-1')
    .option('--cpuset-mems <mems>', 'memory nodes allowed')
    .option('--memory <bytes>', 'memory limit in bytes')
    .action(async (ids: string[], opts: UpdateOptions, command: Command) => {
      const ctx = clientContext(command);
      const linux = {
        cpu_period: Number(opts.cpuPeriod ?? 0),
        cpu_quota: Number(opts.cpuQuota ?? 0),
        cpu_shares: Number(opts.cpuShare ?? 0),
        cpuset_cpus: opts.cpusetCpus ?? '',
        cpuset_mems: opts.cpusetMems ?? '',
        memory_limit_in_bytes: Number(opts.memory ?? 0),
      };
      await eachInTurn(ids, (id) => call(ctx.clients.runtime, 'UpdateContainerResources', { container_id: id, linux }, ctx.timeoutMs));
    });
}

interface PsOptions extends ListOptions {
  all?: boolean;
  id?: string;
  name?: string;
  pod?: string;
  state?: string;
}

interface StatsOptions {
  id?: string;
  all?: boolean;
  pod?: string;
  label: string[];
  output: string;
  seconds: string;
}

interface ExecOptions {
  interactive?: boolean;
  tty?: boolean;
  sync?: boolean;
  timeout: string;
  transport: string;
}

interface UpdateOptions {
  cpuPeriod?: string;
  cpuQuota?: string;
  cpuShare?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  memory?: string;
}

