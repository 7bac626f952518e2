import type { EventEmitter } from 'node:events';
import http from 'node:http';
import { Duplex, PassThrough, type Readable, type Writable } from 'node:stream';
import { WebSocket } from 'ws';
import type { TerminalSize } from '../oci/runtime.js';
import { SPDY_REMOTE_COMMAND_PROTOCOLS, WEBSOCKET_REMOTE_COMMAND_PROTOCOLS, CHANNEL } from '../streaming/remote-command.js';
import { SpdyConnection, type SpdyStream } from '../streaming/spdy.js';
import { ChannelSocket } from '../streaming/websocket.js';

/**
 * The client side of the streaming protocols, as kubectl and crictl speak them: for the tscri
 * CLI (exec -it, attach, port-forward) and for the tests.
 */

export type Transport = 'spdy' | 'websocket';

export interface RemoteCommandClientOptions {
  url: string;
  transport: Transport;
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  tty: boolean;
  /** Emits 'resize' with a TerminalSize; the first size should be emitted right after connecting. */
  resizes?: EventEmitter;
  initialSize?: TerminalSize;
}

/** Run a remote command to its end; resolves with its exit code, rejects with a failure status. */
export async function runRemoteCommand(options: RemoteCommandClientOptions): Promise<number> {
  return options.transport === 'spdy' ? runOverSpdy(options) : runOverWebSocket(options);
}

async function runOverSpdy(options: RemoteCommandClientOptions): Promise<number> {
  const { connection, protocol } = await upgradeToSpdy(options.url, SPDY_REMOTE_COMMAND_PROTOCOLS);
  const open = (type: string): SpdyStream => connection.openStream({ streamtype: type });
  const error = open('error');
  const stdin = options.stdin ? open('stdin') : undefined;
  const stdout = options.stdout ? open('stdout') : undefined;
  const stderr = options.stderr && !options.tty ? open('stderr') : undefined;
  const resize = options.tty && protocol !== 'v2.channel.k8s.io' && protocol !== 'channel.k8s.io' ? open('resize') : undefined;
  // Our writes to stdout/stderr streams never happen; end our side so the server sees it.
  for (const s of [error, stdout, stderr]) s?.end();
  if (stdin && options.stdin) options.stdin.pipe(stdin);
  if (resize) sendResizes(options, (size) => resize.write(`${JSON.stringify({ Width: size.width, Height: size.height })}\n`));
  const outputs = [pump(stdout, options.stdout), pump(stderr, options.stderr)];
  const status = await readAll(error);
  await Promise.all(outputs);
  options.stdin?.unpipe();
  connection.close();
  return exitCodeOf(status, protocol.startsWith('v4'));
}

async function runOverWebSocket(options: RemoteCommandClientOptions): Promise<number> {
  const { ws, opened } = openWebSocket(options.url, WEBSOCKET_REMOTE_COMMAND_PROTOCOLS);
  const socket = new ChannelSocket(ws);
  const stdout = socket.readable(CHANNEL.stdout);
  const stderr = socket.readable(CHANNEL.stderr);
  const error = socket.readable(CHANNEL.error);
  await opened;
  const outputs = [pump(stdout, options.stdout), pump(stderr, options.stderr ?? options.stdout)];
  const status = readAll(error);
  if (options.stdin) {
    const input = options.stdin;
    input.on('data', (chunk: Buffer) => socket.send(CHANNEL.stdin, chunk));
    // v5 can say "stdin is closed" without closing the connection.
    input.on('end', () => ws.protocol === 'v5.channel.k8s.io' && ws.send(Buffer.from([255, CHANNEL.stdin])));
  }
  if (options.tty) sendResizes(options, (size) => socket.send(CHANNEL.resize, Buffer.from(JSON.stringify({ Width: size.width, Height: size.height }))));
  await socket.closed;
  await Promise.all(outputs);
  options.stdin?.removeAllListeners('data');
  return exitCodeOf(await status, ws.protocol.startsWith('v4') || ws.protocol.startsWith('v5'));
}

function sendResizes(options: RemoteCommandClientOptions, send: (size: TerminalSize) => void): void {
  if (options.initialSize) send(options.initialSize);
  options.resizes?.on('resize', send);
}

