import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { expandSlice } from '../cgroups/paths.js';
import { InvalidArgumentError, errnoCode, messageOf } from '../errors.js';
import { Reader } from './reader.js';

/**
 * Configuration pipeline: TOML text → raw object → defaults applied → validated, compiled
 * `Config`. Everything downstream reads only the compiled form, which is checked once at start.
 */

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
/** json: one object per line, for collectors; text: one readable line per entry, for a terminal. */
export type LogFormat = 'json' | 'text';
export type CgroupDriver = 'cgroupfs' | 'systemd';

export interface RegistryMirror {
  /** Endpoints tried in order before the origin, e.g. http://127.0.0.1:5000. */
  endpoints: string[];
}

export interface DefaultNetwork {
  name: string;
  bridge: string;
  subnet: string;
}

/** One OCI runtime pods can ask for by name (`[runtime.handlers.<name>]`). */
export interface RuntimeHandlerConfig {
  /** The runtime binary (runc's CLI), a path or a name looked up in PATH. */
  path: string;
  /** Its state directory (`--root`); every handler needs its own. */
  root: string;
}

/** Handler names are what a RuntimeClass's `handler` may be: a DNS label. */
const HANDLER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Where the daemon's own Prometheus endpoint listens (`[metrics] address`). */
export interface MetricsAddress {
  /** An IP address (IPv6 without brackets) or localhost. */
  host: string;
  port: number;
}

export interface Config {
  /** Path of the Unix socket the gRPC server listens on. */
  socketPath: string;
  /** Persistent state: records, images, CNI result cache. */
  root: string;
  /** Volatile state (tmpfs): bundles, runc state, conmon sockets, exit files. */
  state: string;
  /** Image for pause containers; empty means the built-in pause image. */
  sandboxImage: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  cgroupDriver: CgroupDriver;
  /** Cgroup parent for pods whose config names none. */
  defaultCgroupParent: string;
  /** Where Localhost seccomp profiles must be (kubelet's <root-dir>/seccomp). */
  seccompProfileRoot: string;
  /** Label pods and containers on an SELinux host (off by default, as in containerd and CRI-O). */
  enableSelinux: boolean;
  runtime: {
    conmon: string;
    /** The handler pods get when RunPodSandbox names none (a key of handlers). */
    defaultHandler: string;
    /** OCI runtimes by the name a RuntimeClass's handler gives; always holds "runc". */
    handlers: { runc: RuntimeHandlerConfig } & Record<string, RuntimeHandlerConfig>;
  };
  cdi: {
    /** CDI spec directories, lowest priority first: a device in a later one wins. Empty: CDI off. */
    specDirs: string[];
  };
  cni: {
    confDir: string;
    binDirs: string[];
    /** Written to conf_dir as the lowest-priority network when it holds none; false: never. */
    defaultNetwork: DefaultNetwork | false;
    /** How long one plugin invocation may run before it is killed with all it started. */
    pluginTimeoutMs: number;
  };
  registry: {
    mirrors: Record<string, RegistryMirror>;
    /** A pull that receives nothing (no response, no byte of any body) for this long is abandoned. */
    pullProgressTimeoutSeconds: number;
    /** containerd's hosts directory: `<host>/hosts.toml` per registry; "" for none. */
    configPath: string;
    /** A node-wide `config.json` (its `auths`) for pulls the kubelet sends no credentials for; "" for none. */
    authFile: string;
  };
  images: {
    /** Image tarballs found here are loaded at start and when they appear; "" for none. */
    importDir: string;
  };
  streaming: {
    address: string;
    port: number;
    /** How long an Exec/Attach/PortForward URL stays valid (its token is single-use anyway). */
    tokenTtlSeconds: number;
  };
  /** The daemon's own Prometheus endpoint; absent: none is served. */
  metrics?: MetricsAddress;
  /** The file this config was read from, if any. */
  source?: string;
}

export const DEFAULT_SOCKET = '/run/tscri/tscri.sock';

