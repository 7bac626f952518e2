/**
 * Loading and validating CNI network configuration: the files in conf_dir, the copy kept
 * in the attachment cache, and the default network tscri writes when there is none.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode, messageOf } from '../../errors.js';
import { CniConfigError } from './errors.js';

/** Spec versions tscri can drive; 1.1.0 only adds commands we do not issue (STATUS, GC). */
export const SUPPORTED_CNI_VERSIONS: readonly string[] = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

/** File extensions a conf dir is scanned for, as libcni does. */
export const CONFIG_EXTENSIONS: readonly string[] = ['.conflist', '.conf', '.json'];

/** Sorts after the usual `10-…` names, so a cluster's own CNI config installed later wins. */
export const DEFAULT_NETWORK_FILE = 'zz-tscri-default.conflist';

/** The spec's rule for network names; host-local also uses the name as a directory name. */
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** One plugin of a network's chain. */
export interface PluginConfig {
  /** The executable's name, looked up in bin_dirs. */
  type: string;
  /** Capabilities the plugin declares `true`; only these keys reach its `runtimeConfig`. */
  capabilities: string[];
  /** The plugin's configuration object exactly as written. */
  raw: Readonly<Record<string, unknown>>;
}

/** A network as a list of plugins, whether it came from a .conflist or a single .conf. */
export interface NetworkConfigList {
  name: string;
  /** The version every plugin of the chain is driven with. */
  cniVersion: string;
  disableCheck: boolean;
  plugins: PluginConfig[];
  /** The list object as loaded; cached with each attachment so DEL can replay it later. */
  raw: Readonly<Record<string, unknown>>;
}

export interface LoadedNetwork {
  config: NetworkConfigList;
  /** Full path of the file it came from. */
  source: string;
}

export interface RejectedFile {
  /** File name within the conf dir. */
  file: string;
  reason: string;
}

export interface ConfDirScan {
  /** The first valid network in byte order of file names, if any. */
  network?: LoadedNetwork;
  /** Files before it that were skipped, with the reason. */
  rejected: RejectedFile[];
}

/** The JSON shape of a conflist, as tscri writes its default network. */
export interface ConfListJson {
  cniVersion: string;
  name: string;
  plugins: Array<Record<string, unknown>>;
}

export interface DefaultNetworkOptions {
  name: string;
  bridge: string;
  subnet: string;
  /** host-local's state dir; its own default (/var/lib/cni/networks) when absent. */
  dataDir?: string;
}

/**
 * Scan a conf dir and pick the first valid network. Later files are not even read: the
 * selection must not depend on whether an unrelated file happens to be broken.
 */
export async function loadNetworkConfig(confDir: string): Promise<ConfDirScan> {
  const rejected: RejectedFile[] = [];
  for (const file of await listConfigFiles(confDir)) {
    const source = path.join(confDir, file);
    try {
      const config = parseNetworkFile(file, await fs.readFile(source, 'utf8'));
      return { network: { config, source }, rejected };
    } catch (err) {
      rejected.push({ file, reason: messageOf(err) });
    }
  }
  return { rejected };
}

