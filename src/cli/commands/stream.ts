import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { Command } from 'commander';
import { InvalidArgumentError, UnavailableError, messageOf } from '../../errors.js';
import { openPortForward, runRemoteCommand, type Transport } from '../streaming-client.js';
import { call } from '../client.js';
import { clientContext } from '../context.js';

interface StreamOptions {
  stdin?: boolean;
  tty?: boolean;
  transport: Transport;
}

/**
 * Run a remote command with this terminal: raw mode and size changes when a tty is asked for
 * and stdin is one. Resolves with the remote exit code.
 */
export async function runInTerminal(url: string, opts: StreamOptions): Promise<number> {
  const tty = opts.tty ?? false;
  const rawMode = tty && opts.stdin && process.stdin.isTTY;
  const resizes = new EventEmitter();
  const onWinch = (): void => void resizes.emit('resize', terminalSize());
  if (rawMode) process.stdin.setRawMode(true);
  process.on('SIGWINCH', onWinch);
  try {
    return await runRemoteCommand({
      url,
      transport: opts.transport,
      tty,
      ...(opts.stdin ? { stdin: process.stdin } : {}),
      stdout: process.stdout,
      ...(tty ? {} : { stderr: process.stderr }),
      resizes,
      ...(tty && process.stdout.isTTY ? { initialSize: terminalSize() } : {}),
    });
  } finally {
    process.off('SIGWINCH', onWinch);
    if (rawMode) process.stdin.setRawMode(false);
    process.stdin.pause();
  }
}

function terminalSize(): { width: number; height: number } {
  return { width: process.stdout.columns || 80, height: process.stdout.rows || 24 };
}

function transportOf(value: string): Transport {
  if (value !== 'spdy' && value !== 'websocket') throw new InvalidArgumentError('--transport must be spdy or websocket');
  return value;
}

export function streamCommands(): Command[] {
  const attach = new Command('attach')
    .description("Attach to a running container's stdio")
    .argument('<container-id>')
    .option('-i, --stdin', "send this terminal's input to the container")
    .option('-t, --tty', 'the container has a terminal')
    .option('--transport <spdy|websocket>', 'streaming protocol', 'spdy')
    .action(async (id: string, opts: { stdin?: boolean; tty?: boolean; transport: string }, command: Command) => {
      const ctx = clientContext(command);
      const tty = opts.tty ?? false;
      const { url } = await call(ctx.clients.runtime, 'Attach', { container_id: id, stdin: opts.stdin ?? false, tty, stdout: true, stderr: !tty }, ctx.timeoutMs);
      process.exitCode = await runInTerminal(url, { ...opts, transport: transportOf(opts.transport) });
    });

  const portForward = new Command('port-forward')
    .description('Forward local ports to ports of a pod')
    .argument('<pod-id>')
    .argument('<[local:]remote...>')
    .option('--address <address>', 'local address to listen on', '127.0.0.1')
    .option('--transport <spdy|websocket>', 'streaming protocol', 'spdy')
    .action(async (podId: string, specs: string[], opts: { address: string; transport: string }, command: Command) => {
      const ctx = clientContext(command);
      const mappings = specs.map(parsePortSpec);
      const { url } = await call(ctx.clients.runtime, 'PortForward', { pod_sandbox_id: podId, port: mappings.map((m) => m.remote) }, ctx.timeoutMs);
      const session = await openPortForward(url, transportOf(opts.transport)).catch((err: unknown) => {
        throw new UnavailableError(`port-forward to pod ${podId}: the streaming server refused the session: ${messageOf(err)}`);
      });
      for (const { local, remote } of mappings) {
        const server = net.createServer((client) => forward(client, () => session.connect(remote), `pod ${podId} port ${remote}`));
        const bound = await listen(server, local, opts.address);
        process.stdout.write(`Forwarding from ${opts.address}:${bound} -> ${remote}\n`);
      }
      await new Promise(() => undefined); // until interrupted
    });

  return [attach, portForward];
}

/**
 * Join one local connection to a new forwarded one. Whatever refuses it (the streaming
 * server, or the pod: nothing listening on the port) is said on stderr, and the local
 * connection is closed, so the user sees why their client got nothing.
 */
function forward(client: net.Socket, connect: () => Promise<Duplex>, target: string): void {
  const refused = (err: unknown): void => {
    process.stderr.write(`port-forward to ${target}: ${messageOf(err)}\n`);
    client.destroy();
  };
  client.on('error', () => undefined); // the local peer going away is not worth a message
  connect().then((upstream) => {
    client.pipe(upstream).pipe(client);
    upstream.on('error', refused);
    client.on('close', () => upstream.destroy());
  }, refused);
}

/** Listen on a local port; the port bound (which the OS chose for 0). A port in use is said plainly. */
function listen(server: net.Server, port: number, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new UnavailableError(`port-forward: cannot listen on ${address}:${port}: ${messageOf(err)}`)));
    server.listen(port, address, () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** "8080:80" listens on 8080 for port 80; "80" listens on 80; ":80" on an ephemeral port. */
export function parsePortSpec(spec: string): { local: number; remote: number } {
  const [first = '', second] = spec.split(':');
  const remote = Number(second ?? first);
  const local = second === undefined ? remote : first === '' ? 0 : Number(first);
  if (!Number.isInteger(remote) || remote < 1 || remote > 65535 || !Number.isInteger(local) || local < 0 || local > 65535) {
    throw new InvalidArgumentError(`invalid port mapping "${spec}" (expected [local:]remote)`);
  }
  return { local, remote };
}
