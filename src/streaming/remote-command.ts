import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex, Readable, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { StreamIO } from '../oci/attach-socket.js';
import type { ResizeSource, TerminalSize } from '../oci/runtime.js';
import { SpdyConnection, type SpdyStream } from './spdy.js';
import { statusMessage, type CommandResult } from './status.js';
import { ChannelSocket } from './websocket.js';

/** What the client asked to be connected (from the stored Exec or Attach request). */
export interface RemoteCommandOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** The SPDY versions of the remote command protocol, newest first. */
export const SPDY_REMOTE_COMMAND_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
/** The WebSocket subprotocols, newest first ("" means the client named none). */
export const WEBSOCKET_REMOTE_COMMAND_PROTOCOLS = [
  'v5.channel.k8s.io',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
  'channel.k8s.io',
  'base64.channel.k8s.io',
];

/** How long a client gets to open the streams it asked for. */
const STREAM_CREATION_TIMEOUT_MS = 30_000;

/**
 * A connected exec or attach: the process side sees plain streams and resize events, and
 * reports how it ended with `finish`, which writes the status and closes the connection.
 */
/** Terminal sizes from the client, the latest one kept for late subscribers. */
export class TerminalSizes extends EventEmitter implements ResizeSource {
  latest: TerminalSize | undefined;

  update(size: TerminalSize): void {
    this.latest = size;
    this.emit('resize', size);
  }
}

export interface RemoteCommandSession {
  io: StreamIO;
  resizes: TerminalSizes;
  /** Resolves when the client went away (so the process side can stop relaying). */
  clientGone: Promise<void>;
  finish(result: CommandResult): Promise<void>;
}

/** Pick the first protocol the client offers that we speak; "" when it offers none. */
export function negotiate(offered: string[], supported: string[]): string | undefined {
  if (offered.length === 0) return '';
  return offered.find((p) => supported.includes(p));
}

/** The X-Stream-Protocol-Version values of a request (Node joins repeated headers with ", "). */
export function offeredProtocols(req: IncomingMessage): string[] {
  const header = req.headers['x-stream-protocol-version'];
  const values = Array.isArray(header) ? header : header ? [header] : [];
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}

/**
 * Take the streams of a SPDY remote command connection. The error stream always comes (v2+);
 * stdin, stdout and stderr as requested, stderr not with a tty (it is the same terminal), and
 * a resize stream with a tty from v3 on.
 */
export async function spdySession(connection: SpdyConnection, protocol: string, options: RemoteCommandOptions): Promise<RemoteCommandSession> {
  const expected = new Set(['error']);
  if (options.stdin) expected.add('stdin');
  if (options.stdout) expected.add('stdout');
  if (options.stderr && !options.tty) expected.add('stderr');
  const version = protocolVersion(protocol);
  if (options.tty && version >= 3) expected.add('resize');

  const streams = await new Promise<Map<string, SpdyStream>>((resolve, reject) => {
    const found = new Map<string, SpdyStream>();
    const timer = setTimeout(() => reject(new Error(`timed out waiting for streams ${[...expected].filter((t) => !found.has(t)).join(', ')}`)), STREAM_CREATION_TIMEOUT_MS);
    connection.on('stream', (stream) => {
      const type = stream.header('streamType') ?? '';
      stream.reply();
      found.set(type, stream);
      if ([...expected].every((t) => found.has(t))) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    connection.on('close', () => {
      clearTimeout(timer);
      reject(new Error('client closed the connection before opening its streams'));
    });
  });

  const resizes = new TerminalSizes();
  const resizeStream = streams.get('resize');
  if (resizeStream) decodeResizes(resizeStream, resizes);
  const errorStream = streams.get('error')!;
  return {
    io: {
      ...(streams.has('stdin') ? { stdin: streams.get('stdin') } : {}),
      ...(streams.has('stdout') ? { stdout: streams.get('stdout') } : {}),
      ...(streams.has('stderr') ? { stderr: streams.get('stderr') } : {}),
    },
    resizes,
    clientGone: new Promise((resolve) => connection.on('close', resolve)),
    async finish(result) {
      const message = statusMessage(result, version >= 4);
      await endAll([streams.get('stdout'), streams.get('stderr')]);
      await new Promise<void>((resolve) => errorStream.end(message ?? '', resolve));
      connection.close();
    },
  };
}

function protocolVersion(protocol: string): number {
  const match = /^v(\d+)\./.exec(protocol);
  return match ? Number(match[1]) : 1;
}

/** Streams of a WebSocket remote command connection, one channel each. */
export function webSocketSession(ws: WebSocket, options: RemoteCommandOptions): RemoteCommandSession {
  const socket = new ChannelSocket(ws);
  const version = protocolVersion(ws.protocol);
  const resizes = new TerminalSizes();
  const stdin = options.stdin ? socket.readable(CHANNEL.stdin) : undefined;
  decodeResizes(socket.readable(CHANNEL.resize), resizes);
  const stdout = options.stdout ? socket.writable(CHANNEL.stdout) : undefined;
  const stderr = options.stderr && !options.tty ? socket.writable(CHANNEL.stderr) : undefined;
  // An empty message on the lowest writable channel tells the client the streams are ready.
  socket.send(options.stdout ? CHANNEL.stdout : options.stderr ? CHANNEL.stderr : CHANNEL.error, Buffer.alloc(0));
  return {
    io: { ...(stdin ? { stdin } : {}), ...(stdout ? { stdout } : {}), ...(stderr ? { stderr } : {}) },
    resizes,
    clientGone: socket.closed,
    async finish(result) {
      await endAll([stdout, stderr]);
      const message = statusMessage(result, version >= 4);
      if (message !== undefined) await socket.sendAsync(CHANNEL.error, Buffer.from(message));
      socket.close();
    },
  };
}

/** Channel numbers of the remote command protocol over WebSocket. */
export const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4 } as const;

/**
 * Terminal sizes arrive as JSON objects, `{"Width":80,"Height":24}`, one after another (Go's
 * json.Encoder puts a newline after each, but do not rely on it).
 */
function decodeResizes(stream: Readable | Duplex, resizes: TerminalSizes): void {
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    for (;;) {
      const end = buffered.indexOf('}');
      if (end < 0) break;
      const text = buffered.slice(buffered.indexOf('{'), end + 1);
      buffered = buffered.slice(end + 1);
      try {
        const size = JSON.parse(text) as { Width?: number; Height?: number };
        if (size.Width && size.Height) resizes.update({ width: size.Width, height: size.Height });
      } catch {
        // A garbled size is dropped, not fatal.
      }
    }
  });
  stream.on('error', () => undefined);
}

async function endAll(streams: Array<Writable | Duplex | undefined>): Promise<void> {
  await Promise.all(
    streams.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (!s || s.writableEnded) return resolve();
          s.end(() => resolve());
        }),
    ),
  );
}