/** The exit code a status carries: 0 for success, the ExitCode cause for NonZeroExitCode. */
export function exitCodeOf(status: string, structured: boolean): number {
  if (status.trim() === '') return 0;
  if (!structured) {
    const code = /non-zero exit code: (\d+)/.exec(status)?.[1];
    if (code) return Number(code);
    throw new Error(status);
  }
  const parsed = JSON.parse(status) as { status?: string; reason?: string; message?: string; details?: { causes?: Array<{ reason?: string; message?: string }> } };
  if (parsed.status === 'Success') return 0;
  const cause = parsed.details?.causes?.find((c) => c.reason === 'ExitCode');
  if (parsed.reason === 'NonZeroExitCode' && cause?.message) return Number(cause.message);
  throw new Error(parsed.message ?? status);
}

/** A port-forward session: each `connect` is one forwarded TCP connection. */
export interface PortForwardSession {
  connect(port: number): Promise<Duplex>;
  close(): void;
}

export async function openPortForward(url: string, transport: Transport): Promise<PortForwardSession> {
  if (transport === 'websocket') {
    return {
      // WebSocket forwarding has no multiplexing: one connection per forwarded connection.
      async connect(port) {
        const { ws, opened } = openWebSocket(`${url}?port=${port}`, ['v4.channel.k8s.io']);
        const socket = new ChannelSocket(ws);
        const data = skipPreamble(socket.readable(0));
        const error = skipPreamble(socket.readable(1));
        await opened;
        const connection = Duplex.from({ readable: data, writable: socket.writable(0) });
        error.on('data', (chunk: Buffer) => connection.destroy(new Error(chunk.toString())));
        socket.closed.then(() => connection.push(null), () => undefined);
        return connection;
      },
      close() {},
    };
  }
  const { connection } = await upgradeToSpdy(url, ['portforward.k8s.io']);
  let requestId = 0;
  return {
    async connect(port) {
      const id = String(requestId++);
      const error = connection.openStream({ streamtype: 'error', port: String(port), requestid: id });
      error.end();
      const data = connection.openStream({ streamtype: 'data', port: String(port), requestid: id });
      const accepted = data.accepted();
      // The failure can arrive with the reply itself; the caller listens for it only once
      // connect() has resolved, so it is raised after that.
      error.on('data', (chunk: Buffer) => {
        const failure = new Error(chunk.toString());
        void accepted.then(() => setImmediate(() => data.destroy(failure)));
      });
      await accepted;
      return data;
    },
    close: () => connection.close(),
  };
}

/** Drop the 2-byte port each WebSocket port-forward channel starts with. */
function skipPreamble(stream: Readable): Readable {
  let skipped = 0;
  const out = new PassThrough();
  stream.on('data', (chunk: Buffer) => {
    const rest = chunk.subarray(Math.max(0, 2 - skipped));
    skipped += chunk.length;
    if (rest.length > 0) out.write(rest);
  });
  stream.on('end', () => out.end());
  return out;
}

/** HTTP upgrade to SPDY/3.1, offering `protocols`; the connection and the protocol the server chose. */
function upgradeToSpdy(url: string, protocols: string[]): Promise<{ connection: SpdyConnection; protocol: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': protocols.join(', ') },
    });
    req.on('upgrade', (res, socket, head) => {
      if (head.length > 0) socket.unshift(head);
      const protocol = String(res.headers['x-stream-protocol-version'] ?? '');
      resolve({ connection: new SpdyConnection(socket, false), protocol });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => reject(new Error(`upgrade refused: ${res.statusCode} ${body.trim()}`)));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket and the promise of its opening; listeners should be attached before awaiting. */
function openWebSocket(url: string, protocols: string[]): { ws: WebSocket; opened: Promise<void> } {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => reject(new Error(`upgrade refused: ${res.statusCode} ${body.trim()}`)));
    });
    ws.once('error', reject);
  });
  return { ws, opened };
}

/** Copy a stream into a writer (or drain it); resolves at its end. */
function pump(source: Readable | undefined, target: Writable | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!source) return resolve();
    if (target) source.pipe(target, { end: false });
    else source.resume();
    source.on('end', resolve);
    source.on('close', resolve);
    source.on('error', () => resolve());
  });
}

/** The whole content of the error stream; a connection lost before its end is a failure. */
function readAll(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    stream.on('end', () => resolve(text));
    stream.on('close', () => reject(new Error('the connection closed before the command reported its status')));
  });
}
