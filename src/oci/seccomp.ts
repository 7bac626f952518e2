import type * as cri from '../api/cri.js';
import { InvalidArgumentError } from '../errors.js';
import { readFileBelow } from '../util/confined.js';
import { quote } from '../validation/fields.js';
import { EPERM, RUNTIME_DEFAULT_RULES, SECCOMP_ARCHITECTURES, type DefaultRule, type NodeArch } from './seccomp-default.js';
import type { OciSeccomp } from './spec-types.js';

/**
 * The RuntimeDefault profile for a container with `capabilities` (its bounding set) on `arch`:
 * refuse everything with EPERM except what a rule of seccomp-default.ts allows for them.
 * Built per container because the capability and architecture conditions decide which rules
 * exist; runc gets only plain OCI rules.
 */
export function runtimeDefaultProfile(capabilities: readonly string[], arch: string = process.arch): OciSeccomp {
  const held = new Set(capabilities);
  const applies = (rule: DefaultRule): boolean =>
    (rule.arch === undefined || rule.arch.includes(arch as NodeArch)) &&
    !(rule.notArch ?? []).includes(arch as NodeArch) &&
    (rule.caps ?? []).every((cap) => held.has(cap)) &&
    !(rule.unlessCaps ?? []).some((cap) => held.has(cap));
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: [...(SECCOMP_ARCHITECTURES[arch as NodeArch] ?? [])],
    syscalls: RUNTIME_DEFAULT_RULES.filter(applies).map(ociRule),
  };
}

function ociRule(rule: DefaultRule): NonNullable<OciSeccomp['syscalls']>[number] {
  return {
    names: [...rule.syscalls],
    action: rule.action ? 'SCMP_ACT_ERRNO' : 'SCMP_ACT_ALLOW',
    ...(rule.action ? { errnoRet: rule.action.errno } : {}),
    ...(rule.args ? { args: rule.args.map((arg) => ({ ...arg })) } : {}),
  };
}

export interface SeccompRequest {
  /** The structured field; when present it decides. */
  seccomp: cri.SecurityProfile | null;
  /** The deprecated string field: "", "unconfined", "runtime/default", "docker/default", "localhost/<path>". */
  seccompProfilePath: string;
  privileged: boolean;
  capabilities: string[];
  /** Localhost profiles must be below this directory (kubelet's seccomp root). */
  profileRoot: string;
}

/** The filter a container (or pause) runs with; undefined means unconfined. */
export async function resolveSeccomp(request: SeccompRequest): Promise<OciSeccomp | undefined> {
  if (request.privileged) return undefined;
  const load = (ref: string, field: string) => loadProfile(request.profileRoot, ref, request.capabilities, field);
  if (request.seccomp) {
    switch (request.seccomp.profile_type) {
      case 'Unconfined':
        return undefined;
      case 'Localhost':
        return load(request.seccomp.localhost_ref, 'seccomp.localhost_ref');
      default:
        return runtimeDefaultProfile(request.capabilities);
    }
  }
  const profile = request.seccompProfilePath;
  if (profile === '' || profile === 'unconfined') return undefined;
  if (profile === 'runtime/default' || profile === 'docker/default') return runtimeDefaultProfile(request.capabilities);
  if (profile.startsWith('localhost/')) return load(profile.slice('localhost/'.length), 'seccomp_profile_path');
  throw new InvalidArgumentError(`seccomp_profile_path: unknown profile ${quote(profile)} (expected unconfined, runtime/default or localhost/<path>)`);
}

/** Real profiles are a few tens of KB (Docker's default is ~20 KB). */
const MAX_PROFILE_BYTES = 1024 * 1024;
const ACTION = /^SCMP_ACT_[A-Z_]+$/;
const COMPARISON = /^SCMP_CMP_[A-Z_]+$/;

interface ProfileFileSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }>;
  includes?: { caps?: string[] };
  excludes?: { caps?: string[] };
}

interface ProfileFile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] }>;
  flags?: string[];
  syscalls: ProfileFileSyscall[];
}

/**
 * A Localhost profile, read from below the profile root as a regular file of bounded size,
 * in the OCI or Docker format. Docker's per-capability `includes`/`excludes` are evaluated
 * against the container's capabilities. Errors never quote the file's content.
 */
