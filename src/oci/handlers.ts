/**
 * Runtime handlers: the OCI runtimes pods choose by name (a RuntimeClass's `handler`), each a
 * binary with runc's command line (runc, crun) and a state directory of its own. Each is
 * probed once at start, for its version, its features, and whether it can create a container
 * on this host at all (crun 1.8, for one, refuses hybrid cgroup hierarchies), so that a pod
 * asking for a runtime that cannot work is refused up front with the runtime's own reason.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { CgroupDriver, Config } from '../config/config.js';
import { FailedPreconditionError, InvalidArgumentError, messageOf } from '../errors.js';
import { findExecutable } from '../util/executable.js';
import { newId } from '../util/ids.js';
import { exec } from '../util/run.js';
import { quote } from '../validation/fields.js';
import { featuresFrom, probeRuntimeFeatures, type RuntimeFeatures } from './features.js';
import { Runc } from './runc.js';
import { baseSpec } from './spec.js';

/** The handler of pods and containers made before handlers existed: runc was the only one. */
export const LEGACY_HANDLER = 'runc';

/** How long a probe (`--version`, or a trial create) may take. */
const PROBE_TIMEOUT_MS = 10_000;

/** One configured OCI runtime, as probed at start. */
export interface RuntimeHandler {
  name: string;
  cli: Runc;
  /** The first line of `<binary> --version`, for messages and verbose Status. */
  version: string;
  features: RuntimeFeatures;
  /** Why this runtime cannot run containers on this host; undefined when it can. */
  unusable?: string;
}

/** The configured handlers, and the choice of one for a pod. */
export class RuntimeHandlers {
  private readonly byName: ReadonlyMap<string, RuntimeHandler>;

  constructor(
    readonly defaultName: string,
    handlers: RuntimeHandler[],
  ) {
    this.byName = new Map(handlers.map((handler) => [handler.name, handler]));
    if (!this.byName.has(defaultName)) throw new Error(`default handler ${defaultName} is not among the handlers`);
  }

  /**
   * The handler a RunPodSandbox asks for ("" is the default). An unknown name is the
   * request's mistake; a known runtime that cannot work here is the node's.
   */
  select(requested: string): RuntimeHandler {
    const handler = this.byName.get(requested === '' ? this.defaultName : requested);
    if (!handler) {
      throw new InvalidArgumentError(`runtime_handler: ${quote(requested)} is not configured (this node has: ${this.names().join(', ')})`);
    }
    if (handler.unusable) {
      throw new FailedPreconditionError(`runtime_handler ${quote(handler.name)} cannot run containers on this node: ${handler.unusable}`);
    }
    return handler;
  }

  /** A handler by its configured name; a pod from before handlers existed names none. */
  get(name: string | undefined): RuntimeHandler | undefined {
    return this.byName.get(name ?? LEGACY_HANDLER);
  }

  get default(): RuntimeHandler {
    return this.byName.get(this.defaultName)!;
  }

  all(): RuntimeHandler[] {
    return [...this.byName.values()];
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }
}

export interface ProbeOptions {
  /** Trial containers' bundles go below this (volatile state), and are removed. */
  scratchDir: string;
  cgroupDriver: CgroupDriver;
  /** The cgroup parent the trial container is made under (the daemon's default). */
  cgroupParent: string;
  log: Logger;
}

/**
 * Every configured handler, probed side by side. The default handler's binary must exist
 * (nothing could run otherwise); another missing binary makes only that handler unusable.
 */
export async function probeHandlers(config: Config, options: ProbeOptions): Promise<RuntimeHandlers> {
  const handlers = await Promise.all(
    Object.entries(config.runtime.handlers).map(async ([name, handlerConfig]) => {
      const binary = await findExecutable(handlerConfig.path);
      if (!binary) {
        const why = `${handlerConfig.path} is not an executable file`;
        if (name === config.runtime.defaultHandler) {
          throw new FailedPreconditionError(`runtime handler ${name} (the default): ${why}`, {
            hint: `install it (hack/setup.sh installs runc) or set [runtime.handlers.${name}] path in the config`,
          });
        }
        return missingHandler(name, handlerConfig.path, handlerConfig.root, why);
      }
      return probeHandler(name, new Runc(binary, handlerConfig.root, options.cgroupDriver === 'systemd'), options);
    }),
  );
  for (const handler of handlers) {
    const fields = { handler: handler.name, binary: handler.cli.binary, version: handler.version, features: handler.features };
    if (handler.unusable) options.log.warn({ ...fields, reason: handler.unusable }, 'runtime handler cannot run containers on this node; pods asking for it are refused');
    else options.log.info(fields, 'runtime handler ready');
  }
  return new RuntimeHandlers(config.runtime.defaultHandler, handlers);
}

async function probeHandler(name: string, cli: Runc, options: ProbeOptions): Promise<RuntimeHandler> {
  const [version, features, unusable] = await Promise.all([
    versionOf(cli.binary),
    probeRuntimeFeatures(cli.binary),
    trialCreate(cli, options),
  ]);
  return { name, cli, version, features, ...(unusable ? { unusable } : {}) };
}

/** A handler whose binary is not there: no features (as a runtime without `features`), and why. */
function missingHandler(name: string, binary: string, root: string, why: string): RuntimeHandler {
  return { name, cli: new Runc(binary, root), version: 'unknown', features: featuresFrom({}, os.release()), unusable: why };
}

async function versionOf(binary: string): Promise<string> {
  const result = await exec(binary, ['--version'], { timeoutMs: PROBE_TIMEOUT_MS }).catch(() => undefined);
  return result?.exitCode === 0 ? (result.stdout.split('\n')[0] ?? '').trim() || 'unknown' : 'unknown';
}

/**
 * Create, and delete, a container that never runs: what `features` cannot tell is whether
 * the runtime accepts this host's cgroups and kernel. Its process is /proc/self/exe, which
 * exists in any rootfs once /proc is mounted, so the rootfs can be an empty directory.
 * Resolves with the runtime's reason when it cannot, undefined when it can.
 */
async function trialCreate(cli: Runc, options: ProbeOptions): Promise<string | undefined> {
  const id = `tscri-probe-${newId().slice(0, 12)}`;
  const bundle = path.join(options.scratchDir, id);
  try {
    await fs.mkdir(path.join(bundle, 'rootfs'), { recursive: true, mode: 0o700 });
    const spec = baseSpec(path.join(bundle, 'rootfs'));
    spec.process.args = ['/proc/self/exe'];
    spec.root.readonly = true;
    spec.linux.cgroupsPath = options.cgroupDriver === 'systemd' ? `${options.cgroupParent}:tscri-probe:${id}` : path.join(options.cgroupParent, id);
    await fs.writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec));
    await cli.createDetached(id, bundle, PROBE_TIMEOUT_MS);
    return undefined;
  } catch (err) {
    return messageOf(err).replace(/^runc create failed: /, '');
  } finally {
    await cli.delete(id, true).catch((err: unknown) => options.log.warn({ handler: cli.binary, containerId: id, err }, 'cannot delete the trial container'));
    await fs.rm(bundle, { recursive: true, force: true });
  }
}
