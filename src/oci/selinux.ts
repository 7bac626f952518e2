import { randomInt } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as cri from '../api/cri.js';
import { InvalidArgumentError, TscriError } from '../errors.js';
import { fileExists } from '../util/files.js';
import { quote } from '../validation/fields.js';

/** An SELinux security context, user:role:type:level. */
export interface SelinuxContext {
  user: string;
  role: string;
  type: string;
  level: string;
}

/** What the host's policy gives containers by default, found once at daemon start. */
export interface SelinuxHost {
  process: SelinuxContext;
  file: SelinuxContext;
}

/** The labels a process and the mounts runc makes for it get; either may be absent. */
export interface SelinuxLabels {
  processLabel?: string;
  mountLabel?: string;
}

/** container-selinux's types, used when the policy names none (no lxc_contexts). */
const FALLBACK_PROCESS: SelinuxContext = { user: 'system_u', role: 'system_r', type: 'container_t', level: 's0' };
const FALLBACK_FILE: SelinuxContext = { user: 'system_u', role: 'object_r', type: 'container_file_t', level: 's0' };
/** MCS categories pods draw from (c0 … c1023, the usual policy's range). */
const CATEGORIES = 1024;
/** Attempts at an unused pair before giving up; with half a million pairs, never reached in practice. */
const MAX_DRAWS = 10_000;
const LEVEL = /^s\d+(-s\d+)?(:c\d+(\.c\d+)?(,c\d+(\.c\d+)?)*)?$/;
const NAME = /^[A-Za-z0-9_.-]+$/;

/**
 * SELinux is on when selinuxfs is mounted (its `enforce` file exists) and a policy is loaded
 * (a process's context reads "kernel" before one is). The container defaults come from the
 * policy's lxc_contexts, as every runtime reads them.
 */
export async function detectSelinux(root = '/'): Promise<SelinuxHost | undefined> {
  if (!(await fileExists(path.join(root, 'sys/fs/selinux/enforce')))) return undefined;
  const current = await fs.readFile(path.join(root, 'proc/self/attr/current'), 'utf8').catch(() => '');
  const context = current.replace(/\0/g, '').trim();
  if (context === '' || context === 'kernel') return undefined;
  return readContainerContexts(root);
}

async function readContainerContexts(root: string): Promise<SelinuxHost> {
  const config = await fs.readFile(path.join(root, 'etc/selinux/config'), 'utf8').catch(() => '');
  const policy = /^\s*SELINUXTYPE\s*=\s*(\S+)/m.exec(config)?.[1] ?? 'targeted';
  const text = await fs.readFile(path.join(root, 'etc/selinux', policy, 'contexts/lxc_contexts'), 'utf8').catch(() => '');
  const entry = (key: string): SelinuxContext | undefined => {
    const value = new RegExp(`^\\s*${key}\\s*=\\s*"?([^"\\s]+)"?`, 'm').exec(text)?.[1];
    return value ? parseContext(value) : undefined;
  };
  return { process: entry('process') ?? FALLBACK_PROCESS, file: entry('file') ?? FALLBACK_FILE };
}

/** "user:role:type:level" (the level may hold colons: s0:c1,c2); undefined if malformed. */
export function parseContext(label: string): SelinuxContext | undefined {
  const [user, role, type, ...level] = label.split(':');
  if (!user || !role || !type || level.length === 0) return undefined;
  return { user, role, type, level: level.join(':') };
}

export function formatContext(c: SelinuxContext): string {
  return `${c.user}:${c.role}:${c.type}:${c.level}`;
}

/** The pod-level facts labels depend on. */
export interface PodSelinux {
  options: cri.SELinuxOption | null;
  /** The pod's level (SandboxRecord.selinuxLevel). */
  level: string | undefined;
  /** Host PID or IPC: SELinux cannot separate a pod that shares them, so it gets no labels. */
  sharesHostProcesses: boolean;
}