/** Config file names in conf dir, in byte order (what Go's sort.Strings gives libcni). */
export async function listConfigFiles(confDir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await fs.readdir(confDir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return entries
    .filter((name) => CONFIG_EXTENSIONS.some((ext) => name.endsWith(ext)))
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** Parse one file's text; a single-plugin .conf/.json becomes a one-plugin list. */
export function parseNetworkFile(fileName: string, text: string): NetworkConfigList {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CniConfigError(`invalid JSON: ${messageOf(err)}`);
  }
  // A .json file may hold either form; telling them apart by `plugins` is what users expect.
  const isList = fileName.endsWith('.conflist') || (isRecord(value) && 'plugins' in value);
  return parseNetworkConfigList(isList ? value : singlePluginAsList(value));
}

/** Validate a conflist object (from a file or from the attachment cache). */
export function parseNetworkConfigList(value: unknown): NetworkConfigList {
  if (!isRecord(value)) throw new CniConfigError('not a JSON object');
  const name = value['name'];
  if (typeof name !== 'string' || name === '') throw new CniConfigError('missing network "name"');
  if (!NETWORK_NAME.test(name)) {
    throw new CniConfigError(`network name "${name}" must be alphanumerics, "_", "." or "-", starting with an alphanumeric`);
  }
  const plugins = value['plugins'];
  if (!Array.isArray(plugins) || plugins.length === 0) {
    throw new CniConfigError(`network "${name}" has no "plugins"`);
  }
  return {
    name,
    cniVersion: resolveVersion(value),
    disableCheck: parseDisableCheck(value['disableCheck']),
    plugins: plugins.map((plugin, index) => parsePlugin(plugin, index)),
    raw: value,
  };
}

function singlePluginAsList(value: unknown): Record<string, unknown> {
  if (!isRecord(value)) throw new CniConfigError('not a JSON object');
  return { cniVersion: value['cniVersion'], name: value['name'], plugins: [value] };
}

/**
 * The version to drive the chain with: the highest supported entry of `cniVersions`
 * (spec 1.1) when present, otherwise `cniVersion`, which must then be one we support.
 */
function resolveVersion(list: Record<string, unknown>): string {
  const versions = list['cniVersions'];
  if (Array.isArray(versions)) {
    const supported = versions.filter((v): v is string => typeof v === 'string' && isSupportedVersion(v));
    const highest = supported.sort(compareCniVersions).at(-1);
    if (highest !== undefined) return highest;
  }
  const version = list['cniVersion'];
  if (typeof version !== 'string' || version === '') throw new CniConfigError('missing "cniVersion"');
  if (!isSupportedVersion(version)) {
    throw new CniConfigError(`unsupported cniVersion "${version}" (supported: ${SUPPORTED_CNI_VERSIONS.join(', ')})`);
  }
  return version;
}

/** The spec calls it a string "true"/"false"; real configs also use a JSON boolean. */
function parseDisableCheck(value: unknown): boolean {
  if (value === undefined || value === false || value === 'false') return false;
  if (value === true || value === 'true') return true;
  throw new CniConfigError(`"disableCheck" must be true or false, got ${JSON.stringify(value)}`);
}

function parsePlugin(value: unknown, index: number): PluginConfig {
  if (!isRecord(value)) throw new CniConfigError(`plugin #${index} is not a JSON object`);
  const type = value['type'];
  if (typeof type !== 'string' || type === '') throw new CniConfigError(`plugin #${index} has no "type"`);
  // The type names an executable inside bin_dirs; a path would escape them.
  if (type.includes('/') || type === '.' || type === '..') {
    throw new CniConfigError(`plugin #${index} has an invalid type "${type}"`);
  }
  return { type, capabilities: declaredCapabilities(value['capabilities'], type), raw: value };
}

function declaredCapabilities(value: unknown, type: string): string[] {
  if (value === undefined) return [];
  if (!isRecord(value)) throw new CniConfigError(`"capabilities" of plugin ${type} is not an object`);
  return Object.entries(value)
    .filter(([, enabled]) => enabled === true)
    .map(([capability]) => capability);
}

/**
 * tscri's fallback network: a bridge with NAT to the outside, hairpin so a pod can reach
 * itself through a service IP, and portmap for hostPort.
 */
export function defaultNetworkConfig(opts: DefaultNetworkOptions): ConfListJson {
  const defaultRoute = opts.subnet.includes(':') ? '::/0' : '0.0.0.0/0';
  const ipam: Record<string, unknown> = {
    type: 'host-local',
    ranges: [[{ subnet: opts.subnet }]],
    routes: [{ dst: defaultRoute }],
  };
  if (opts.dataDir !== undefined) ipam['dataDir'] = opts.dataDir;
  return {
    cniVersion: '1.0.0',
    name: opts.name,
    plugins: [
      { type: 'bridge', bridge: opts.bridge, isGateway: true, ipMasq: true, hairpinMode: true, ipam },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

export function isSupportedVersion(version: string): boolean {
  return SUPPORTED_CNI_VERSIONS.includes(version);
}

/** Order two x.y.z versions numerically (0.10.0 > 0.9.0); for sort(). */
export function compareCniVersions(a: string, b: string): number {
  const pa = versionParts(a);
  const pb = versionParts(b);
  for (let i = 0; i < 3; i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

export function versionAtLeast(version: string, minimum: string): boolean {
  return compareCniVersions(version, minimum) >= 0;
}

function versionParts(version: string): number[] {
  return version.split('.').map((part) => Number.parseInt(part, 10) || 0);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
