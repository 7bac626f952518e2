import { promises as fs, type BigIntStats } from 'node:fs';
import path from 'node:path';
import type * as cri from '../api/cri.js';
import { InvalidArgumentError, errnoCode } from '../errors.js';
import type { OciDevice, OciDeviceRule } from './spec-types.js';
import { quote } from '../validation/fields.js';

export interface PreparedDevices {
  devices: OciDevice[];
  /** cgroup rules allowing the devices (after the deny-all the base spec starts with). */
  rules: OciDeviceRule[];
}

/** Linux dev_t split into major and minor, as glibc's gnu_dev_major/minor do. */
export function deviceNumbers(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

/**
 * The host devices a container asked for. A directory stands for every device below it
 * (at the same relative path under container_path).
 */
export async function prepareDevices(requested: cri.Device[]): Promise<PreparedDevices> {
  const result: PreparedDevices = { devices: [], rules: [] };
  for (const device of requested) {
    const permissions = device.permissions || 'rwm';
    if (!/^[rwm]+$/.test(permissions)) throw new InvalidArgumentError(`device permissions ${quote(permissions)} must be a combination of r, w and m`);
    let stat: BigIntStats;
    try {
      stat = await fs.stat(device.host_path, { bigint: true });
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new InvalidArgumentError(`device ${device.host_path} does not exist`);
      throw err;
    }
    const containerPath = device.container_path || device.host_path;
    const found = stat.isDirectory()
      ? await devicesBelow(device.host_path, containerPath)
      : [await deviceAt(device.host_path, containerPath, stat)];
    for (const d of found) {
      result.devices.push(d);
      result.rules.push({ allow: true, type: d.type as 'c' | 'b', major: d.major, minor: d.minor, access: permissions });
    }
  }
  return result;
}

/** Every device node on the host, for privileged containers. */
export async function hostDevices(): Promise<PreparedDevices> {
  const devices = await devicesBelow('/dev', '/dev', new Set(['/dev/pts', '/dev/shm', '/dev/mqueue', '/dev/fd', '/dev/.lxc', '/dev/.lxd-mounts']));
  return { devices, rules: [{ allow: true, access: 'rwm' }] };
}

async function deviceAt(hostPath: string, containerPath: string, stat: BigIntStats): Promise<OciDevice> {
  const type = stat.isCharacterDevice() ? 'c' : stat.isBlockDevice() ? 'b' : undefined;
  if (!type) throw new InvalidArgumentError(`${hostPath} is not a device`);
  return {
    path: containerPath,
    type,
    ...deviceNumbers(stat.rdev),
    fileMode: Number(stat.mode & 0o777n),
    uid: Number(stat.uid),
    gid: Number(stat.gid),
  };
}

async function devicesBelow(hostDir: string, containerDir: string, skip = new Set<string>()): Promise<OciDevice[]> {
  const found: OciDevice[] = [];
  let entries: string[];
  try {
    entries = await fs.readdir(hostDir);
  } catch {
    return found;
  }
  for (const entry of entries) {
    const hostPath = path.join(hostDir, entry);
    if (skip.has(hostPath)) continue;
    const stat = await fs.lstat(hostPath, { bigint: true }).catch(() => undefined);
    if (!stat) continue;
    if (stat.isDirectory()) found.push(...(await devicesBelow(hostPath, path.join(containerDir, entry), skip)));
    else if (stat.isCharacterDevice() || stat.isBlockDevice()) found.push(await deviceAt(hostPath, path.join(containerDir, entry), stat));
  }
  return found;
}
