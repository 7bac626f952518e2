/**
 * Running CNI plugin executables: where they are found, the environment they get, and how
 * a failure becomes a CniPluginError. The process itself is started by a PluginExecutor so
 * tests can stand in for real plugins.
 */
import { constants as fsConstants, accessSync, statSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MAX_OUTPUT_BYTES, exec, overflowOf, outputExcerpt } from '../../util/run.js';
import { messageOf } from '../../errors.js';
import { isRecord } from './config.js';
import { CniPluginError, type CniCommand } from './errors.js';

/**
 * A hung plugin must not hold a sandbox operation forever; kubelet gives up on
 * RunPodSandbox after 4 min. Set by `[cni] plugin_timeout_seconds`.
 */
export const DEFAULT_PLUGIN_TIMEOUT_MS = 180_000;

/** Used when the daemon itself runs without PATH: plugins run iptables, ip, modprobe … */
const FALLBACK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface PluginOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface PluginExecutor {
  /**
   * Run a plugin to completion with `stdin` as its standard input and exactly `env` as its
   * environment. Resolves whatever the exit status; rejects only when the plugin could not
   * run or finish (not executable, timed out, killed by a signal).
   */
  exec(pluginPath: string, env: Readonly<Record<string, string>>, stdin: string): Promise<PluginOutput>;
}

/**
 * Runs plugins as real processes, each in a process group of its own (util/run.ts): the
 * timeout kills the plugin with everything it started, the result comes when the plugin
 * exits even if a child of its still holds its stdout, and whatever it leaves running is
 * killed then. Output beyond `maxOutputBytes` per stream kills the plugin: a CNI result is a
 * few KB.
 */
export class ProcessPluginExecutor implements PluginExecutor {
  constructor(
    private readonly timeoutMs: number = DEFAULT_PLUGIN_TIMEOUT_MS,
    private readonly maxOutputBytes: number = DEFAULT_MAX_OUTPUT_BYTES,
  ) {}

  async exec(pluginPath: string, env: Readonly<Record<string, string>>, stdin: string): Promise<PluginOutput> {
    const limits = { timeoutMs: this.timeoutMs, maxOutputBytes: this.maxOutputBytes };
    const result = await exec(pluginPath, [], { input: stdin, env: { ...env }, ...limits });
    const overflow = overflowOf(result, limits);
    if (overflow !== undefined) throw new Error(overflow);
    if (result.timedOut) throw new Error(`timed out after ${this.timeoutMs} ms; killed with every process it started`);
    if (result.exitCode === null) throw new Error(`killed by ${result.signal}`);
    return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode };
  }
}

/** What identifies one plugin invocation, besides the plugin and its config. */
export interface InvocationContext {
  command: CniCommand;
  containerId: string;
  /** Empty when the netns is gone; plugins then clean up what they can without it. */
  netnsPath: string;
  ifName: string;
  /** Rendered CNI_ARGS. */
  cniArgs: string;
  binDirs: readonly string[];
}

export function pluginEnv(ctx: InvocationContext): Record<string, string> {
  return {
    CNI_COMMAND: ctx.command,
    CNI_CONTAINERID: ctx.containerId,
    CNI_NETNS: ctx.netnsPath,
    CNI_IFNAME: ctx.ifName,
    CNI_ARGS: ctx.cniArgs,
    // Plugins that delegate (bridge → host-local) search this for their delegate.
    CNI_PATH: ctx.binDirs.join(path.delimiter),
    PATH: process.env['PATH'] || FALLBACK_PATH,
  };
}

/**
 * The first `<dir>/<type>` over bin_dirs that is an executable file. Synchronous, so that
 * status() can ask it on every call; it costs a few stat calls and reads nothing.
 */
export function findPlugin(type: string, binDirs: readonly string[]): string | undefined {
  for (const dir of binDirs) {
    const candidate = path.join(dir, type);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // Missing or not executable here: keep looking in the next directory.
    }
  }
  return undefined;
}

export interface PluginCall {
  /** The plugin's type, for error messages. */
  type: string;
  pluginPath: string;
  env: Readonly<Record<string, string>>;
  /** The complete config handed over on stdin. */
  config: Readonly<Record<string, unknown>>;
}

/** Run one plugin; its stdout on success, a CniPluginError otherwise. */
export async function invokePlugin(executor: PluginExecutor, command: CniCommand, call: PluginCall): Promise<string> {
  let output: PluginOutput;
  try {
    output = await executor.exec(call.pluginPath, call.env, JSON.stringify(call.config));
  } catch (err) {
    throw new CniPluginError(
      { plugin: call.type, command, cniMsg: `could not run ${call.pluginPath}`, details: messageOf(err) },
      { cause: err },
    );
  }
  if (output.exitCode !== 0) throw pluginFailure(call.type, command, output);
  return output.stdout;
}

/**
 * A failed plugin prints `{cniVersion, code, msg, details}` on stdout. One that crashed or
 * does not follow the spec prints nothing useful there; its stderr is the best we have.
 */
export function pluginFailure(type: string, command: CniCommand, output: PluginOutput): CniPluginError {
  const reported = parseErrorJson(output.stdout);
  if (reported !== undefined) return new CniPluginError({ plugin: type, command, ...reported });
  return new CniPluginError({
    plugin: type,
    command,
    cniMsg: `exited with status ${output.exitCode}`,
    details: outputExcerpt(output.stderr.trim() || output.stdout),
  });
}

function parseErrorJson(stdout: string): { cniCode?: number; cniMsg: string; details?: string } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  if (!isRecord(value)) return undefined;
  const code = value['code'];
  const msg = value['msg'];
  if (typeof code !== 'number' && typeof msg !== 'string') return undefined;
  const details = value['details'];
  const error: { cniCode?: number; cniMsg: string; details?: string } = {
    // Quoted, not whole: a plugin's text becomes the gRPC status kubelet shows in events.
    cniMsg: typeof msg === 'string' && msg !== '' ? outputExcerpt(msg) : 'no message',
  };
  if (typeof code === 'number') error.cniCode = code;
  if (details !== undefined && details !== null && details !== '') {
    error.details = outputExcerpt(typeof details === 'string' ? details : JSON.stringify(details));
  }
  return error;
}
