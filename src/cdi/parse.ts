/**
 * A CDI spec file's text → a validated CdiSpec. The files are written by device plugins and
 * DRA drivers, not by the kubelet, but a wrong one must still never reach runc or crash the
 * daemon: every field is type-checked, unknown fields are refused (as CDI's own parser does),
 * and a spec using a field newer than its cdiVersion is refused.
 */
import { parse as parseYaml } from 'yaml';
import { UINT32_MAX } from '../validation/fields.js';
import { compareVersions, CURRENT_VERSION, deviceNameProblem, knownVersion, kindProblem, type CdiVersion } from './names.js';
import {
  CDI_HOOK_NAMES,
  type CdiContainerEdits,
  type CdiDevice,
  type CdiDeviceNode,
  type CdiHook,
  type CdiHookName,
  type CdiIntelRdt,
  type CdiMount,
  type CdiNetDevice,
  type CdiSpec,
} from './types.js';

/** A spec file that cannot be used; the registry logs it with the file name and skips it. */
export class InvalidCdiSpecError extends Error {
  override readonly name = 'InvalidCdiSpecError';
}

export type SpecFormat = 'json' | 'yaml';

/** The format a file name implies; CDI reads only these two extensions. */
export function specFormatOf(file: string): SpecFormat | undefined {
  if (file.endsWith('.json')) return 'json';
  if (file.endsWith('.yaml')) return 'yaml';
  return undefined;
}

