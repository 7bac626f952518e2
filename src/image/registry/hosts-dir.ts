/**
 * The registry hosts directory (`[registry] config_path`, laid out as containerd's): for a
 * registry `host[:port]`, the first of `<dir>/host_port_`, `<dir>/host:port` and
 * `<dir>/_default` that exists holds its `hosts.toml`, or, without one, Docker's certificate
 * layout (`*.crt` CAs, `*.cert` client certificates with a `*.key` beside them). Files are
 * read afresh for every pull, so edits apply without a restart.
 *
 * The directory is the operator's, but a mistake in it must not hang or flood the daemon:
 * every file read is a regular file of bounded size, opened without blocking, and what a
 * relative path names must stay inside the directory (no `..`, no symlink leading out).
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode, messageOf, TscriError } from '../../errors.js';
import { joinBelow, readFileBelow } from '../../util/confined.js';
import { fileExists } from '../../util/files.js';
import { HostsFileError, parseHostsFile, type HostSettings, type HostsFile } from './hosts-file.js';
import type { TlsMaterial } from './transport.js';

const MAX_HOSTS_FILE_BYTES = 64 * 1024;
const MAX_PEM_BYTES = 1024 * 1024;
/** More certificate files than this in one host directory is a mistake, not a configuration. */
const MAX_CERT_FILES = 64;

/** What the directory says about one registry, or undefined when it says nothing. */
export async function loadHostsFor(configPath: string, host: string): Promise<HostsFile | undefined> {
  if (!configPath) return undefined;
  const dir = await hostDirOf(configPath, host);
  if (!dir) return undefined;
  const file = path.join(dir, 'hosts.toml');
  let text: Buffer;
  try {
    text = await readFileBelow(configPath, file, MAX_HOSTS_FILE_BYTES, 'hosts file');
  } catch (err) {
    if (!(await fileExists(file, { followSymlinks: false }))) return dockerCertLayout(configPath, dir);
    throw new HostsFileError(file, '', messageOf(err));
  }
  return parseHostsFile(text.toString('utf8'), file, dir);
}

/** The first candidate directory that exists, or undefined (also when config_path is missing). */
async function hostDirOf(configPath: string, host: string): Promise<string | undefined> {
  const colon = host.lastIndexOf(':');
  const names = colon > 0 && !host.endsWith(']') ? [`${host.slice(0, colon)}_${host.slice(colon + 1)}_`, host, '_default'] : [host, '_default'];
  for (const name of names) {
    const dir = joinBelow(configPath, name, 'registry host');
    const stat = await fs.stat(dir).catch(() => undefined);
    if (stat?.isDirectory()) return dir;
  }
  return undefined;
}

/** Docker's layout: CAs and client pairs by file name, for the server only. */
async function dockerCertLayout(configPath: string, dir: string): Promise<HostsFile> {
  const names = (await fs.readdir(dir)).sort();
  const ca = names.filter((n) => n.endsWith('.crt')).map((n) => path.join(dir, n));
  const client = names
    .filter((n) => n.endsWith('.cert'))
    .map((n) => {
      const key = `${n.slice(0, -'.cert'.length)}.key`;
      return names.includes(key) ? { cert: path.join(dir, n), key: path.join(dir, key) } : { cert: path.join(dir, n) };
    });
  if (ca.length + client.length > MAX_CERT_FILES) throw new HostsFileError(dir, '', `more than ${MAX_CERT_FILES} certificate files`);
  return { file: dir, hosts: [], server: { capabilities: ['pull', 'resolve', 'push'], ca, client, headers: {} } };
}

/**
 * Read the certificate files a host's settings name. Undefined when the settings ask for
 * nothing of TLS, so such a host shares the default connections.
 */
export async function tlsMaterialOf(settings: HostSettings, configPath: string, file: string): Promise<TlsMaterial | undefined> {
  if (settings.ca.length === 0 && settings.client.length === 0 && settings.skipVerify === undefined && settings.dialTimeoutMs === undefined) {
    return undefined;
  }
  const read = (pem: string, key: string) => readPem(configPath, pem, file, key);
  const ca = await Promise.all(settings.ca.map((p) => read(p, 'ca')));
  const certs = await Promise.all(
    settings.client.map(async (pair) => {
      const cert = await read(pair.cert, 'client');
      return { cert, key: pair.key ? await read(pair.key, 'client') : cert };
    }),
  );
  return { ca, certs, skipVerify: settings.skipVerify === true, ...(settings.dialTimeoutMs ? { dialTimeoutMs: settings.dialTimeoutMs } : {}) };
}

/**
 * A PEM file named by `key` of `file`. Inside config_path it is confined there; an absolute
 * path elsewhere (a system CA bundle) is read as the operator wrote it.
 */
async function readPem(configPath: string, pem: string, file: string, key: string): Promise<string> {
  const inside = pem === configPath || pem.startsWith(`${configPath.replace(/\/+$/, '')}/`);
  try {
    const bytes = inside ? await readFileBelow(configPath, pem, MAX_PEM_BYTES, key) : await readRegularFile(pem, MAX_PEM_BYTES);
    const text = bytes.toString('utf8');
    if (!text.includes('-----BEGIN ')) throw new Error(`${pem} is not a PEM file`);
    return text;
  } catch (err) {
    throw new HostsFileError(file, key, err instanceof TscriError ? err.message : messageOf(err));
  }
}

async function readRegularFile(file: string, maxBytes: number): Promise<Buffer> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new Error(`cannot open ${file} (${errnoCode(err) ?? 'error'})`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${file} is not a regular file`);
    if (stat.size > maxBytes) throw new Error(`${file} is ${stat.size} bytes, more than ${maxBytes}`);
    const buffer = Buffer.alloc(stat.size);
    const { bytesRead } = await handle.read(buffer, 0, stat.size, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