export function defaultConfig(): Config {
  return {
    socketPath: DEFAULT_SOCKET,
    root: '/var/lib/tscri',
    state: '/run/tscri',
    sandboxImage: '',
    logLevel: 'info',
    logFormat: 'json',
    cgroupDriver: 'cgroupfs',
    defaultCgroupParent: '/tscri',
    seccompProfileRoot: '/var/lib/kubelet/seccomp',
    enableSelinux: false,
    runtime: { conmon: 'conmon', defaultHandler: 'runc', handlers: { runc: { path: 'runc', root: '/run/tscri/runc' } } },
    cdi: { specDirs: ['/etc/cdi', '/var/run/cdi'] },
    cni: {
      confDir: '/etc/cni/net.d',
      binDirs: ['/opt/cni/bin', '/usr/lib/cni'],
      defaultNetwork: { name: 'tscri-default', bridge: 'tscri0', subnet: '10.88.0.0/16' },
      pluginTimeoutMs: 180_000, // network/cni/exec.ts DEFAULT_PLUGIN_TIMEOUT_MS
    },
    registry: { mirrors: {}, pullProgressTimeoutSeconds: 60, configPath: '/etc/tscri/certs.d', authFile: '' },
    images: { importDir: '' },
    streaming: { address: '127.0.0.1', port: 0, tokenTtlSeconds: 60 },
  };
}

/** Read and compile a config file; no file means the built-in defaults. */
export async function loadConfig(file?: string): Promise<Config> {
  if (!file) return defaultConfig();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = errnoCode(err) === 'ENOENT' ? 'no such file' : messageOf(err);
    throw new InvalidArgumentError(`cannot read config ${file}: ${reason}`);
  }
  return { ...parseConfig(text, file), source: path.resolve(file) };
}

/** Compile TOML text into a Config, rejecting unknown keys and wrong types with the key's name. */
export function parseConfig(text: string, origin = 'config'): Config {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    throw new InvalidArgumentError(`${origin}: invalid TOML: ${messageOf(err)}`);
  }
  return compile(new Reader(raw, origin));
}

/**
 * `default_cgroup_parent` in the driver's own form: a path for cgroupfs, a slice name for
 * systemd (where the default is tscri.slice).
 */
function defaultCgroupParentOf(r: Reader, driver: CgroupDriver): string | undefined {
  if (driver === 'cgroupfs') return r.absolutePath('default_cgroup_parent');
  const slice = r.string('default_cgroup_parent') ?? 'tscri.slice';
  try {
    expandSlice(slice);
  } catch {
    throw r.invalid('default_cgroup_parent', `with cgroup_driver = "systemd" it must be a slice name such as tscri.slice, not ${JSON.stringify(slice)}`);
  }
  return slice;
}