export function parseSpec(text: string, format: SpecFormat): CdiSpec {
  let raw: unknown;
  try {
    // YAML 1.1, as the Go YAML reader CDI's tools write for; aliases stay bounded.
    raw = format === 'json' ? JSON.parse(text) : parseYaml(text, { version: '1.1', maxAliasCount: 100, uniqueKeys: true });
  } catch (err) {
    throw new InvalidCdiSpecError(`not valid ${format.toUpperCase()}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  const spec = specFrom(raw);
  checkVersion(spec);
  return spec;
}

function fail(at: string, problem: string): never {
  throw new InvalidCdiSpecError(`${at} ${problem}`);
}

function objectAt(value: unknown, at: string, fields: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(at, 'must be an object');
  const unknown = Object.keys(value).find((key) => !fields.includes(key));
  if (unknown !== undefined) fail(at, `has an unknown field ${JSON.stringify(unknown)}`);
  return value as Record<string, unknown>;
}

function textAt(value: unknown, at: string): string {
  if (typeof value !== 'string') fail(at, 'must be a string');
  if (value.includes('\0')) fail(at, 'contains a NUL byte');
  return value;
}

function requiredText(obj: Record<string, unknown>, key: string, at: string): string {
  const value = obj[key] === undefined || obj[key] === null ? '' : textAt(obj[key], `${at}.${key}`);
  if (value === '') fail(`${at}.${key}`, 'is required');
  return value;
}

function optionalText(obj: Record<string, unknown>, key: string, at: string): string | undefined {
  const value = obj[key];
  return value === undefined || value === null || value === '' ? undefined : textAt(value, `${at}.${key}`);
}

function listAt<T>(obj: Record<string, unknown>, key: string, at: string, item: (value: unknown, at: string) => T): T[] | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) fail(`${at}.${key}`, 'must be a list');
  return value.map((entry, i) => item(entry, `${at}.${key}[${i}]`));
}

function integerAt(value: unknown, at: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(at, 'must be an integer');
  if (value < min || value > max) fail(at, `must be between ${min} and ${max}`);
  return value;
}

function optionalInteger(obj: Record<string, unknown>, key: string, at: string, min: number, max: number): number | undefined {
  const value = obj[key];
  return value === undefined || value === null ? undefined : integerAt(value, `${at}.${key}`, min, max);
}

function stringMap(obj: Record<string, unknown>, key: string, at: string): Record<string, string> | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) fail(`${at}.${key}`, 'must be a map of strings');
  // Object.fromEntries defines own properties, so a "__proto__" key stays a plain key.
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, textAt(v, `${at}.${key}[${JSON.stringify(k)}]`)]));
}

function absolutePath(value: unknown, at: string): string {
  const text = textAt(value, at);
  if (!text.startsWith('/')) fail(at, `${JSON.stringify(text)} must be an absolute path`);
  return text;
}

function keyValue(value: unknown, at: string): string {
  const text = textAt(value, at);
  if (text.indexOf('=') <= 0) fail(at, `${JSON.stringify(text)} must be NAME=value`);
  return text;
}

function specFrom(raw: unknown): CdiSpec {
  const obj = objectAt(raw, 'spec', ['cdiVersion', 'kind', 'annotations', 'devices', 'containerEdits']);
  const cdiVersion = requiredText(obj, 'cdiVersion', 'spec');
  const kind = requiredText(obj, 'kind', 'spec');
  const kindIssue = kindProblem(kind);
  if (kindIssue) fail('spec.kind', `${JSON.stringify(kind)} ${kindIssue}`);
  const devices = listAt(obj, 'devices', 'spec', deviceFrom) ?? [];
  if (devices.length === 0) fail('spec.devices', 'must list at least one device');
  const seen = new Set<string>();
  for (const device of devices) {
    if (seen.has(device.name)) fail('spec.devices', `define ${JSON.stringify(device.name)} more than once`);
    seen.add(device.name);
  }
  const spec: CdiSpec = { cdiVersion, kind, devices };
  const annotations = stringMap(obj, 'annotations', 'spec');
  if (annotations) spec.annotations = annotations;
  if (obj['containerEdits'] !== undefined && obj['containerEdits'] !== null) spec.containerEdits = editsFrom(obj['containerEdits'], 'spec.containerEdits');
  return spec;
}

function deviceFrom(value: unknown, at: string): CdiDevice {
  const obj = objectAt(value, at, ['name', 'annotations', 'containerEdits']);
  const name = requiredText(obj, 'name', at);
  const nameIssue = deviceNameProblem(name);
  if (nameIssue) fail(`${at}.name`, `${JSON.stringify(name)} ${nameIssue}`);
  if (obj['containerEdits'] === undefined || obj['containerEdits'] === null) fail(`${at}.containerEdits`, 'is required');
  const containerEdits = editsFrom(obj['containerEdits'], `${at}.containerEdits`);
  if (editsAreEmpty(containerEdits)) fail(`${at}.containerEdits`, 'must not be empty');
  const device: CdiDevice = { name, containerEdits };
  const annotations = stringMap(obj, 'annotations', at);
  if (annotations) device.annotations = annotations;
  return device;
}

function editsAreEmpty(edits: CdiContainerEdits): boolean {
  const lists = [edits.env, edits.deviceNodes, edits.mounts, edits.hooks, edits.additionalGids, edits.netDevices];
  return lists.every((list) => !list || list.length === 0) && edits.intelRdt === undefined;
}

const EDIT_FIELDS = ['env', 'deviceNodes', 'mounts', 'hooks', 'additionalGids', 'intelRdt', 'netDevices'] as const;

function editsFrom(value: unknown, at: string): CdiContainerEdits {
  const obj = objectAt(value, at, EDIT_FIELDS);
  const edits: CdiContainerEdits = {};
  const env = listAt(obj, 'env', at, keyValue);
  if (env) edits.env = env;
  const deviceNodes = listAt(obj, 'deviceNodes', at, deviceNodeFrom);
  if (deviceNodes) edits.deviceNodes = deviceNodes;
  const mounts = listAt(obj, 'mounts', at, mountFrom);
  if (mounts) edits.mounts = mounts;
  const hooks = listAt(obj, 'hooks', at, hookFrom);
  if (hooks) edits.hooks = hooks;
  const gids = listAt(obj, 'additionalGids', at, (v, a) => integerAt(v, a, 0, UINT32_MAX));
  if (gids) edits.additionalGids = gids;
  if (obj['intelRdt'] !== undefined && obj['intelRdt'] !== null) edits.intelRdt = intelRdtFrom(obj['intelRdt'], `${at}.intelRdt`);
  const netDevices = listAt(obj, 'netDevices', at, netDeviceFrom);
  if (netDevices) {
    checkUnique(netDevices.map((d) => d.hostInterfaceName), `${at}.netDevices`, 'hostInterfaceName');
    checkUnique(netDevices.map((d) => d.name), `${at}.netDevices`, 'name');
    edits.netDevices = netDevices;
  }
  return edits;
}

function checkUnique(values: string[], at: string, field: string): void {
  const duplicate = values.find((v, i) => values.indexOf(v) !== i);
  if (duplicate !== undefined) fail(at, `name ${field} ${JSON.stringify(duplicate)} more than once`);
}

const DEVICE_TYPES = ['b', 'c', 'u', 'p'] as const;
/** A Go int64 in JSON; device numbers past 2^53 do not exist (the kernel's are 32 bits). */
const MAX_DEVICE_NUMBER = Number.MAX_SAFE_INTEGER;

function deviceNodeFrom(value: unknown, at: string): CdiDeviceNode {
  const obj = objectAt(value, at, ['path', 'hostPath', 'type', 'major', 'minor', 'fileMode', 'permissions', 'uid', 'gid']);
  const node: CdiDeviceNode = { path: absolutePath(requiredText(obj, 'path', at), `${at}.path`) };
  const hostPath = optionalText(obj, 'hostPath', at);
  if (hostPath !== undefined) node.hostPath = absolutePath(hostPath, `${at}.hostPath`);
  const type = optionalText(obj, 'type', at);
  if (type !== undefined) {
    if (!DEVICE_TYPES.includes(type as CdiDeviceNode['type'] & string)) fail(`${at}.type`, `${JSON.stringify(type)} must be one of b, c, u, p`);
    node.type = type as CdiDeviceNode['type'];
  }
  const major = optionalInteger(obj, 'major', at, 0, MAX_DEVICE_NUMBER);
  if (major !== undefined) node.major = major;
  const minor = optionalInteger(obj, 'minor', at, 0, MAX_DEVICE_NUMBER);
  if (minor !== undefined) node.minor = minor;
  const fileMode = optionalInteger(obj, 'fileMode', at, 0, UINT32_MAX);
  if (fileMode !== undefined) node.fileMode = fileMode;
  const permissions = optionalText(obj, 'permissions', at);
  if (permissions !== undefined) {
    if (permissions !== 'none' && !/^[rwm]+$/.test(permissions)) fail(`${at}.permissions`, `${JSON.stringify(permissions)} must be a combination of r, w and m (or "none")`);
    node.permissions = permissions;
  }
  const uid = optionalInteger(obj, 'uid', at, 0, UINT32_MAX);
  if (uid !== undefined) node.uid = uid;
  const gid = optionalInteger(obj, 'gid', at, 0, UINT32_MAX);
  if (gid !== undefined) node.gid = gid;
  return node;
}

function mountFrom(value: unknown, at: string): CdiMount {
  const obj = objectAt(value, at, ['hostPath', 'containerPath', 'options', 'type']);
  const mount: CdiMount = {
    hostPath: requiredText(obj, 'hostPath', at),
    containerPath: absolutePath(requiredText(obj, 'containerPath', at), `${at}.containerPath`),
  };
  const options = listAt(obj, 'options', at, textAt);
  if (options) mount.options = options;
  const type = optionalText(obj, 'type', at);
  if (type !== undefined) mount.type = type;
  return mount;
}

/** Longest hook timeout accepted, in seconds (a day): runc waits that long at most. */
const MAX_HOOK_TIMEOUT_S = 86_400;

function hookFrom(value: unknown, at: string): CdiHook {
  const obj = objectAt(value, at, ['hookName', 'path', 'args', 'env', 'timeout']);
  const hookName = requiredText(obj, 'hookName', at);
  if (!CDI_HOOK_NAMES.includes(hookName as CdiHookName)) fail(`${at}.hookName`, `${JSON.stringify(hookName)} must be one of ${CDI_HOOK_NAMES.join(', ')}`);
  // runc runs the hook from its own working directory: only an absolute path is meaningful.
  const hook: CdiHook = { hookName: hookName as CdiHookName, path: absolutePath(requiredText(obj, 'path', at), `${at}.path`) };
  const args = listAt(obj, 'args', at, textAt);
  if (args) hook.args = args;
  const env = listAt(obj, 'env', at, keyValue);
  if (env) hook.env = env;
  const timeout = optionalInteger(obj, 'timeout', at, 1, MAX_HOOK_TIMEOUT_S);
  if (timeout !== undefined) hook.timeout = timeout;
  return hook;
}

/** Linux's PATH_MAX; closID names a directory below /sys/fs/resctrl. */
const MAX_CLOS_ID_CHARS = 4096;

function intelRdtFrom(value: unknown, at: string): CdiIntelRdt {
  const obj = objectAt(value, at, ['closID', 'l3CacheSchema', 'memBwSchema', 'schemata', 'enableMonitoring']);
  const rdt: CdiIntelRdt = {};
  const closID = optionalText(obj, 'closID', at);
  if (closID !== undefined) {
    const validName = closID.length < MAX_CLOS_ID_CHARS && closID !== '.' && closID !== '..' && !/[/\n]/.test(closID);
    if (closID !== '/' && !validName) fail(`${at}.closID`, `${JSON.stringify(closID)} must be "/" or a file name`);
    rdt.closID = closID;
  }
  const l3 = optionalText(obj, 'l3CacheSchema', at);
  if (l3 !== undefined) rdt.l3CacheSchema = l3;
  const memBw = optionalText(obj, 'memBwSchema', at);
  if (memBw !== undefined) rdt.memBwSchema = memBw;
  const schemata = listAt(obj, 'schemata', at, textAt);
  if (schemata) rdt.schemata = schemata;
  const monitoring = obj['enableMonitoring'];
  if (monitoring !== undefined && monitoring !== null) {
    if (typeof monitoring !== 'boolean') fail(`${at}.enableMonitoring`, 'must be true or false');
    rdt.enableMonitoring = monitoring;
  }
  return rdt;
}

function netDeviceFrom(value: unknown, at: string): CdiNetDevice {
  const obj = objectAt(value, at, ['hostInterfaceName', 'name']);
  return { hostInterfaceName: requiredText(obj, 'hostInterfaceName', at), name: requiredText(obj, 'name', at) };
}

function checkVersion(spec: CdiSpec): void {
  const declared = knownVersion(spec.cdiVersion);
  if (!declared) fail('spec.cdiVersion', `${JSON.stringify(spec.cdiVersion)} is not a known CDI version (newest: ${CURRENT_VERSION})`);
  const needed = minimumVersion(spec);
  if (compareVersions(declared, needed) < 0) fail('spec.cdiVersion', `is ${declared}, but the fields used need at least ${needed}`);
}

/** The oldest CDI version that has every field this spec uses. */
export function minimumVersion(spec: CdiSpec): CdiVersion {
  const edits = [spec.containerEdits ?? {}, ...spec.devices.map((d) => d.containerEdits)];
  const rdts = edits.map((e) => e.intelRdt).filter((r): r is CdiIntelRdt => r !== undefined);
  if (edits.some((e) => e.netDevices?.length) || rdts.some((r) => r.schemata !== undefined || r.enableMonitoring !== undefined)) return '1.1.0';
  if (rdts.length > 0 || edits.some((e) => e.additionalGids?.length)) return '0.7.0';
  const hasAnnotations = (a: Record<string, string> | undefined): boolean => a !== undefined && Object.keys(a).length > 0;
  const cls = spec.kind.slice(spec.kind.indexOf('/') + 1);
  if (hasAnnotations(spec.annotations) || spec.devices.some((d) => hasAnnotations(d.annotations)) || cls.includes('.')) return '0.6.0';
  if (edits.some((e) => e.deviceNodes?.some((n) => n.hostPath !== undefined)) || spec.devices.some((d) => /^[0-9]/.test(d.name))) return '0.5.0';
  if (edits.some((e) => e.mounts?.some((m) => m.type !== undefined))) return '0.4.0';
  return '0.3.0';
}
