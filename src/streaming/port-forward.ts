import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { messageOf } from '../errors.js';
import type { SpdyConnection, SpdyStream } from './spdy.js';
import { ChannelSocket } from './websocket.js';

export const SPDY_PORT_FORWARD_PROTOCOLS = ['portforward.k8s.io'];
export const WEBSOCKET_PORT_FORWARD_PROTOCOLS = ['v4.channel.k8s.io', 'v4.base64.channel.k8s.io', 'channel.k8s.io', 'base64.channel.k8s.io'];

/** Opens a connection to `port` inside the pod. */
export type Dialer = (port: number) => Promise<Duplex>;

/**
 * Port forwarding over SPDY: the client opens a data and an error stream per connection it
 * forwards, both carrying the port and a request id; once both exist the port is dialed and
 * the data stream spliced to it. A failed dial is reported on the error stream.
 */
export function serveSpdyPortForward(connection: SpdyConnection, allowedPorts: number[], dial: Dialer, log: Logger): void {
  const pairs = new Map<string, { data?: SpdyStream; error?: SpdyStream }>();
  connection.on('stream', (stream) => {
    stream.reply();
    const requestId = stream.header('requestID') ?? '';
    const pair = pairs.get(requestId) ?? {};
    const type = stream.header('streamType');
    if (type === 'data') pair.data = stream;
    else if (type === 'error') pair.error = stream;
    else return void stream.destroy();
    pairs.set(requestId, pair);
    if (pair.data && pair.error) {
      pairs.delete(requestId);
      void forward(Number(stream.header('port')), pair.data, pair.error, allowedPorts, dial, log);
    }
  });
}

async function forward(port: number, data: Duplex, error: Duplex, allowed: number[], dial: Dialer, log: Logger): Promise<void> {
  try {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port "${port}"`);
    if (allowed.length > 0 && !allowed.includes(port)) throw new Error(`port ${port} was not requested for this session`);
    const target = await dial(port);
    await splice(data, target);
    error.end();
  } catch (err) {
    log.info({ port, err }, 'port forward failed');
    error.end(`error forwarding port ${port}: ${messageOf(err)}`);
    data.end();
  }
}

/**
 * Port forwarding over WebSocket: the ports come with the request, each gets a data channel
 * (2n) and an error channel (2n+1), and both first carry the port as 16-bit little endian.
 */
export function serveWebSocketPortForward(ws: WebSocket, ports: number[], dial: Dialer, log: Logger): void {
  const socket = new ChannelSocket(ws);
  const forwards = ports.map(async (port, i) => {
    const preamble = Buffer.alloc(2);
    preamble.writeUInt16LE(port);
    socket.send(2 * i, preamble);
    socket.send(2 * i + 1, preamble);
    const data = socket.readable(2 * i);
    try {
      const target = await dial(port);
      // The client gone, nothing reads what the pod sends: the connection to the pod goes too.
      void socket.closed.then(() => target.destroy());
      const out = socket.writable(2 * i);
      target.pipe(out);
      data.pipe(target);
      await new Promise<void>((resolve) => {
        target.once('close', resolve);
        target.once('end', resolve);
      });
    } catch (err) {
      log.info({ port, err }, 'port forward failed');
      socket.send(2 * i + 1, Buffer.from(`error forwarding port ${port}: ${messageOf(err)}`));
    }
  });
  void Promise.allSettled(forwards).then(() => socket.close());
}

/** Copy both ways until both directions ended (or either failed). */
function splice(a: Duplex, b: Duplex): Promise<void> {
  return new Promise((resolve) => {
    let ended = 0;
    const done = (): void => {
      if (++ended === 2) resolve();
    };
    a.pipe(b).on('finish', done);
    b.pipe(a).on('finish', done);
    const fail = (): void => {
      a.destroy();
      b.destroy();
      resolve();
    };
    a.on('error', fail);
    b.on('error', fail);
  });
}
