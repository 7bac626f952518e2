/**
 * One `hosts.toml` of a registry hosts directory (the format containerd reads from its
 * `config_path`), parsed into checked settings. Only the text is handled here; finding the
 * file and reading the certificates it names is hosts-dir.ts's.
 *
 * The file names the upstream (`server`, default the registry itself) and, in `[host."URL"]`
 * tables, hosts tried before it in the order they are written. Each may say what it can do
 * (`capabilities`), how to trust it (`ca`, `skip_verify`), which client certificate to show
 * (`client`), extra request headers (`header`), and whether its URL path is the API root
 * (`override_path`). The top-level keys besides `server` apply to the server.
 */
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { FailedPreconditionError, messageOf } from '../../errors.js';
import { quote } from '../../validation/fields.js';

export type Capability = 'pull' | 'resolve' | 'push';
const CAPABILITIES: readonly Capability[] = ['pull', 'resolve', 'push'];

/** A client certificate and its key; without a key file the certificate file holds both. */
export interface ClientPair {
  cert: string;
  key?: string;
}

/** How to reach one host, whatever its place in the file. */
export interface HostSettings {
  capabilities: readonly Capability[];
  /** Absolute paths of PEM files with CA certificates, trusted besides the system's. */
  ca: string[];
  client: ClientPair[];
  /** Set only when the file says so: an unset value leaves verification on. */
  skipVerify?: boolean;
  headers: Record<string, string[]>;
  /** `dial_timeout`, in milliseconds. */
  dialTimeoutMs?: number;
}

/** A host with its address: `url` as written (for logs), `apiRoot` where API paths start. */
export interface HostEntry extends HostSettings {
  url: string;
  apiRoot: string;
}

/** The upstream; without `server` its address is the registry's default, chosen by the caller. */
export interface ServerEntry extends HostSettings {
  url?: string;
  apiRoot?: string;
}

export interface HostsFile {
  /** The file these settings came from, for messages. */
  file: string;
  /** `[host."…"]` tables in file order, tried before the server. */
  hosts: HostEntry[];
  server: ServerEntry;
}

const HOST_KEYS = ['capabilities', 'ca', 'client', 'skip_verify', 'header', 'override_path', 'dial_timeout'];
const TOP_KEYS = [...HOST_KEYS, 'server', 'host'];
/** RFC 9110 token characters: what a header name may be made of. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A hosts.toml problem, naming the file and the key; pulls from that registry fail with it. */
export class HostsFileError extends FailedPreconditionError {
  constructor(file: string, key: string, problem: string) {
    super(`${file}: ${key ? `${key}: ` : ''}${problem}`, { hint: `fix ${file}; pulls from this registry fail until then` });
  }
}

/**
 * Parse the text of `file`; relative certificate paths are taken from `dir`, the host's
 * directory. Any unknown key or value of the wrong type refuses the whole file.
 */
export function parseHostsFile(text: string, file: string, dir: string): HostsFile {
  let raw: Record<string, unknown>;
  try {
    raw = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new HostsFileError(file, '', `not valid TOML: ${messageOf(err).split('\n')[0]}`);
  }
  const fail = (key: string, problem: string) => new HostsFileError(file, key, problem);
  checkKeys(raw, TOP_KEYS, '', fail);
  const hostTables = raw.host === undefined ? {} : raw.host;
  if (!isTable(hostTables)) throw fail('host', 'must be a table of [host."URL"] tables');
  const hosts = Object.entries(hostTables).map(([url, value]) => {
    const where = `host.${quote(url)}`;
    if (!isTable(value)) throw fail(where, 'must be a table');
    checkKeys(value, HOST_KEYS, where, fail);
    return { ...settingsOf(value, where, dir, fail), ...addressOf(url, value.override_path, where, fail) };
  });
  const server = settingsOf(raw, '', dir, fail);
  if (raw.server === undefined) {
    if (raw.override_path !== undefined) checkBoolean(raw.override_path, 'override_path', fail);
    return { file, hosts, server };
  }
  if (typeof raw.server !== 'string' || raw.server === '') throw fail('server', 'must be a non-empty string');
  return { file, hosts, server: { ...server, ...addressOf(raw.server, raw.override_path, 'server', fail) } };
}

type Fail = (key: string, problem: string) => HostsFileError;

function checkKeys(table: Record<string, unknown>, allowed: string[], where: string, fail: Fail): void {
  for (const key of Object.keys(table)) {
    if (!allowed.includes(key)) throw fail(join(where, key), `unknown key (expected one of: ${allowed.join(', ')})`);
  }
}

function settingsOf(table: Record<string, unknown>, where: string, dir: string, fail: Fail): HostSettings {
  const settings: HostSettings = {
    capabilities: capabilitiesOf(table.capabilities, join(where, 'capabilities'), fail),
    ca: stringOrList(table.ca, join(where, 'ca'), fail).map((p) => absolute(p, dir, join(where, 'ca'), fail)),
    client: clientPairs(table.client, join(where, 'client'), fail).map((pair) => ({
      cert: absolute(pair.cert, dir, join(where, 'client'), fail),
      ...(pair.key === undefined ? {} : { key: absolute(pair.key, dir, join(where, 'client'), fail) }),
    })),
    headers: headersOf(table.header, join(where, 'header'), fail),
  };
  if (table.skip_verify !== undefined) settings.skipVerify = checkBoolean(table.skip_verify, join(where, 'skip_verify'), fail);
  if (table.dial_timeout !== undefined) settings.dialTimeoutMs = durationMs(table.dial_timeout, join(where, 'dial_timeout'), fail);
  return settings;
}

