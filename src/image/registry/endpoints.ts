/**
 * Where a pull may fetch from, in order, and how to reach each place. The node's
 * configuration gives three sources, tried in this order:
 *
 *   1. the `[host."…"]` tables of the registry's hosts.toml (config_path), in file order;
 *   2. the `[registry.mirrors."<registry>"] endpoints` of tscri's own config;
 *   3. the server: hosts.toml's `server`, or else the registry itself.
 *
 * Hosts that cannot `pull` are left out; hosts without `resolve` are asked only for content
 * by digest, never to turn a tag into a digest.
 */
import type { Logger } from 'pino';
import type { RegistryMirror } from '../../config/config.js';
import { apiHostOf } from '../reference.js';
import type { Credentials } from './auth.js';
import { authKey, AuthFile, type AuthEntries } from './auth-file.js';
import { loadHostsFor, tlsMaterialOf } from './hosts-dir.js';
import type { HostSettings, HostsFile } from './hosts-file.js';
import type { TlsMaterial } from './transport.js';

/** One place an image can be fetched from: a configured host, a mirror or the registry itself. */
export interface Endpoint {
  /** Base URL without trailing slash, for messages and for keeping its tokens apart. */
  url: string;
  /** Anything but the server: request credentials never go there. */
  isMirror: boolean;
  /** Where API paths start; `${url}/v2` when unset. */
  apiRoot?: string;
  /** False for a host without the resolve capability: it is asked for digests only. */
  resolves?: boolean;
  /** Extra request headers from hosts.toml. */
  headers?: Record<string, string[]>;
  /** TLS settings from hosts.toml, certificates read. */
  tls?: TlsMaterial;
  /** From the auth file, for when the request brings none (or this is not the server). */
  credentials?: Credentials;
}

/** An endpoint with the hosts.toml settings it came from, before its files are read. */
export interface PlannedEndpoint extends Endpoint {
  settings?: HostSettings;
}

/**
 * The endpoints for `domain`, in the order above. Without a hosts.toml the server is reached
 * over https, except loopback registries, which (as Docker treats them) are plain http;
 * mirrors use the scheme they are configured with.
 */
export function endpointsFor(domain: string, mirrors: Record<string, RegistryMirror>, hosts?: HostsFile): PlannedEndpoint[] {
  const pulls = (settings: HostSettings) => settings.capabilities.includes('pull');
  const fromFile: PlannedEndpoint[] = (hosts?.hosts ?? []).filter(pulls).map((host) => ({
    url: host.url,
    apiRoot: host.apiRoot,
    isMirror: true,
    resolves: host.capabilities.includes('resolve'),
    headers: host.headers,
    settings: host,
  }));
  const configured = (mirrors[domain]?.endpoints ?? []).map((url) => ({ url: url.replace(/\/+$/, ''), isMirror: true }));
  const server = hosts?.server;
  if (server && !pulls(server)) return [...fromFile, ...configured];
  const url = server?.url ?? defaultServer(domain, server);
  const planned: PlannedEndpoint = { url, isMirror: false };
  if (server) {
    Object.assign(planned, { apiRoot: server.apiRoot ?? `${url}/v2`, resolves: server.capabilities.includes('resolve'), headers: server.headers, settings: server });
  }
  return [...fromFile, ...configured, planned];
}

/** https, but plain http for a loopback registry unless hosts.toml sets up TLS for it. */
function defaultServer(domain: string, server: HostSettings | undefined): string {
  const host = apiHostOf(domain);
  const tls = server && (server.ca.length > 0 || server.client.length > 0 || server.skipVerify !== undefined);
  return `${isLoopback(host) && !tls ? 'http' : 'https'}://${host}`;
}

function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

export interface RegistryHostsConfig {
  mirrors: Record<string, RegistryMirror>;
  /** The hosts directory; "" for none. */
  configPath: string;
  /** The auth file; "" for none. */
  authFile: string;
}

/**
 * The node's registry configuration as one pull needs it: the endpoints for a registry with
 * their certificates read and their auth-file credentials found. Every file is read again
 * for each pull (the auth file only when it changed), and the settings are asked for anew,
 * so a reloaded configuration applies to the next pull.
 */
export class RegistryHosts {
  private authFile: AuthFile | undefined;

  constructor(private readonly settings: () => RegistryHostsConfig) {}

  /** The endpoints for `domain`; a broken hosts.toml or auth file fails the pull, and is logged. */
  async endpointsFor(domain: string, log: Logger): Promise<Endpoint[]> {
    const config = this.settings();
    try {
      const hosts = await loadHostsFor(config.configPath, domain);
      if (hosts) log.debug({ file: hosts.file }, 'registry hosts configuration');
      const auths = (await this.authFileAt(config.authFile)?.entries()) ?? new Map<string, Credentials>();
      return await Promise.all(endpointsFor(domain, config.mirrors, hosts).map((planned) => this.complete(planned, domain, auths, hosts, config.configPath)));
    } catch (err) {
      log.error({ registry: domain, err }, 'registry configuration refused');
      throw err;
    }
  }

  /** The auth file at `file`, keeping its cache while the setting stays the same. */
  private authFileAt(file: string): AuthFile | undefined {
    if (!file) return undefined;
    if (this.authFile?.file !== file) this.authFile = new AuthFile(file);
    return this.authFile;
  }

  private async complete(planned: PlannedEndpoint, domain: string, auths: AuthEntries, hosts: HostsFile | undefined, configPath: string): Promise<Endpoint> {
    const { settings, ...endpoint } = planned;
    if (settings && hosts) {
      const tls = await tlsMaterialOf(settings, configPath, hosts.file);
      if (tls) endpoint.tls = tls;
    }
    const credentials = auths.get(authKey(new URL(endpoint.url).host)) ?? (endpoint.isMirror ? undefined : auths.get(authKey(domain)));
    if (credentials) endpoint.credentials = credentials;
    return endpoint;
  }
}
