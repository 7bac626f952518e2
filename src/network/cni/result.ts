/**
 * CNI results across spec versions. Plugins print one of three shapes:
 *  - 0.1.0 / 0.2.0: `ip4` and `ip6` objects, each with its own routes, no interfaces;
 *  - 0.3.0 / 0.3.1 / 0.4.0: `interfaces`, `ips` (each with `version: "4"|"6"`), `routes`, `dns`;
 *  - 1.0.0 / 1.1.0: the same without `version` on the ips.
 * tscri keeps one normalised form (the 1.0.0 shape) and renders it back in whatever
 * version a chain speaks when a result is handed to the next plugin as `prevResult`.
 */
import type { DnsInfo, InterfaceInfo, IpConfig, NetworkResult, Route } from './types.js';
import { isRecord, isSupportedVersion, versionAtLeast } from './config.js';
import { CniResultError } from './errors.js';

export const NORMALISED_VERSION = '1.0.0';

export interface ParsedOutput {
  /** The result object exactly as printed. */
  raw: Record<string, unknown>;
  result: NetworkResult;
}

/** Parse a plugin's stdout. `fallbackVersion` applies when the result omits cniVersion. */
export function parseResultOutput(stdout: string, fallbackVersion?: string): ParsedOutput {
  let raw: unknown;
  try {
    raw = JSON.parse(stdout);
  } catch {
    const shown = stdout.trim() === '' ? 'empty output' : `not JSON: ${truncate(stdout.trim(), 200)}`;
    throw new CniResultError(shown);
  }
  const result = parseResult(raw, fallbackVersion);
  return { raw: raw as Record<string, unknown>, result };
}

/** Validate a result object of any supported version and normalise it to the 1.0.0 shape. */
export function parseResult(raw: unknown, fallbackVersion?: string): NetworkResult {
  if (!isRecord(raw)) throw new CniResultError('not a JSON object');
  const version = raw['cniVersion'] ?? fallbackVersion;
  if (typeof version !== 'string') throw new CniResultError('missing "cniVersion"');
  if (!isSupportedVersion(version)) throw new CniResultError(`unsupported cniVersion "${version}"`);
  return versionAtLeast(version, '0.3.0') ? parseCurrent(raw) : parseLegacy(raw);
}

/** Render a result in the shape of `version`, for use as `prevResult`. */
export function resultAsVersion(result: NetworkResult, version: string): Record<string, unknown> {
  if (!versionAtLeast(version, '0.3.0')) return toLegacy(result, version);
  const withFamily = !versionAtLeast(version, '1.0.0');
  return {
    cniVersion: version,
    interfaces: result.interfaces.map((iface) => ({ ...iface })),
    ips: result.ips.map((ip) => (withFamily ? { version: ipFamily(ip.address), ...ip } : { ...ip })),
    routes: result.routes.map((route) => ({ ...route })),
    dns: { ...result.dns },
  };
}

/**
 * The `prevResult` to give a plugin of a chain speaking `version`. A result already in that
 * version is passed verbatim, so fields tscri does not model (a plugin's own extras) survive
 * the chain; any other is converted.
 */
export function prevResultFor(raw: unknown, version: string): Record<string, unknown> {
  if (isRecord(raw) && raw['cniVersion'] === version) return raw;
  return resultAsVersion(parseResult(raw, version), version);
}

function parseCurrent(raw: Record<string, unknown>): NetworkResult {
  return {
    cniVersion: NORMALISED_VERSION,
    interfaces: listOf(raw, 'interfaces', parseInterface),
    ips: listOf(raw, 'ips', parseIp),
    routes: listOf(raw, 'routes', parseRoute),
    dns: parseDns(raw['dns']),
  };
}

function parseLegacy(raw: Record<string, unknown>): NetworkResult {
  const families = [parseLegacyIp(raw['ip4'], 'ip4'), parseLegacyIp(raw['ip6'], 'ip6')];
  const present = families.filter((family) => family !== undefined);
  return {
    cniVersion: NORMALISED_VERSION,
    interfaces: [],
    ips: present.map((family) => family.ip),
    routes: present.flatMap((family) => family.routes),
    dns: parseDns(raw['dns']),
  };
}

function parseLegacyIp(value: unknown, field: string): { ip: IpConfig; routes: Route[] } | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw new CniResultError(`"${field}" is not an object`);
  const ip: IpConfig = { address: cidr(value['ip'], `${field}.ip`) };
  const gateway = optionalString(value['gateway'], `${field}.gateway`);
  if (gateway) ip.gateway = gateway;
  return { ip, routes: listOf(value, 'routes', parseRoute, `${field}.`) };
}

