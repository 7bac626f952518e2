/**
 * Resolved CDI edits applied to a container's OCI spec, in the order the CDI spec gives:
 * environment, device nodes (each with its cgroup rule), mounts, hooks, Intel RDT, groups.
 * Applied last, after the spec is otherwise complete, so a device's edit replaces what the
 * container would have had at the same path or name.
 */
import path from 'node:path';
import type { OciDevice, OciHooks, OciSpec } from '../oci/spec-types.js';
import type { ResolvedDeviceNode, ResolvedEdits } from './types.js';

export function applyCdiEdits(spec: OciSpec, edits: ResolvedEdits): void {
  applyEnv(spec, edits.env);
  for (const node of edits.deviceNodes) applyDeviceNode(spec, node);
  applyMounts(spec, edits);
  applyHooks(spec, edits);
  if (edits.intelRdt) {
    const { closID, l3CacheSchema, memBwSchema } = edits.intelRdt;
    spec.linux.intelRdt = { ...(closID ? { closID } : {}), ...(l3CacheSchema ? { l3CacheSchema } : {}), ...(memBwSchema ? { memBwSchema } : {}) };
  }
  applyGroups(spec, edits.additionalGids);
}

/** A variable already set is replaced where it stands; a new one is appended. */
function applyEnv(spec: OciSpec, env: string[]): void {
  for (const entry of env) {
    const key = entry.slice(0, entry.indexOf('=') + 1);
    const at = spec.process.env.findIndex((e) => e.startsWith(key));
    if (at >= 0) spec.process.env[at] = entry;
    else spec.process.env.push(entry);
  }
}

function applyDeviceNode(spec: OciSpec, node: ResolvedDeviceNode): void {
  const { uid, gid } = spec.process.user;
  const device: OciDevice = { path: node.path, type: node.type, major: node.major, minor: node.minor };
  if (node.fileMode !== undefined) device.fileMode = node.fileMode;
  // Owned by the container's user unless the spec says otherwise, so a non-root process can
  // open what it was given.
  const owner = node.uid ?? (uid > 0 ? uid : undefined);
  const group = node.gid ?? (gid > 0 ? gid : undefined);
  if (owner !== undefined) device.uid = owner;
  if (group !== undefined) device.gid = group;
  spec.linux.devices = [...(spec.linux.devices ?? []).filter((d) => d.path !== node.path), device];

  // Only block and character devices are governed by the device cgroup; "none" grants
  // nothing, and after the deny-all the base spec starts with, no rule is exactly that.
  if ((node.type === 'b' || node.type === 'c') && node.permissions !== 'none') {
    const resources = (spec.linux.resources ??= {});
    (resources.devices ??= []).push({ allow: true, type: node.type, major: node.major, minor: node.minor, access: node.permissions || 'rwm' });
  }
}

/**
 * A CDI mount replaces one at the same destination; then all mounts are ordered parents
 * first (stable, so equal depths keep their order), or a shallower mount would hide it.
 */
function applyMounts(spec: OciSpec, edits: ResolvedEdits): void {
  if (edits.mounts.length === 0) return;
  for (const mount of edits.mounts) {
    spec.mounts = spec.mounts.filter((m) => m.destination !== mount.containerPath);
    spec.mounts.push({
      destination: mount.containerPath,
      source: mount.hostPath,
      ...(mount.type ? { type: mount.type } : {}),
      ...(mount.options ? { options: [...mount.options] } : {}),
    });
  }
  spec.mounts.sort((a, b) => depth(a.destination) - depth(b.destination));
}

function depth(destination: string): number {
  return path.posix.normalize(destination).split('/').filter(Boolean).length;
}

function applyHooks(spec: OciSpec, edits: ResolvedEdits): void {
  if (edits.hooks.length === 0) return;
  const hooks: OciHooks = (spec.hooks ??= {});
  for (const { hookName, path: hookPath, args, env, timeout } of edits.hooks) {
    (hooks[hookName] ??= []).push({
      path: hookPath,
      ...(args ? { args: [...args] } : {}),
      ...(env ? { env: [...env] } : {}),
      ...(timeout !== undefined ? { timeout } : {}),
    });
  }
}

/** Group 0 is every process's anyway; a group already there is not repeated. */
function applyGroups(spec: OciSpec, gids: number[]): void {
  const wanted = gids.filter((g) => g !== 0);
  if (wanted.length === 0) return;
  const user = spec.process.user;
  const groups = user.additionalGids ?? [];
  for (const gid of wanted) if (!groups.includes(gid)) groups.push(gid);
  user.additionalGids = groups;
}