function compile(r: Reader): Config {
  const cfg = defaultConfig();
  r.allowOnly([
    'listen', 'root', 'state', 'sandbox_image', 'log_level', 'log_format', 'cgroup_driver', 'images',
    'default_cgroup_parent', 'seccomp_profile_root', 'enable_selinux', 'runtime', 'cdi', 'cni', 'registry', 'streaming', 'metrics',
  ]);
  const listen = r.string('listen');
  if (listen !== undefined) cfg.socketPath = socketPathOf(listen, r.origin);
  cfg.root = r.absolutePath('root') ?? cfg.root;
  cfg.state = r.absolutePath('state') ?? cfg.state;
  cfg.sandboxImage = r.string('sandbox_image') ?? cfg.sandboxImage;
  cfg.logLevel = r.oneOf('log_level', LOG_LEVELS) ?? cfg.logLevel;
  cfg.logFormat = r.oneOf('log_format', ['json', 'text'] as const) ?? cfg.logFormat;
  cfg.cgroupDriver = r.oneOf('cgroup_driver', ['cgroupfs', 'systemd'] as const) ?? cfg.cgroupDriver;
  cfg.defaultCgroupParent = defaultCgroupParentOf(r, cfg.cgroupDriver) ?? cfg.defaultCgroupParent;
  cfg.seccompProfileRoot = r.absolutePath('seccomp_profile_root') ?? cfg.seccompProfileRoot;
  cfg.enableSelinux = r.boolean('enable_selinux') ?? cfg.enableSelinux;

  compileRuntime(r.table('runtime'), cfg);

  const cdi = r.table('cdi');
  if (cdi) {
    cdi.allowOnly(['spec_dirs']);
    const dirs = cdi.stringArray('spec_dirs');
    if (dirs !== undefined) {
      for (const dir of dirs) if (!path.isAbsolute(dir)) throw cdi.invalid('spec_dirs', `must hold absolute paths, got ${JSON.stringify(dir)}`);
      cfg.cdi.specDirs = dirs.map((dir) => path.normalize(dir));
    }
  }

  const cni = r.table('cni');
  if (cni) compileCni(cni, cfg);

  const registry = r.table('registry');
  if (registry) {
    registry.allowOnly(['mirrors', 'pull_progress_timeout_seconds', 'config_path', 'auth_file']);
    const configPath = registry.string('config_path');
    if (configPath !== undefined) cfg.registry.configPath = configPath === '' ? '' : registry.absolutePath('config_path')!;
    const authFile = registry.string('auth_file');
    if (authFile !== undefined) cfg.registry.authFile = authFile === '' ? '' : registry.absolutePath('auth_file')!;
    const progressTimeout = registry.integer('pull_progress_timeout_seconds');
    if (progressTimeout !== undefined) {
      if (progressTimeout < 1 || progressTimeout > 86_400) throw registry.invalid('pull_progress_timeout_seconds', 'must be between 1 and 86400');
      cfg.registry.pullProgressTimeoutSeconds = progressTimeout;
    }
    const mirrors = registry.table('mirrors');
    for (const host of mirrors?.keys() ?? []) {
      const mirror = mirrors!.table(host)!;
      mirror.allowOnly(['endpoints']);
      const endpoints = mirror.stringArray('endpoints') ?? [];
      for (const endpoint of endpoints) checkEndpoint(endpoint, `${mirror.origin}.endpoints`);
      cfg.registry.mirrors[host] = { endpoints };
    }
  }

  const images = r.table('images');
  if (images) {
    images.allowOnly(['import_dir']);
    const importDir = images.string('import_dir');
    if (importDir !== undefined) cfg.images.importDir = importDir === '' ? '' : images.absolutePath('import_dir')!;
  }

  const streaming = r.table('streaming');
  if (streaming) {
    streaming.allowOnly(['address', 'port', 'token_ttl_seconds']);
    cfg.streaming.address = streaming.string('address') ?? cfg.streaming.address;
    const port = streaming.integer('port');
    if (port !== undefined) {
      if (port < 0 || port > 65535) throw streaming.invalid('port', 'must be between 0 and 65535');
      cfg.streaming.port = port;
    }
    const ttl = streaming.integer('token_ttl_seconds');
    if (ttl !== undefined) {
      if (ttl < 1) throw streaming.invalid('token_ttl_seconds', 'must be at least 1');
      cfg.streaming.tokenTtlSeconds = ttl;
    }
  }

  const metrics = r.table('metrics');
  if (metrics) {
    const address = metricsAddressOf(metrics);
    if (address) cfg.metrics = address;
  }
  return cfg;
}

/**
 * `[runtime]`: conmon, and the OCI runtimes pods choose by handler name. The "runc" handler
 * always exists (`runc = "…"` is the short way to set its path); its state stays below
 * `state` as before, and other handlers default to a root of their own next to it.
 */
function compileRuntime(runtime: Reader | undefined, cfg: Config): void {
  const defaultRoot = (name: string) => path.join(cfg.state, name === 'runc' ? 'runc' : `runtime-${name}`);
  cfg.runtime.handlers = { runc: { path: 'runc', root: defaultRoot('runc') } };
  if (!runtime) return;
  runtime.allowOnly(['runc', 'conmon', 'default_handler', 'handlers']);
  cfg.runtime.conmon = runtime.string('conmon') ?? cfg.runtime.conmon;
  cfg.runtime.handlers.runc.path = runtime.string('runc') ?? 'runc';
  const handlers = runtime.table('handlers');
  for (const name of handlers?.keys() ?? []) {
    if (!HANDLER_NAME.test(name)) throw handlers!.invalid(name, 'a handler name must be a DNS label (lowercase letters, digits and "-", at most 63)');
    const table = handlers!.table(name)!;
    table.allowOnly(['path', 'root']);
    const base = cfg.runtime.handlers[name];
    const binary = table.string('path') ?? base?.path;
    if (!binary) throw table.invalid('path', 'is required: the OCI runtime binary of this handler');
    cfg.runtime.handlers[name] = { path: binary, root: table.absolutePath('root') ?? base?.root ?? defaultRoot(name) };
  }
  const roots = new Map<string, string>();
  for (const [name, handler] of Object.entries(cfg.runtime.handlers)) {
    const other = roots.get(handler.root);
    if (other) throw runtime.invalid(`handlers.${name}.root`, `${handler.root} is also ${other}'s: each handler needs its own state directory`);
    roots.set(handler.root, name);
  }
  const defaultHandler = runtime.string('default_handler');
  if (defaultHandler !== undefined) {
    if (!cfg.runtime.handlers[defaultHandler]) {
      throw runtime.invalid('default_handler', `${JSON.stringify(defaultHandler)} is not a handler (configured: ${Object.keys(cfg.runtime.handlers).sort().join(', ')})`);
    }
    cfg.runtime.defaultHandler = defaultHandler;
  }
}