/**
 * A host's URL and API root. Without a scheme it is https. The API root is the URL's path
 * with /v2 added (unless it ends in /v2 already); with `override_path` the path is the root.
 */
function addressOf(written: string, overridePath: unknown, where: string, fail: Fail): { url: string; apiRoot: string } {
  const override = overridePath === undefined ? false : checkBoolean(overridePath, join(where, 'override_path'), fail);
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(written) ? written : `https://${written}`);
  } catch {
    throw fail(where, `${quote(written)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw fail(where, `${quote(written)} must be http:// or https://`);
  if (url.username || url.password || url.search || url.hash) throw fail(where, `${quote(written)} must have no credentials, query or fragment`);
  const cleaned = path.posix.normalize(url.pathname).replace(/\/+$/, '');
  const base = `${url.protocol}//${url.host}`;
  const apiRoot = override || cleaned.endsWith('/v2') ? `${base}${cleaned}` : `${base}${cleaned}/v2`;
  return { url: `${base}${cleaned}`, apiRoot };
}

/** Unset means every capability, as an empty list does. */
function capabilitiesOf(value: unknown, key: string, fail: Fail): Capability[] {
  const list = value === undefined ? [] : stringList(value, key, fail);
  for (const item of list) {
    if (!CAPABILITIES.includes(item.toLowerCase() as Capability)) throw fail(key, `unknown capability ${quote(item)} (expected pull, resolve or push)`);
  }
  return list.length === 0 ? [...CAPABILITIES] : [...new Set(list.map((c) => c.toLowerCase() as Capability))];
}

/** `client`: a file with cert and key, [cert, key], or a list of either. */
function clientPairs(value: unknown, key: string, fail: Fail): ClientPair[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return [{ cert: nonEmpty(value, key, fail) }];
  if (!Array.isArray(value)) throw fail(key, 'must be a path, a [cert, key] pair, or a list of them');
  if (value.length === 2 && value.every((v) => typeof v === 'string') && looksLikeKey(value[1] as string)) {
    return [{ cert: nonEmpty(value[0] as string, key, fail), key: nonEmpty(value[1] as string, key, fail) }];
  }
  return value.map((item: unknown, i) => {
    const at = `${key}[${i}]`;
    if (typeof item === 'string') return { cert: nonEmpty(item, at, fail) };
    if (Array.isArray(item) && item.length === 2 && item.every((v) => typeof v === 'string')) {
      // An empty key, as containerd allows, means the certificate file holds the key too.
      const cert = nonEmpty(item[0] as string, at, fail);
      return item[1] === '' ? { cert } : { cert, key: nonEmpty(item[1] as string, at, fail) };
    }
    throw fail(at, 'must be a path or a [cert, key] pair of paths');
  });
}

/**
 * containerd reads a flat pair of strings as two files that each hold a certificate and its
 * key; in practice `client = ["x.cert", "x.key"]` means a pair. A second element that names
 * a key file is taken as one.
 */
function looksLikeKey(file: string): boolean {
  return /\.key$|key\.pem$/i.test(file);
}

function headersOf(value: unknown, key: string, fail: Fail): Record<string, string[]> {
  if (value === undefined) return {};
  if (!isTable(value)) throw fail(key, 'must be a table of header names to a string or a list of strings');
  const headers: Record<string, string[]> = {};
  for (const [name, raw] of Object.entries(value)) {
    const at = `${key}.${quote(name)}`;
    if (!HEADER_NAME.test(name)) throw fail(at, 'is not a valid header name');
    const values = stringOrList(raw, at, fail);
    if (values.some((v) => /[\r\n\0]/.test(v))) throw fail(at, 'a header value must be one line');
    headers[name.toLowerCase()] = [...(headers[name.toLowerCase()] ?? []), ...values];
  }
  return headers;
}

/** A Go duration as containerd's dial_timeout takes it: "500ms", "10s", "1m30s". */
function durationMs(value: unknown, key: string, fail: Fail): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (typeof value !== 'string' || !/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(value)) throw fail(key, 'must be a duration such as "10s" or "500ms"');
  let total = 0;
  for (const [, amount, , unit] of value.matchAll(/(\d+(\.\d+)?)(ms|s|m|h)/g)) total += Number(amount) * units[unit!]!;
  if (total <= 0 || total > 3_600_000) throw fail(key, 'must be more than 0 and at most 1h');
  return Math.round(total);
}

function stringOrList(value: unknown, key: string, fail: Fail): string[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return [nonEmpty(value, key, fail)];
  return stringList(value, key, fail).map((v) => nonEmpty(v, key, fail));
}

function stringList(value: unknown, key: string, fail: Fail): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw fail(key, 'must be a string or a list of strings');
  return value as string[];
}

function nonEmpty(value: string, key: string, fail: Fail): string {
  if (value === '' || value.includes('\0')) throw fail(key, 'must not be empty');
  return value;
}

function checkBoolean(value: unknown, key: string, fail: Fail): boolean {
  if (typeof value !== 'boolean') throw fail(key, 'must be true or false');
  return value;
}

/** A relative path is the host directory's, and must stay in it. */
function absolute(file: string, dir: string, key: string, fail: Fail): string {
  if (path.isAbsolute(file)) return path.normalize(file);
  if (file.split('/').includes('..')) throw fail(key, `${quote(file)}: a relative path must not climb out of ${dir} with ..`);
  return path.join(dir, file);
}

function join(where: string, key: string): string {
  return where ? `${where}.${key}` : key;
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}