/**
 * SELinux labels for pods and their containers. Each pod gets an MCS level of its own
 * (s0:cA,cB, drawn at random among pairs no live pod holds) unless it names one; the pause
 * process and every container of the pod run at that level, so pods cannot reach each
 * other's files while a pod's containers share theirs. On a host without SELinux nothing is
 * labelled and selinux_options are not applied.
 */
export class Selinux {
  /** Live pods per level. */
  private readonly holders = new Map<string, number>();

  constructor(
    private readonly host: SelinuxHost | undefined,
    private readonly random: (below: number) => number = randomInt,
  ) {}

  get enabled(): boolean {
    return this.host !== undefined;
  }

  /**
   * A new pod's level, held until `release`: the one it names, or a fresh pair. Undefined
   * without SELinux. Checks the options, which label every process of the pod.
   */
  podLevel(options: cri.SELinuxOption | null, field: string): string | undefined {
    if (!this.host) return undefined;
    checkOptions(options, field);
    const level = options?.level || this.freshLevel();
    this.hold(level);
    return level;
  }

  /** A recovered pod's level, held again after a restart. */
  hold(level: string | undefined): void {
    if (level) this.holders.set(level, (this.holders.get(level) ?? 0) + 1);
  }

  release(level: string | undefined): void {
    if (!level) return;
    const left = (this.holders.get(level) ?? 0) - 1;
    if (left > 0) this.holders.set(level, left);
    else this.holders.delete(level);
  }

  /** The pause process's labels: none for a privileged pod's process (as containerd). */
  pauseLabels(pod: PodSelinux, privileged: boolean): SelinuxLabels {
    return this.labelsFor(pod, null, privileged, '');
  }

  /** A container's labels: the pod's, with what the container's own options name instead. */
  containerLabels(pod: PodSelinux, options: cri.SELinuxOption | null, privileged: boolean, field: string): SelinuxLabels {
    return this.labelsFor(pod, options, privileged, field);
  }

  private labelsFor(pod: PodSelinux, own: cri.SELinuxOption | null, privileged: boolean, field: string): SelinuxLabels {
    if (!this.host || !pod.level || pod.sharesHostProcesses) return {};
    checkOptions(own, field);
    const pick = (key: keyof SelinuxContext, fallback: string): string => own?.[key] || pod.options?.[key] || fallback;
    const level = own?.level || pod.level;
    const process = {
      user: pick('user', this.host.process.user),
      role: pick('role', this.host.process.role),
      type: pick('type', this.host.process.type),
      level,
    };
    // Files keep the policy's object role and type; the user and level follow the process.
    const mount = { ...this.host.file, user: pick('user', this.host.file.user), level };
    return { ...(privileged ? {} : { processLabel: formatContext(process) }), mountLabel: formatContext(mount) };
  }

  private freshLevel(): string {
    for (let i = 0; i < MAX_DRAWS; i++) {
      const a = this.random(CATEGORIES);
      const b = this.random(CATEGORIES);
      if (a === b) continue;
      const level = `s0:c${Math.min(a, b)},c${Math.max(a, b)}`;
      if (!this.holders.has(level)) return level;
    }
    throw new TscriError('ResourceExhausted', 'no unused SELinux MCS level is left for a new pod');
  }
}

/**
 * Each part must be one SELinux name (a colon would shift the label's fields) and the level
 * an MLS/MCS range such as s0 or s0:c1,c2; only checked where SELinux applies them.
 */
function checkOptions(options: cri.SELinuxOption | null, field: string): void {
  if (!options) return;
  for (const key of ['user', 'role', 'type'] as const) {
    const value = options[key];
    if (value && !NAME.test(value)) throw new InvalidArgumentError(`${field}.${key}: ${quote(value)} is not an SELinux name`);
  }
  if (options.level && !LEVEL.test(options.level)) {
    throw new InvalidArgumentError(`${field}.level: ${quote(options.level)} is not an SELinux level (such as s0 or s0:c1,c2)`);
  }
}
