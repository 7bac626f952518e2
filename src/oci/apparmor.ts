import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as cri from '../api/cri.js';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { findExecutable } from '../util/executable.js';
import { run, type ExecOptions, type ExecResult } from '../util/run.js';
import { quote } from '../validation/fields.js';

/** The profile RuntimeDefault means; loaded by the daemon when the host lacks it. */
export const APPARMOR_DEFAULT_PROFILE = 'tscri-default';

/** apparmor_parser compiles a profile this small in well under a second; a minute means it is stuck. */
const PARSER_TIMEOUT_MS = 30_000;

/** What the host offers, found once at daemon start. */
export interface AppArmorHost {
  /** securityfs's list of loaded profiles, one "name (mode)" a line. */
  profilesFile: string;
  /** apparmor_parser, if installed: needed only to load the default profile. */
  parser: string | undefined;
}

/**
 * AppArmor is usable when the module is enabled (its `enabled` parameter reads "Y") and
 * securityfs shows its directory; `root` lets tests point at a fixture tree.
 */
export async function detectAppArmor(root = '/'): Promise<AppArmorHost | undefined> {
  const enabled = await fs.readFile(path.join(root, 'sys/module/apparmor/parameters/enabled'), 'utf8').catch(() => '');
  if (!enabled.startsWith('Y')) return undefined;
  const securityDir = path.join(root, 'sys/kernel/security/apparmor');
  if (!(await fs.stat(securityDir).then((s) => s.isDirectory(), () => false))) return undefined;
  return { profilesFile: path.join(securityDir, 'profiles'), parser: await findExecutable('apparmor_parser') };
}

/** The names in securityfs's profile list ("name (enforce)"; a name may hold spaces). */
export function parseLoadedProfiles(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const mode = line.lastIndexOf(' (');
    if (mode > 0) names.add(line.slice(0, mode));
  }
  return names;
}

/**
 * The RuntimeDefault profile: everything a process normally does is allowed (files,
 * network, capabilities the container holds), and what reaches past the container is not —
 * writes to the kernel's knobs under /proc and /sys (cgroupfs excepted: runc and systemd
 * inside containers use it), mounts, the firmware and LSM interfaces, and tracing or
 * signalling anything outside the profile except from the host and the OCI runtimes.
 */
export function defaultProfileText(name = APPARMOR_DEFAULT_PROFILE): string {
  return `# Written by tscri; reloaded whenever it is missing from the kernel.
@{PROC}=/proc/

profile ${name} flags=(attach_disconnected,mediate_deleted) {
  file,
  network,
  capability,
  umount,
  deny mount,

  # Signals: from the host and from the runtimes that stop containers, and within the profile.
  signal (receive) peer=unconfined,
  signal (receive) peer=runc,
  signal (receive) peer=crun,
  signal (send,receive) peer=${name},
  ptrace (trace,read,tracedby,readby) peer=${name},

  # /proc: per-process files (/proc/<pid>/...) stay writable; nothing else at the top does.
  deny @{PROC}/* w,
  deny @{PROC}/{[^0-9s]*,s[^y]*,sy[^s]*,sys?*}/** w,
  deny @{PROC}/{sysrq-trigger,kcore} rwklx,
  # Sysctls were set by the runtime before this profile applied; only kernel.shm* (a
  # per-IPC-namespace limit) may still change from inside.
  deny @{PROC}/sys/* w,
  deny @{PROC}/sys/{[^k]*,k[^e]*,ke[^r]*,ker[^n]*,kern[^e]*,kerne[^l]*,kernel?*}/** w,
  deny @{PROC}/sys/kernel/{[^s]*,s[^h]*,sh[^m]*} w,
  deny @{PROC}/sys/kernel/*/** w,

  # /sys: read-only, except the container's cgroup.
  deny /sys/{[^f]*,f[^s]*,fs?*}/** wklx,
  deny /sys/fs/{[^c]*,c[^g]*,cg[^r]*,cgr[^o]*,cgro[^u]*,cgrou[^p]*,cgroup?*}/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
  deny /sys/devices/virtual/powercap/** rwklx,
}
`;
}

/** How a host tool is run; tests pass a fake. */
export type Runner = (file: string, args: readonly string[], options: ExecOptions) => Promise<ExecResult>;

export interface AppArmorRequest {
  /** The structured field; when present it decides. */
  profile: cri.SecurityProfile | null;
  /** The deprecated string (containers only): "", "runtime/default", "unconfined", "localhost/<name>". */
  legacy: string;
  privileged: boolean;
  /** The request's field, for messages ("config.linux.security_context.apparmor"). */
  field: string;
}

