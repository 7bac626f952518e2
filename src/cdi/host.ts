/**
 * A CDI device node completed from the host. A spec may name only a path; type, numbers and
 * mode then come from the node on the host. lstat, not stat: a symlink planted at a host
 * path must not turn into access to whatever it points at.
 */
import { promises as fs, type BigIntStats } from 'node:fs';
import { FailedPreconditionError, errnoCode, messageOf } from '../errors.js';
import { deviceNumbers } from '../oci/devices.js';
import type { CdiDeviceNode, CdiDeviceType, ResolvedDeviceNode } from './types.js';

export async function resolveDeviceNode(node: CdiDeviceNode, device: string): Promise<ResolvedDeviceNode> {
  const hostPath = node.hostPath ?? node.path;
  const resolved: ResolvedDeviceNode = { ...node, hostPath, type: node.type ?? 'c', major: node.major ?? 0, minor: node.minor ?? 0 };
  // A spec that gives the type and the numbers needs nothing from the host; the node may
  // even be created later (by the hook that loads a driver, say).
  const complete = node.type !== undefined && ((node.major ?? 0) !== 0 || node.type === 'p');
  let host: { type: CdiDeviceType; stat: BigIntStats };
  try {
    host = await hostNode(hostPath);
  } catch (err) {
    if (complete) return resolved;
    throw new FailedPreconditionError(`CDI device ${JSON.stringify(device)}: host device node ${hostPath}: ${messageOf(err)}`, {
      hint: 'the spec file names a node this host does not have; fix the spec or its driver',
    });
  }
  if (node.fileMode === undefined) resolved.fileMode = Number(host.stat.mode & 0o777n);
  if (complete) return resolved;
  if (node.type !== undefined && node.type !== host.type) {
    throw new FailedPreconditionError(`CDI device ${JSON.stringify(device)}: ${hostPath} has type ${host.type} on the host, but the spec says ${node.type}`);
  }
  resolved.type = host.type;
  if (host.type !== 'p' && resolved.major === 0) Object.assign(resolved, deviceNumbers(host.stat.rdev));
  return resolved;
}

async function hostNode(hostPath: string): Promise<{ type: CdiDeviceType; stat: BigIntStats }> {
  let stat: BigIntStats;
  try {
    stat = await fs.lstat(hostPath, { bigint: true });
  } catch (err) {
    throw new Error(errnoCode(err) === 'ENOENT' ? 'does not exist' : messageOf(err));
  }
  if (stat.isCharacterDevice()) return { type: 'c', stat };
  if (stat.isBlockDevice()) return { type: 'b', stat };
  if (stat.isFIFO()) return { type: 'p', stat };
  throw new Error('is not a device node');
}