/**
 * `[metrics] address`, a `host:port` where host is an IP address (IPv6 in brackets) or
 * localhost. No address, or "" (containerd's way of writing "off"), serves no endpoint. An
 * empty host is refused rather than read as every interface: exposing the daemon's metrics
 * beyond the node must be asked for by name (0.0.0.0).
 */
function metricsAddressOf(metrics: Reader): MetricsAddress | undefined {
  metrics.allowOnly(['address']);
  const address = metrics.string('address');
  if (!address) return undefined;
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
  const shown = JSON.stringify(address.slice(0, 64));
  if (!match) throw metrics.invalid('address', `${shown} is not host:port (e.g. "127.0.0.1:9101", "[::1]:9101")`);
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (host === '') throw metrics.invalid('address', `${shown} names no host: give the address to listen on (0.0.0.0 for every interface)`);
  const ipVersion = isIP(host);
  if (match[1] !== undefined ? ipVersion !== 6 : ipVersion !== 4 && host !== 'localhost') {
    throw metrics.invalid('address', `${shown}: the host must be an IPv4 address, an IPv6 address in brackets, or localhost`);
  }
  if (port < 1 || port > 65535) throw metrics.invalid('address', `${shown}: the port must be between 1 and 65535`);
  return { host, port };
}

function compileCni(cni: Reader, cfg: Config): void {
  cni.allowOnly([
    'conf_dir', 'bin_dirs', 'plugin_timeout_seconds', 'default_network', 'default_network_name', 'default_bridge', 'default_subnet',
  ]);
  cfg.cni.confDir = cni.absolutePath('conf_dir') ?? cfg.cni.confDir;
  const binDirs = cni.stringArray('bin_dirs');
  if (binDirs !== undefined) {
    if (binDirs.length === 0) throw cni.invalid('bin_dirs', 'must name at least one directory');
    cfg.cni.binDirs = binDirs;
  }
  const timeout = cni.integer('plugin_timeout_seconds');
  if (timeout !== undefined) {
    // Beyond an hour, kubelet (4 min for RunPodSandbox) gave up long before.
    if (timeout < 1 || timeout > 3600) throw cni.invalid('plugin_timeout_seconds', 'must be between 1 and 3600');
    cfg.cni.pluginTimeoutMs = timeout * 1000;
  }
  if (cni.boolean('default_network') === false) {
    cfg.cni.defaultNetwork = false;
    return;
  }
  const network = cfg.cni.defaultNetwork as DefaultNetwork;
  network.name = cni.string('default_network_name') ?? network.name;
  network.bridge = cni.string('default_bridge') ?? network.bridge;
  network.subnet = cni.string('default_subnet') ?? network.subnet;
  if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(network.subnet)) {
    throw cni.invalid('default_subnet', `"${network.subnet}" is not an IPv4 CIDR`);
  }
  if (network.bridge.length > 15) throw cni.invalid('default_bridge', 'interface names are at most 15 characters');
}

/** Accept `unix:///path`, `unix:/path` or a bare absolute path for `listen`. */
function socketPathOf(listen: string, origin: string): string {
  const stripped = listen.replace(/^unix:\/\//, '').replace(/^unix:/, '');
  if (!path.isAbsolute(stripped)) {
    throw new InvalidArgumentError(`${origin}: listen must be unix:///absolute/path, got "${listen}"`);
  }
  return stripped;
}

function checkEndpoint(endpoint: string, where: string): void {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new InvalidArgumentError(`${where}: "${endpoint}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(`${where}: "${endpoint}" must be http:// or https://`);
  }
}
