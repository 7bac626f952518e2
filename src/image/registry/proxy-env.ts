/**
 * The proxy settings of the environment, as Go programs (containerd, the kubelet) read them,
 * so one node-wide setting means the same to every component: HTTPS_PROXY for https URLs,
 * HTTP_PROXY for http URLs (each upper case first, then lower case), and NO_PROXY naming
 * what goes direct. localhost and loopback addresses always go direct.
 */
import { BlockList, isIP } from 'node:net';

export interface ProxyEnv {
  /** Proxy URL for http:// targets. */
  http?: string;
  /** Proxy URL for https:// targets. */
  https?: string;
  noProxy: NoProxy;
  /** What was set but cannot be used, for the daemon to log once. */
  problems: string[];
}

/** NO_PROXY compiled: `*`, IPs and CIDRs, domains, each optionally with a port. */
export interface NoProxy {
  all: boolean;
  ips: BlockList;
  /** IP entries with a port: `ip` and `port`. */
  ipPorts: Array<{ ip: string; port: string }>;
  domains: Array<{ suffix: string; alsoExact: boolean; port: string }>;
}

export const NO_PROXY_ENV: ProxyEnv = { noProxy: compileNoProxy(''), problems: [] };

/** Read the proxy variables of `env` (the daemon's, once at start). */
export function proxyEnvFrom(env: NodeJS.ProcessEnv): ProxyEnv {
  const problems: string[] = [];
  const proxyUrl = (upper: string, lower: string): string | undefined => {
    const name = env[upper] ? upper : lower;
    const value = env[name]?.trim();
    if (!value) return undefined;
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
    try {
      const url = new URL(withScheme);
      if (url.protocol === 'http:' || url.protocol === 'https:') return url.href;
      problems.push(`${name}: only http:// and https:// proxies are supported, not ${url.protocol}`);
    } catch {
      problems.push(`${name}: not a URL`);
    }
    return undefined;
  };
  const settings: ProxyEnv = { noProxy: compileNoProxy(env.NO_PROXY ?? env.no_proxy ?? ''), problems };
  const http = proxyUrl('HTTP_PROXY', 'http_proxy');
  const https = proxyUrl('HTTPS_PROXY', 'https_proxy');
  if (http) settings.http = http;
  if (https) settings.https = https;
  return settings;
}

/** The proxy URL to reach `target` through, or undefined to go direct. */
export function proxyFor(target: URL, env: ProxyEnv): string | undefined {
  const proxy = target.protocol === 'https:' ? env.https : target.protocol === 'http:' ? env.http : undefined;
  if (!proxy) return undefined;
  const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  return bypassesProxy(host, port, env.noProxy) ? undefined : proxy;
}

/** True when `host` (a name or an IP, without brackets) on `port` goes direct. */
export function bypassesProxy(host: string, port: string, noProxy: NoProxy): boolean {
  if (host === 'localhost' || isLoopback(host)) return true;
  if (noProxy.all) return true;
  const family = isIP(host);
  if (family) {
    const type = family === 4 ? 'ipv4' : 'ipv6';
    return noProxy.ips.check(host, type) || noProxy.ipPorts.some((e) => e.port === port && isIP(e.ip) === family && sameIp(e.ip, host));
  }
  const name = host.replace(/\.$/, '');
  return noProxy.domains.some((d) => (d.port === '' || d.port === port) && (name.endsWith(d.suffix) || (d.alsoExact && name === d.suffix.slice(1))));
}

/**
 * Compile a NO_PROXY list: comma-separated; `*` matches everything; an IP or CIDR matches
 * addresses; `example.com` matches it and its subdomains, `.example.com` (or `*.example.com`)
 * only subdomains; any entry but a CIDR may end in `:port` to match that port only.
 */
export function compileNoProxy(value: string): NoProxy {
  const noProxy: NoProxy = { all: false, ips: new BlockList(), ipPorts: [], domains: [] };
  for (const raw of value.split(',')) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') {
      noProxy.all = true;
      continue;
    }
    if (addCidr(entry, noProxy.ips)) continue;
    const { host, port } = splitPort(entry);
    const family = isIP(host);
    if (family && port) noProxy.ipPorts.push({ ip: host, port });
    else if (family) noProxy.ips.addAddress(host, family === 4 ? 'ipv4' : 'ipv6');
    else addDomain(host, port, noProxy);
  }
  return noProxy;
}

function addCidr(entry: string, ips: BlockList): boolean {
  const match = /^(.+)\/(\d{1,3})$/.exec(entry);
  if (!match) return false;
  const family = isIP(match[1]!);
  const prefix = Number(match[2]);
  if (!family || prefix > (family === 4 ? 32 : 128)) return false;
  ips.addSubnet(match[1]!, prefix, family === 4 ? 'ipv4' : 'ipv6');
  return true;
}

function addDomain(host: string, port: string, noProxy: NoProxy): void {
  const name = host.replace(/^\*\./, '.').replace(/\.$/, '');
  if (!name || name === '.') return;
  if (name.startsWith('.')) noProxy.domains.push({ suffix: name, alsoExact: false, port });
  else noProxy.domains.push({ suffix: `.${name}`, alsoExact: true, port });
}

/** `host:port`, `[v6]:port`, a bare IPv6 address or a bare host. */
function splitPort(entry: string): { host: string; port: string } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] ?? '' };
  if (isIP(entry) === 6) return { host: entry, port: '' };
  const withPort = /^(.*):(\d+)$/.exec(entry);
  return withPort ? { host: withPort[1]!, port: withPort[2]! } : { host: entry, port: '' };
}

function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return sameIp(host, '::1');
  return false;
}

function sameIp(a: string, b: string): boolean {
  if (a === b) return true;
  const list = new BlockList();
  list.addAddress(a, isIP(a) === 4 ? 'ipv4' : 'ipv6');
  return list.check(b, isIP(b) === 4 ? 'ipv4' : 'ipv6');
}
