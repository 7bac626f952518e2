import { createReadStream, existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { CdiRegistry } from './cdi/registry.js';
import type { Config } from './config/config.js';
import { FailedPreconditionError } from './errors.js';
import { prepareBuiltinPause, type SandboxImage } from './image/builtin-pause.js';
import { ImportDirectory } from './image/import-dir.js';
import { RegistrySandboxImage } from './image/sandbox-image.js';
import { proxyEnvFrom, type ProxyEnv } from './image/registry/proxy-env.js';
import { ImageService } from './image/service.js';
import { ContainerEvents } from './container/events.js';
import { ContainerService } from './container/service.js';
import { StatsService } from './container/stats.js';
import { RuntimeInfoService } from './info/service.js';
import { MetricsService } from './metrics/service.js';
import { disableIdleGc, enableIdleGc } from './util/idle-gc.js';
import type { MetricsEndpoint } from './observability/endpoint.js';
import { StreamingService } from './streaming/service.js';
import { CniNetworkManager } from './network/cni/manager.js';
import { ConmonRuntime } from './oci/conmon.js';
import { probeHandlers } from './oci/handlers.js';
import { detectSecurityModules } from './oci/lsm.js';
import { changesBetween, type ConfigChanges } from './service/reload.js';
import { SandboxService } from './sandbox/service.js';
import { imageLoaderDefinition } from './api/image-loader.js';
import { imageServiceHandlers } from './server/image-service.js';
import { imageLoaderHandlers } from './server/load-service.js';
import { podNamesLookup } from './server/pod-names.js';
import { runtimeServiceHandlers } from './server/runtime-service.js';
import { CriServer } from './server/server.js';
import { DaemonLayout } from './layout.js';
import { lockDirectories, type DaemonLock } from './persistence/daemon-lock.js';
import { findExecutable } from './util/executable.js';
import { elapsedMs } from './util/time.js';

export interface Daemon {
  /** Stop serving; pods and containers keep running under their conmon monitors. */
  close(): Promise<void>;
  /**
   * Take over what can change live from a config read again (SIGHUP): the log level and the
   * registry settings. Says what changed, and what of it waits for a restart.
   */
  reload(next: Config): ConfigChanges;
}

/**
 * Wire the daemon together and start serving. The socket is opened first so that clients get
 * a clear UNAVAILABLE ("starting") instead of connection refused while state is recovered.
 */
export async function startDaemon(config: Config, log: Logger): Promise<Daemon> {
  const started = process.hrtime.bigint();
  // Before anything is touched: a second daemon on the same root or state must not start.
  const lock = await lockDirectories([config.root, config.state]);
  try {
    return await serve(config, log, started, lock);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function serve(config: Config, log: Logger, started: bigint, lock: DaemonLock): Promise<Daemon> {
  checkCgroupDriver(config);
  enableIdleGc();

  const layout = new DaemonLayout(config.root, config.state);
  const conmon = await requireExecutable(config.runtime.conmon, 'conmon');
  const network = new CniNetworkManager({
    confDir: config.cni.confDir,
    binDirs: config.cni.binDirs,
    cacheDir: layout.cniResults,
    logger: log,
    defaultNetwork: config.cni.defaultNetwork,
    pluginTimeoutMs: config.cni.pluginTimeoutMs,
  });
  const images = new ImageService(config, log, registryProxyFrom(process.env, log));
  // The runtimes' probes (a trial container each) take the longest: the rest starts meanwhile.
  const [handlers] = await Promise.all([
    probeHandlers(config, {
      scratchDir: layout.probes,
      cgroupDriver: config.cgroupDriver,
      cgroupParent: config.defaultCgroupParent,
      log,
    }),
    network.start(),
    images.open(),
  ]);
  const runtime = new ConmonRuntime({
    conmon,
    handlers,
    bundleRoot: layout.bundles,
    exitDir: layout.exits,
    logger: log,
  });
  await runtime.open();

  const { resolve: sandboxImage, close: closeSandboxImage } = await sandboxImageResolver(config, layout, images, log);
  const oomFloor = await ownOomScoreAdj();
  const events = new ContainerEvents();
  const lsm = await detectSecurityModules(log, { selinux: config.enableSelinux });
  const cdi = new CdiRegistry({ specDirs: config.cdi.specDirs, log });
  await cdi.start();
  const sandboxes = new SandboxService({ config, layout, handlers, events, network, runtime, sandboxImage, ownOomScoreAdj: oomFloor, lsm, log });
  const containers = new ContainerService({ config, layout, handlers, runtime, images, sandboxes, events, cdi, ownOomScoreAdj: oomFloor, lsm, log });
  sandboxes.setMembers(containers);
  const stats = new StatsService(config, containers, sandboxes);
  const metrics = new MetricsService(stats);
  const streaming = new StreamingService({ config, containers, sandboxes, runtime, log });
  await streaming.listen();
  const info = new RuntimeInfoService(config, network, handlers, () => [...sandboxes.setAsideRecords(), ...containers.setAsideRecords()]);

  // Before the CRI socket, so every call is observed.
  const promEndpoint = config.metrics ? await startPrometheus(config.metrics, sandboxes, containers, log) : undefined;

  let ready = false;
  const wrapOptions = { log, isReady: () => ready, podOf: podNamesLookup(sandboxes, containers) };
  const server = new CriServer(
    runtimeServiceHandlers({ info, sandboxes, containers, stats, metrics, events, streaming }, wrapOptions),
    imageServiceHandlers(images, wrapOptions),
    [{ definition: imageLoaderDefinition, handlers: imageLoaderHandlers(images, wrapOptions) }],
  );
  await server.listen(config.socketPath);

  await sandboxes.recover();
  await containers.recover();
  // Only now does every container hold its layers, so unused content can safely go.
  await images.collectGarbage(log);
  // Before serving, as a node without a registry needs its images before any pod starts.
  const importDir = await startImportDirectory(config, images, log);
  ready = true;
  log.info(
    { socket: config.socketPath, root: config.root, state: config.state, network: network.status(), ms: elapsedMs(started) },
    'tscri is serving',
  );

  let running = config;
  return {
    reload(next: Config): ConfigChanges {
      const changes = changesBetween(running, next);
      if (changes.live.includes('logLevel')) log.level = next.logLevel;
      if (changes.live.includes('registry')) images.useRegistrySettings(next.registry);
      running = { ...running, logLevel: next.logLevel, registry: next.registry };
      return changes;
    },
    async close() {
      await server.close(5000);
      await importDir?.close();
      disableIdleGc();
      await promEndpoint?.close();
      await streaming.close();
      await containers.removalsFinished();
      network.close();
      cdi.close();
      runtime.close();
      await closeSandboxImage();
      await lock.release();
      log.info('tscri stopped; pods keep running');
    },
  };
}

/**
 * The systemd driver means runc asks systemd for every cgroup: on a host where systemd is not
 * running, that cannot work, and silently making cgroupfs cgroups with slice-style names (as
 * runc would) misleads the kubelet, which is told "systemd".
 */
function checkCgroupDriver(config: Config): void {
  if (config.cgroupDriver !== 'systemd' || existsSync(SYSTEMD_RUNNING_MARKER)) return;
  throw new FailedPreconditionError(`cgroup_driver is "systemd", but systemd is not running on this host (no ${SYSTEMD_RUNNING_MARKER})`, {
    hint: 'set cgroup_driver = "cgroupfs" here, and the kubelet\'s cgroupDriver to cgroupfs too',
  });
}

/** Present exactly when systemd is PID 1 (what sd_booted() checks). */
const SYSTEMD_RUNNING_MARKER = '/run/systemd/system';

async function requireExecutable(name: string, what: string): Promise<string> {
  const found = await findExecutable(name);
  if (!found) {
    throw new FailedPreconditionError(`${what} not found ("${name}")`, {
      hint: `install it (hack/setup.sh installs every runtime dependency) or set [runtime] ${what} in the config`,
    });
  }
  return found;
}

/** The built-in pause image unless the config names one, which is then pulled on first use. */
async function sandboxImageResolver(
  config: Config,
  layout: DaemonLayout,
  images: ImageService,
  log: Logger,
): Promise<{ resolve: () => Promise<SandboxImage>; close: () => Promise<void> }> {
  if (config.sandboxImage === '') {
    const builtin = await prepareBuiltinPause(layout.builtinPauseRootfs);
    return { resolve: async () => builtin, close: async () => undefined };
  }
  const fromRegistry = new RegistrySandboxImage(config.sandboxImage, images, layout, log);
  return { resolve: () => fromRegistry.get(), close: () => fromRegistry.close() };
}

/**
 * The `[metrics]` endpoint, counting pods and containers as ListPodSandbox and ListContainers
 * answer. Loaded only when configured: prom-client alone adds ~70 ms to the daemon's start.
 */
async function startPrometheus(address: NonNullable<Config['metrics']>, sandboxes: SandboxService, containers: ContainerService, log: Logger): Promise<MetricsEndpoint> {
  const { startMetricsEndpoint } = await import('./observability/endpoint.js');
  return startMetricsEndpoint(address, { pods: () => sandboxes.list(null), containers: () => containers.list(null) }, log);
}

/** `[images] import_dir`, when set: its archives loaded now and as they appear. */
async function startImportDirectory(config: Config, images: ImageService, log: Logger): Promise<ImportDirectory | undefined> {
  if (config.images.importDir === '') return undefined;
  const importDir = new ImportDirectory({
    dir: config.images.importDir,
    stateFile: path.join(images.layout.base, 'imported.json'),
    load: (file, fileLog) => images.load(createReadStream(file), { log: fileLog, pin: true }),
    log,
  });
  await importDir.start();
  return importDir;
}

/** The daemon's oom_score_adj; containers cannot be given a lower one. */
async function ownOomScoreAdj(): Promise<number> {
  const text = await fs.readFile('/proc/self/oom_score_adj', 'utf8');
  return Number.parseInt(text.trim(), 10) || 0;
}

/** The proxy settings of the environment, read once; what cannot be used is logged, not fatal. */
function registryProxyFrom(env: NodeJS.ProcessEnv, log: Logger): ProxyEnv {
  const proxy = proxyEnvFrom(env);
  for (const problem of proxy.problems) log.warn(`proxy setting ignored: ${problem}`);
  // A proxy URL may carry a password: only where it is goes to the log.
  const where = (url: string | undefined) => (url ? new URL(url).host : undefined);
  if (proxy.http || proxy.https) log.info({ httpProxy: where(proxy.http), httpsProxy: where(proxy.https) }, 'registry requests go through a proxy');
  return proxy;
}
