import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  SPDY_PORT_FORWARD_PROTOCOLS,
  WEBSOCKET_PORT_FORWARD_PROTOCOLS,
  serveSpdyPortForward,
  serveWebSocketPortForward,
  type Dialer,
} from './port-forward.js';
import {
  SPDY_REMOTE_COMMAND_PROTOCOLS,
  WEBSOCKET_REMOTE_COMMAND_PROTOCOLS,
  negotiate,
  offeredProtocols,
  spdySession,
  webSocketSession,
  type RemoteCommandOptions,
  type RemoteCommandSession,
} from './remote-command.js';
import { SpdyConnection } from './spdy.js';
import { RequestCache } from './tokens.js';

/** A streaming request between its RPC and the client's connection. */
export type StreamRequest =
  | ({ kind: 'exec'; containerId: string; cmd: string[] } & RemoteCommandOptions & PodNames)
  | ({ kind: 'attach'; containerId: string } & RemoteCommandOptions & PodNames)
  | ({ kind: 'portforward'; sandboxId: string; ports: number[] } & PodNames);

/** The pod a stream belongs to, for every log line of its session. */
export interface PodNames {
  podName: string;
  podNamespace: string;
}

/** What runs behind a connected stream (the container and sandbox services). */
export interface StreamingBackend {
  exec(request: Extract<StreamRequest, { kind: 'exec' }>, session: RemoteCommandSession): Promise<void>;
  attach(request: Extract<StreamRequest, { kind: 'attach' }>, session: RemoteCommandSession): Promise<void>;
  dialer(sandboxId: string): Dialer;
}

/**
 * The streaming server kubelet and crictl connect to for exec, attach and port forwarding:
 * RPCs store the request under a single-use token and return a URL here; the client then
 * upgrades to SPDY/3.1 or WebSocket on that URL.
 */
export class StreamingServer {
  private readonly server = http.createServer((req, res) => this.onPlainRequest(req, res));
  private readonly requests: RequestCache<StreamRequest>;
  private readonly websockets = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  /** Upgraded connections are the server's no more; they are kept here so close() can end them. */
  private readonly upgraded = new Set<Duplex>();
  private baseUrl = '';

  constructor(
    private readonly address: string,
    private readonly port: number,
    tokenTtlSeconds: number,
    private readonly backend: StreamingBackend,
    private readonly log: Logger,
  ) {
    this.requests = new RequestCache(tokenTtlSeconds * 1000);
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, this.address, () => resolve());
    });
    const { port } = this.server.address() as AddressInfo;
    const host = this.address.includes(':') ? `[${this.address}]` : this.address;
    this.baseUrl = `http://${host}:${port}`;
    this.log.info({ url: this.baseUrl }, 'streaming server listening');
  }

  /** Store a request and return the URL its client must connect to. */
  urlFor(request: StreamRequest): string {
    return `${this.baseUrl}/${request.kind}/${this.requests.insert(request)}`;
  }

  async close(): Promise<void> {
    for (const socket of this.upgraded) socket.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private onPlainRequest(req: IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(400, { 'content-type': 'text/plain' }).end('this endpoint needs an upgrade to SPDY/3.1 or WebSocket\n');
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    this.upgraded.add(socket);
    socket.once('close', () => this.upgraded.delete(socket));
    const match = /^\/(exec|attach|portforward)\/([\w-]+)/.exec(req.url ?? '');
    const request = match ? this.requests.consume(match[2]!) : undefined;
    if (!match || !request || request.kind !== match[1]) {
      return refuse(socket, 404, 'unknown, used or expired streaming token');
    }
    const ids = 'containerId' in request ? { containerId: request.containerId } : { podSandboxId: request.sandboxId };
    const log = this.log.child({ stream: request.kind, ...ids, podName: request.podName, podNamespace: request.podNamespace });
    const upgrade = (req.headers.upgrade ?? '').toLowerCase();
    if (upgrade === 'websocket') return this.acceptWebSocket(req, socket, head, request, log);
    if (upgrade.startsWith('spdy/3')) return this.acceptSpdy(req, socket, head, request, log);
    refuse(socket, 400, `unsupported upgrade "${req.headers.upgrade ?? ''}"`);
  }

  private acceptSpdy(req: IncomingMessage, socket: Duplex, head: Buffer, request: StreamRequest, log: Logger): void {
    const supported = request.kind === 'portforward' ? SPDY_PORT_FORWARD_PROTOCOLS : SPDY_REMOTE_COMMAND_PROTOCOLS;
    const protocol = negotiate(offeredProtocols(req), supported);
    if (protocol === undefined) return refuse(socket, 403, `no common protocol; supported: ${supported.join(', ')}`);
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
        (protocol ? `X-Stream-Protocol-Version: ${protocol}\r\n` : '') +
        '\r\n',
    );
    if (head.length > 0) socket.unshift(head);
    const connection = new SpdyConnection(socket);
    connection.on('error', (err) => log.debug({ err }, 'spdy connection error'));
    log.info({ protocol, transport: 'spdy' }, 'stream connected');
    if (request.kind === 'portforward') {
      serveSpdyPortForward(connection, request.ports, this.backend.dialer(request.sandboxId), log);
      return;
    }
    void spdySession(connection, protocol, request).then(
      (session) => this.run(request, session, log),
      (err: unknown) => {
        log.info({ err }, 'streams never came');
        connection.close();
      },
    );
  }

  private acceptWebSocket(req: IncomingMessage, socket: Duplex, head: Buffer, request: StreamRequest, log: Logger): void {
    const supported = request.kind === 'portforward' ? WEBSOCKET_PORT_FORWARD_PROTOCOLS : WEBSOCKET_REMOTE_COMMAND_PROTOCOLS;
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
    const protocol = negotiate(offered, supported);
    if (protocol === undefined) return refuse(socket, 403, `no common protocol; supported: ${supported.join(', ')}`);
    this.websockets.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      log.info({ protocol, transport: 'websocket' }, 'stream connected');
      if (request.kind === 'portforward') {
        const ports = portsFromQuery(req, request.ports);
        serveWebSocketPortForward(ws, ports, this.backend.dialer(request.sandboxId), log);
        return;
      }
      void this.run(request, webSocketSession(ws, request), log);
    });
  }

  private async run(request: Exclude<StreamRequest, { kind: 'portforward' }>, session: RemoteCommandSession, log: Logger): Promise<void> {
    try {
      if (request.kind === 'exec') await this.backend.exec(request, session);
      else await this.backend.attach(request, session);
    } catch (err) {
      log.info({ err }, 'stream failed');
      await session.finish({ error: err instanceof Error ? err : new Error(String(err)) });
    }
  }
}

/** WebSocket port forwarding names its ports in the query; they must be among the requested ones. */
function portsFromQuery(req: IncomingMessage, requested: number[]): number[] {
  const query = new URL(req.url ?? '/', 'http://localhost').searchParams.getAll('port');
  const ports = query.flatMap((p) => p.split(',')).map(Number).filter((p) => Number.isInteger(p) && p > 0 && p < 65536);
  const allowed = requested.length > 0 ? ports.filter((p) => requested.includes(p)) : ports;
  return allowed.length > 0 ? allowed : requested;
}

/** Answer an upgrade request with an error status and close. */
function refuse(socket: Duplex, status: number, message: string): void {
  const reason = http.STATUS_CODES[status] ?? 'Error';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message) + 1}\r\nConnection: close\r\n\r\n${message}\n`);
}