async function loadProfile(root: string, ref: string, capabilities: string[], field: string): Promise<OciSeccomp> {
  const bytes = await readFileBelow(root, ref, MAX_PROFILE_BYTES, field);
  const profile = parseProfile(bytes, `${field}: profile ${quote(ref)}`);
  const held = new Set(capabilities);
  const applies = (rule: ProfileFileSyscall): boolean =>
    (rule.includes?.caps ?? []).every((c) => held.has(c)) && !(rule.excludes?.caps ?? []).some((c) => held.has(c));
  const architectures =
    profile.architectures ??
    (profile.archMap ?? []).flatMap((a) => [a.architecture, ...(a.subArchitectures ?? [])]).filter((a) => (SECCOMP_ARCHITECTURES[process.arch as NodeArch] ?? []).includes(a));
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    ...(architectures.length > 0 ? { architectures } : {}),
    ...(profile.flags ? { flags: profile.flags } : {}),
    syscalls: profile.syscalls.filter(applies).map((rule) => ({
      names: rule.names,
      action: rule.action,
      ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}),
      ...(rule.args ? { args: rule.args } : {}),
    })),
  };
}

/** The profile's JSON checked field by field, so runc never meets a malformed filter. */
export function parseProfile(bytes: Buffer, what: string): ProfileFile {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new InvalidArgumentError(`${what} is not valid JSON`);
  }
  const bad = (problem: string) => new InvalidArgumentError(`${what}: ${problem}`);
  if (!isObject(value)) throw bad('not a JSON object');
  if (typeof value.defaultAction !== 'string' || !ACTION.test(value.defaultAction)) throw bad('defaultAction is not an SCMP_ACT_ action');
  const strings = (v: unknown, name: string): string[] | undefined => {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad(`${name} is not a list of strings`);
    return v as string[];
  };
  const errno = (v: unknown, name: string): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 4095) throw bad(`${name} is not an errno`);
    return v;
  };
  const archMap = value.archMap === undefined || value.archMap === null ? undefined : value.archMap;
  if (archMap !== undefined && (!Array.isArray(archMap) || !archMap.every((a) => isObject(a) && typeof a.architecture === 'string'))) {
    throw bad('archMap is not a list of {architecture}');
  }
  const rules = value.syscalls === undefined || value.syscalls === null ? [] : value.syscalls;
  if (!Array.isArray(rules)) throw bad('syscalls is not a list');
  return {
    defaultAction: value.defaultAction,
    defaultErrnoRet: errno(value.defaultErrnoRet, 'defaultErrnoRet'),
    architectures: strings(value.architectures, 'architectures'),
    archMap: archMap as ProfileFile['archMap'],
    flags: strings(value.flags, 'flags'),
    syscalls: rules.map((rule, i) => parseRule(rule, `syscalls[${i}]`, bad, strings, errno)),
  };
}

function parseRule(
  rule: unknown,
  at: string,
  bad: (problem: string) => Error,
  strings: (v: unknown, name: string) => string[] | undefined,
  errno: (v: unknown, name: string) => number | undefined,
): ProfileFileSyscall {
  if (!isObject(rule)) throw bad(`${at} is not an object`);
  const names = strings(rule.names, `${at}.names`) ?? (typeof rule.name === 'string' ? [rule.name] : []);
  if (names.length === 0) throw bad(`${at} names no system call`);
  if (typeof rule.action !== 'string' || !ACTION.test(rule.action)) throw bad(`${at}.action is not an SCMP_ACT_ action`);
  const args = rule.args === undefined || rule.args === null ? undefined : rule.args;
  if (args !== undefined) {
    const valid =
      Array.isArray(args) &&
      args.every((a) => isObject(a) && Number.isInteger(a.index) && (a.index as number) >= 0 && (a.index as number) <= 5 &&
        typeof a.value === 'number' && (a.valueTwo === undefined || typeof a.valueTwo === 'number') && typeof a.op === 'string' && COMPARISON.test(a.op));
    if (!valid) throw bad(`${at}.args is not a list of {index 0-5, value, valueTwo, op SCMP_CMP_}`);
  }
  const caps = (side: unknown, name: string) => (isObject(side) ? { caps: strings(side.caps, `${name}.caps`) ?? [] } : undefined);
  return {
    names,
    action: rule.action,
    errnoRet: errno(rule.errnoRet, `${at}.errnoRet`),
    args: args as ProfileFileSyscall['args'],
    includes: caps(rule.includes, `${at}.includes`),
    excludes: caps(rule.excludes, `${at}.excludes`),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
