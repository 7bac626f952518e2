/**
 * What runc says when it fails, turned into an error a client can act on. runc reports a
 * bad request (a command the image lacks, a sysctl value the kernel refuses) the same way as
 * its own failures, and buries it under its log format and cleanup noise: the message is
 * cleaned, and what the request caused answers InvalidArgument instead of INTERNAL.
 */
import { InternalError, InvalidArgumentError, type TscriError } from '../errors.js';
import { quote } from '../validation/fields.js';

/**
 * Fragments runc adds while cleaning up after a failed create, whatever the cause (runc 1.1
 * tries to freeze the cgroup of a container that never got one). They only hide the cause.
 */
const CLEANUP_NOISE = [/cannot toggle freezer: cgroups not configured for container:?\s*/g, /lstat : no such file or directory:?\s*/g];

/** runc's `level=error msg="…"` lines as their messages, noise removed, repeated prefixes once. */
export function cleanRuncMessage(message: string): string {
  const msgs = [...message.matchAll(/msg="((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\"/g, '"'));
  let text = (msgs.length > 0 ? msgs.join(': ') : message).trim();
  for (const noise of CLEANUP_NOISE) text = text.replace(noise, '');
  text = text.replace(/(runc create failed: )+/g, 'runc create failed: ');
  return text.replace(/(:\s*)+$/, '').trim();
}

interface Cause {
  pattern: RegExp;
  explain: (match: RegExpMatchArray) => string;
}

/** Failures that the request's content caused, and which field to name for each. */
const REQUEST_CAUSES: Cause[] = [
  {
    pattern: /exec: "([^"]*)": (?:stat [^:]*: )?(executable file not found in \$PATH|no such file or directory|permission denied|is a directory)/,
    explain: (m) => `command ${quote(m[1])} cannot be run in the container: ${m[2]}`,
  },
  {
    pattern: /write \/proc\/sys\/([^:]+): (invalid argument|no such file or directory|numerical result out of range)/,
    explain: (m) => `sysctl ${quote(m[1]!.replaceAll('/', '.'))}: the kernel refused the value (${m[2]})`,
  },
  {
    pattern: /chdir to cwd \("([^"]*)"\) set in config\.json failed: (.*)$/m,
    explain: (m) => `working directory ${quote(m[1])}: ${m[2]}`,
  },
  {
    // A working directory, mount target or device path that is a file in the image.
    pattern: /error during container init: mkdir ([^:]+): (not a directory|file exists)/,
    explain: (m) => `${quote(m[1])} cannot be made a directory in the container: ${m[2]}`,
  },
  {
    pattern: /error mounting "([^"]*)" to rootfs at "([^"]*)": (.*(not a directory|is a directory|no such file or directory).*)$/m,
    explain: (m) => `cannot mount ${quote(m[1])} at ${quote(m[2])}: ${m[3]}`,
  },
  {
    // resources.unified holds cgroup v2 files; runc refuses them on a v1 (or hybrid) host.
    pattern: /cannot use unified on cgroup v1/,
    explain: () => 'resources.unified names cgroup v2 settings, and this node runs cgroup v1',
  },
  {
    // cgroup v1 refuses a memory limit below what the container already uses.
    pattern: /(memory\.(memsw\.)?limit_in_bytes|memory\.max)[^:]*: device or resource busy/,
    explain: () => "the memory limit is below the container's current usage",
  },
];

/** The error for a failed runc operation: InvalidArgument when the request caused it. */
export function runtimeFailure(what: string, rawMessage: string): TscriError {
  const message = cleanRuncMessage(rawMessage);
  for (const cause of REQUEST_CAUSES) {
    const match = message.match(cause.pattern);
    if (match) return new InvalidArgumentError(`${what}: ${cause.explain(match)}`);
  }
  return new InternalError(`${what}: ${message}`);
}
