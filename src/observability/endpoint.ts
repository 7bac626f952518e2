import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { MetricsAddress } from '../config/config.js';
import { FailedPreconditionError, errnoCode, messageOf } from '../errors.js';
import { setObserver } from './hooks.js';
import { createDaemonMetrics, type StateLists } from './prometheus.js';

/**
 * The daemon's own Prometheus endpoint (`[metrics] address`): plain HTTP, `GET /metrics` and
 * nothing else. A scrape is one small GET, so every other request is answered at once and
 * every connection is short-lived: no body is ever read, and slow or idle clients are cut off.
 */

export interface EndpointLimits {
  /** Time for a client to send its request headers. */
  headersTimeoutMs: number;
  /** Time for a whole request (at least headersTimeoutMs); a scrape is answered in milliseconds. */
  requestTimeoutMs: number;
  /** How often Node checks the two above (its default, 30 s, would let a stalled client stay that long). */
  checkIntervalMs: number;
  /** A connection with no traffic for this long is closed, whatever state it is in. */
  idleTimeoutMs: number;
  /** How long a connection is kept between requests (Prometheus scrapes every 15 s or more, and reconnects). */
  keepAliveTimeoutMs: number;
  /** Scrapers are few: connections beyond this many are refused. */
  maxConnections: number;
  /** Request headers of a scrape are a few hundred bytes. */
  maxHeaderBytes: number;
}

export const ENDPOINT_LIMITS: EndpointLimits = {
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  checkIntervalMs: 1_000,
  idleTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 32,
  maxHeaderBytes: 8 * 1024,
};

export interface MetricsEndpoint {
  /** The port listened on: the configured one (tests may ask for 0, an ephemeral port). */
  port: number;
  /** Stop observing and stop serving, dropping open connections. */
  close(): Promise<void>;
}

/**
 * Build the metrics, listen on `address`, and only then install the observer that feeds them,
 * so a daemon whose endpoint cannot listen observes nothing. Pods and containers are counted
 * from `lists` at each scrape.
 */
export async function startMetricsEndpoint(address: MetricsAddress, lists: StateLists, log: Logger, limits = ENDPOINT_LIMITS): Promise<MetricsEndpoint> {
  const metrics = createDaemonMetrics(lists, firstFailureLogger(log));
  const server = metricsServer(metrics.registry, limits, log);
  await listen(server, address);
  server.on('error', (err) => log.error({ err }, 'metrics endpoint error'));
  setObserver(metrics.observer);
  const { port } = server.address() as AddressInfo;
  log.info({ address: hostPort(address.host, port) }, 'metrics endpoint listening');
  return {
    port,
    async close() {
      setObserver(undefined);
      await closeServer(server);
    },
  };
}

function metricsServer(registry: Registry, limits: EndpointLimits, log: Logger): http.Server {
  const options: http.ServerOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
  };
  const server = http.createServer(options, (req, res) => void serveRequest(registry, req, res, log));
  server.maxConnections = limits.maxConnections;
  // With no 'timeout' listener, an idle socket is destroyed.
  server.setTimeout(limits.idleTimeoutMs);
  return server;
}

/** `GET`/`HEAD /metrics` (a query string is ignored): the registry's text; 404 or 405 otherwise. */
async function serveRequest(registry: Registry, req: http.IncomingMessage, res: http.ServerResponse, log: Logger): Promise<void> {
  const path = (req.url ?? '').split('?', 1)[0];
  // Node would read and discard a body left unread before reusing the connection: closing
  // it after the answer reads no body at all.
  if (hasBody(req)) res.shouldKeepAlive = false;
  if (path !== '/metrics') return plain(res, 404, 'not found: this server serves /metrics only\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return plain(res, 405, 'method not allowed: GET or HEAD\n');
  }
  let text: string;
  try {
    text = await registry.metrics();
  } catch (err) {
    log.error({ err }, 'cannot collect metrics');
    return plain(res, 500, 'cannot collect metrics\n');
  }
  res.writeHead(200, { 'Content-Type': registry.contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(req.method === 'HEAD' ? undefined : text);
}

function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function plain(res: http.ServerResponse, status: number, text: string): void {
  res.shouldKeepAlive = false;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function listen(server: http.Server, address: MetricsAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      const where = hostPort(address.host, address.port);
      const hint =
        errnoCode(err) === 'EADDRINUSE'
          ? `something else listens on ${where}: pick another port in [metrics] address`
          : 'set [metrics] address to an address of this host, or remove it';
      reject(new FailedPreconditionError(`metrics endpoint cannot listen on ${where}: ${messageOf(err)}`, { hint, cause: err }));
    };
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // A scraper's kept-alive connection would hold close() until it idles out.
    server.closeAllConnections();
  });
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A failed observation is a tscri bug in the metrics code; the first is logged with its
 * cause, and the rest are not, since the same bug would fail every call.
 */
function firstFailureLogger(log: Logger): (err: unknown) => void {
  let logged = false;
  return (err) => {
    if (logged) return;
    logged = true;
    log.error({ err }, 'metrics observation failed (a tscri bug); further failures are not logged');
  };
}