function parseInterface(value: unknown, where: string): InterfaceInfo {
  if (!isRecord(value)) throw new CniResultError(`${where} is not an object`);
  const name = value['name'];
  if (typeof name !== 'string' || name === '') throw new CniResultError(`${where} has no "name"`);
  const iface: InterfaceInfo = { name };
  const mac = optionalString(value['mac'], `${where}.mac`);
  if (mac) iface.mac = mac;
  const sandbox = optionalString(value['sandbox'], `${where}.sandbox`);
  if (sandbox) iface.sandbox = sandbox;
  return iface;
}

function parseIp(value: unknown, where: string): IpConfig {
  if (!isRecord(value)) throw new CniResultError(`${where} is not an object`);
  const ip: IpConfig = { address: cidr(value['address'], `${where}.address`) };
  const family = value['version'];
  if (family !== undefined && family !== '4' && family !== '6') {
    throw new CniResultError(`${where}.version must be "4" or "6", got ${JSON.stringify(family)}`);
  }
  const gateway = optionalString(value['gateway'], `${where}.gateway`);
  if (gateway) ip.gateway = gateway;
  const index = value['interface'];
  if (index !== undefined && index !== null) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) {
      throw new CniResultError(`${where}.interface must be an index into "interfaces", got ${JSON.stringify(index)}`);
    }
    ip.interface = index;
  }
  return ip;
}

function parseRoute(value: unknown, where: string): Route {
  if (!isRecord(value)) throw new CniResultError(`${where} is not an object`);
  const route: Route = { dst: cidr(value['dst'], `${where}.dst`) };
  const gw = optionalString(value['gw'], `${where}.gw`);
  if (gw) route.gw = gw;
  return route;
}

function parseDns(value: unknown): DnsInfo {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) throw new CniResultError('"dns" is not an object');
  const dns: DnsInfo = {};
  const nameservers = optionalStrings(value['nameservers'], 'dns.nameservers');
  if (nameservers) dns.nameservers = nameservers;
  const domain = optionalString(value['domain'], 'dns.domain');
  if (domain) dns.domain = domain;
  const search = optionalStrings(value['search'], 'dns.search');
  if (search) dns.search = search;
  const options = optionalStrings(value['options'], 'dns.options');
  if (options) dns.options = options;
  return dns;
}

function toLegacy(result: NetworkResult, version: string): Record<string, unknown> {
  const legacy: Record<string, unknown> = { cniVersion: version };
  for (const family of ['4', '6'] as const) {
    // The legacy shape holds one address per family; the first one is the primary.
    const ip = result.ips.find((candidate) => ipFamily(candidate.address) === family);
    if (ip === undefined) continue;
    const entry: Record<string, unknown> = { ip: ip.address };
    if (ip.gateway !== undefined) entry['gateway'] = ip.gateway;
    const routes = result.routes.filter((route) => ipFamily(route.dst) === family);
    if (routes.length > 0) entry['routes'] = routes.map((route) => ({ ...route }));
    legacy[`ip${family}`] = entry;
  }
  legacy['dns'] = { ...result.dns };
  return legacy;
}

export function ipFamily(addressOrCidr: string): '4' | '6' {
  return addressOrCidr.includes(':') ? '6' : '4';
}

function listOf<T>(
  container: Record<string, unknown>,
  field: string,
  parseItem: (value: unknown, where: string) => T,
  prefix = '',
): T[] {
  const value = container[field];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new CniResultError(`"${prefix}${field}" is not a list`);
  return value.map((item, index) => parseItem(item, `${prefix}${field}[${index}]`));
}

/** An address with prefix length; the shape is checked, the plugin is trusted on the rest. */
function cidr(value: unknown, where: string): string {
  if (typeof value !== 'string' || !/^[0-9a-fA-F:.]+(%[\w.-]+)?\/\d{1,3}$/.test(value)) {
    throw new CniResultError(`${where} must be an address in CIDR notation, got ${JSON.stringify(value)}`);
  }
  return value;
}

function optionalString(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new CniResultError(`${where} is not a string`);
  return value;
}

function optionalStrings(value: unknown, where: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new CniResultError(`${where} is not a list of strings`);
  }
  return value as string[];
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
