/**
 * The node-wide credentials file (`[registry] auth_file`): the `auths` object of a Docker
 * `config.json`, for pulls the kubelet sends no credentials with (images of static pods, a
 * registry every pod may use). Its content is never logged and never named in errors.
 */
import { constants, promises as fs } from 'node:fs';
import { FailedPreconditionError, errnoCode } from '../../errors.js';
import { quote } from '../../validation/fields.js';
import type { Credentials } from './auth.js';

/** Larger than any real file of credentials; a bigger one is refused, not read. */
const MAX_AUTH_FILE_BYTES = 1024 * 1024;

/** Names under which Docker Hub's credentials are stored: all mean docker.io. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** Credentials by registry host (`host[:port]`, lower case, Docker Hub as docker.io). */
export type AuthEntries = ReadonlyMap<string, Credentials>;

/**
 * The key a host is stored under: `https://host/v1/`, `host`, `HOST:5000` all reduce to the
 * host and port; every Docker Hub alias to docker.io.
 */
export function authKey(hostOrUrl: string): string {
  const host = hostOrUrl.trim().toLowerCase().replace(/^[a-z][a-z0-9+.-]*:\/\//, '').replace(/\/.*$/, '');
  return DOCKER_HUB_ALIASES.has(host) ? 'docker.io' : host;
}

/** Parse the text of an auth file; a malformed entry is named by its key, never by its value. */
export function parseAuthFile(text: string, file: string): AuthEntries {
  const fail = (problem: string) => new FailedPreconditionError(`${file}: ${problem}`, { hint: `fix ${file} (the "auths" object of a Docker config.json)` });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw fail('not valid JSON');
  }
  if (!isObject(parsed)) throw fail('must be a JSON object');
  const auths = parsed.auths ?? {};
  if (!isObject(auths)) throw fail('"auths" must be an object');
  const entries = new Map<string, Credentials>();
  for (const [key, entry] of Object.entries(auths)) {
    const credentials = credentialsOf(entry, (problem) => fail(`auths.${quote(key)}: ${problem}`));
    if (credentials) entries.set(authKey(key), credentials);
  }
  return entries;
}

function credentialsOf(entry: unknown, fail: (problem: string) => FailedPreconditionError): Credentials | undefined {
  if (!isObject(entry)) throw fail('must be an object');
  const field = (name: string): string | undefined => {
    const value = entry[name];
    if (value === undefined || value === '') return undefined;
    if (typeof value !== 'string') throw fail(`"${name}" must be a string`);
    return value;
  };
  const credentials: Credentials = {};
  const auth = field('auth');
  if (auth) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw fail('"auth" must be base64 of "username:password"');
    credentials.username = decoded.slice(0, colon);
    credentials.password = decoded.slice(colon + 1);
  } else {
    const username = field('username');
    const password = field('password');
    if (username) credentials.username = username;
    if (password) credentials.password = password;
  }
  const identityToken = field('identitytoken');
  const registryToken = field('registrytoken');
  if (identityToken) credentials.identityToken = identityToken;
  if (registryToken) credentials.registryToken = registryToken;
  return Object.keys(credentials).length > 0 ? credentials : undefined;
}

/**
 * The auth file, read again whenever it changes (an operator or a secret mount may rewrite
 * it while the daemon runs). A symlink is followed (Kubernetes mounts secrets as links); the
 * target must be a regular file of bounded size.
 */
export class AuthFile {
  private cached: { stamp: string; entries: AuthEntries } | undefined;

  constructor(readonly file: string) {}

  /** The entries as the file says now; a missing file has none. */
  async entries(): Promise<AuthEntries> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.file, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return new Map();
      throw new FailedPreconditionError(`${this.file}: cannot open (${errnoCode(err) ?? 'error'})`);
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new FailedPreconditionError(`${this.file}: not a regular file`);
      if (stat.size > MAX_AUTH_FILE_BYTES) throw new FailedPreconditionError(`${this.file}: ${stat.size} bytes, more than ${MAX_AUTH_FILE_BYTES}`);
      const stamp = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}`;
      if (this.cached?.stamp === stamp) return this.cached.entries;
      const buffer = Buffer.alloc(stat.size);
      const { bytesRead } = await handle.read(buffer, 0, stat.size, 0);
      const entries = parseAuthFile(buffer.toString('utf8', 0, bytesRead), this.file);
      this.cached = { stamp, entries };
      return entries;
    } finally {
      await handle.close();
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
