/**
 * The connections a pull's requests travel on: per endpoint, the TLS settings its hosts.toml
 * gives (extra CAs, a client certificate, no verification) and the proxy the environment
 * names for its URL. Each distinct combination gets one undici dispatcher, kept for the
 * next pull so connections are reused; without either, fetch's own default is used.
 */
import { createHash } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { Agent, ProxyAgent, type Dispatcher } from 'undici';
import { proxyFor, type ProxyEnv } from './proxy-env.js';

/** TLS settings for one endpoint, with the certificate files already read (PEM text). */
export interface TlsMaterial {
  /** CA certificates trusted besides the system's. */
  ca: string[];
  /** Client certificates with their keys. */
  certs: Array<{ cert: string; key: string }>;
  /** True only when the configuration says so. */
  skipVerify: boolean;
  /** How long to wait for a connection, when configured. */
  dialTimeoutMs?: number;
}

/** Chooses the dispatcher for a URL; the registry session asks it for every request. */
export interface Transport {
  dispatcherFor(url: string, tls: TlsMaterial | undefined): Dispatcher | undefined;
}

/** Distinct TLS and proxy combinations kept at once; more means a configuration churns. */
const MAX_DISPATCHERS = 32;

export class RegistryTransport implements Transport {
  private readonly dispatchers = new Map<string, Dispatcher>();

  constructor(private readonly proxy: ProxyEnv) {}

  dispatcherFor(url: string, tls: TlsMaterial | undefined): Dispatcher | undefined {
    const target = new URL(url);
    const proxy = proxyFor(target, this.proxy);
    if (!proxy && !tls) return undefined;
    // A tunnel is needed for https; plain http goes to the proxy as an absolute URL, which
    // is what proxies that allow CONNECT only to port 443 expect.
    const tunnel = target.protocol === 'https:';
    const key = createHash('sha256').update(JSON.stringify({ proxy, tunnel, tls })).digest('hex');
    const cached = this.dispatchers.get(key);
    if (cached) {
      this.dispatchers.delete(key);
      this.dispatchers.set(key, cached);
      return cached;
    }
    const dispatcher = proxy ? new ProxyAgent({ uri: proxy, proxyTunnel: tunnel, requestTls: tlsOptions(tls) }) : new Agent({ connect: tlsOptions(tls) });
    this.dispatchers.set(key, dispatcher);
    this.evictOldest();
    return dispatcher;
  }

  /** Close every dispatcher, letting requests under way finish. */
  async close(): Promise<void> {
    const all = [...this.dispatchers.values()];
    this.dispatchers.clear();
    await Promise.allSettled(all.map((d) => d.close()));
  }

  private evictOldest(): void {
    while (this.dispatchers.size > MAX_DISPATCHERS) {
      const [oldestKey, oldest] = this.dispatchers.entries().next().value!;
      this.dispatchers.delete(oldestKey);
      // close() waits for the requests still using it, so a pull under way is not cut.
      void oldest.close().catch(() => undefined);
    }
  }
}

/**
 * Node's options for the TLS connection. Configured CAs are added to the system's roots
 * (Node would otherwise trust only them), so a redirect to a CDN still verifies.
 */
function tlsOptions(tls: TlsMaterial | undefined): { ca?: string[]; cert?: string[]; key?: string[]; rejectUnauthorized?: boolean; timeout?: number } {
  if (!tls) return {};
  return {
    ...(tls.ca.length > 0 ? { ca: [...rootCertificates, ...tls.ca] } : {}),
    ...(tls.certs.length > 0 ? { cert: tls.certs.map((c) => c.cert), key: tls.certs.map((c) => c.key) } : {}),
    ...(tls.skipVerify ? { rejectUnauthorized: false } : {}),
    ...(tls.dialTimeoutMs ? { timeout: tls.dialTimeoutMs } : {}),
  };
}