type Choice = { kind: 'default' } | { kind: 'unconfined' } | { kind: 'localhost'; name: string; field: string };

/**
 * The AppArmor profile of containers and pause processes. An unset request means
 * RuntimeDefault, as the API says of "runtime/default". On a host without AppArmor there is
 * nothing to apply: RuntimeDefault and Unconfined run unconfined, and a named (Localhost)
 * profile is refused, since what it asks for cannot be given.
 */
export class AppArmor {
  private loading: Promise<void> | undefined;

  constructor(
    private readonly host: AppArmorHost | undefined,
    private readonly runner: Runner = run,
  ) {}

  get enabled(): boolean {
    return this.host !== undefined;
  }

  /** The OCI process.apparmorProfile; undefined leaves the process unconfined. */
  async profileFor(request: AppArmorRequest): Promise<string | undefined> {
    const choice = chooseProfile(request);
    if (!this.host) {
      if (choice.kind !== 'localhost') return undefined;
      throw new InvalidArgumentError(`${choice.field}: AppArmor profile ${quote(choice.name)} was asked for, but AppArmor is not enabled on this host`);
    }
    switch (choice.kind) {
      case 'unconfined':
        return undefined;
      case 'localhost':
        if (!(await this.loaded(this.host)).has(choice.name)) {
          throw new InvalidArgumentError(`${choice.field}: AppArmor profile ${quote(choice.name)} is not loaded`, {
            hint: 'load it on the node first (apparmor_parser -r <file>)',
          });
        }
        return choice.name;
      default:
        // As containerd: a privileged container asked for the default gets none.
        if (request.privileged) return undefined;
        await this.ensureDefaultLoaded(this.host);
        return APPARMOR_DEFAULT_PROFILE;
    }
  }

  private async loaded(host: AppArmorHost): Promise<Set<string>> {
    return parseLoadedProfiles(await fs.readFile(host.profilesFile, 'utf8'));
  }

  /**
   * Checked on every use, not only at start: a restart of the host's apparmor service
   * unloads profiles it does not know. Concurrent callers share one load.
   */
  private async ensureDefaultLoaded(host: AppArmorHost): Promise<void> {
    if ((await this.loaded(host)).has(APPARMOR_DEFAULT_PROFILE)) return;
    this.loading ??= this.loadDefault(host).finally(() => (this.loading = undefined));
    await this.loading;
  }

  private async loadDefault(host: AppArmorHost): Promise<void> {
    if (!host.parser) {
      throw new FailedPreconditionError(`the AppArmor profile ${APPARMOR_DEFAULT_PROFILE} is not loaded, and apparmor_parser is not installed to load it`, {
        hint: 'install apparmor_parser (the apparmor package), or ask for an Unconfined or Localhost profile',
      });
    }
    // -r replaces a profile of the same name; -K skips the parser's cache, whose entry could
    // be a profile of this name from another tscri version.
    await this.runner(host.parser, ['-Kr'], { input: defaultProfileText(), timeoutMs: PARSER_TIMEOUT_MS });
  }
}

/** The structured field if present, else the deprecated string. */
function chooseProfile(request: AppArmorRequest): Choice {
  const { profile } = request;
  if (profile) {
    if (profile.profile_type === 'Unconfined') return { kind: 'unconfined' };
    if (profile.profile_type !== 'Localhost') return { kind: 'default' };
    // The API names a bare profile; kubelets that send "localhost/<name>" are met halfway.
    return localhost(profile.localhost_ref.replace(/^localhost\//, ''), `${request.field}.localhost_ref`);
  }
  const legacy = request.legacy;
  const legacyField = request.field.replace(/apparmor$/, 'apparmor_profile');
  if (legacy === '' || legacy === 'runtime/default') return { kind: 'default' };
  if (legacy === 'unconfined') return { kind: 'unconfined' };
  if (legacy.startsWith('localhost/')) return localhost(legacy.slice('localhost/'.length), legacyField);
  throw new InvalidArgumentError(`${legacyField}: unknown AppArmor profile ${quote(legacy)} (expected runtime/default, unconfined or localhost/<name>)`);
}

function localhost(name: string, field: string): Choice {
  if (name === '') throw new InvalidArgumentError(`${field}: a Localhost AppArmor profile needs a name`);
  return { kind: 'localhost', name, field };
}
