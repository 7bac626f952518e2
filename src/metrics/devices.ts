/**
 * Device names for the `device` label, as cAdvisor spells them: a block device by its /dev name
 * (`/dev/vda`), from sysfs's uevent file; a filesystem without one (tmpfs, overlay: anonymous
 * device numbers) by its mount source; else `major:minor`. Names are cached: a device number
 * does not change name while the machine runs.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readText } from '../cgroups/files.js';

export interface DeviceRoots {
  /** sysfs (default /sys). */
  sys: string;
  /** A mountinfo file (default /proc/self/mountinfo). */
  mountinfo: string;
}

export const DEFAULT_DEVICE_ROOTS: DeviceRoots = { sys: '/sys', mountinfo: '/proc/self/mountinfo' };

export class DeviceNames {
  private readonly names = new Map<string, string>();

  constructor(private readonly roots: DeviceRoots = DEFAULT_DEVICE_ROOTS) {}

  /** The name of a block device (io counters carry major:minor). */
  async blockDevice(major: number, minor: number): Promise<string> {
    const key = `${major}:${minor}`;
    const known = this.names.get(key);
    if (known !== undefined) return known;
    const name = (await this.fromSysfs(key)) ?? key;
    this.names.set(key, name);
    return name;
  }

  /** The name of the device holding `file`, or undefined when it cannot be stat'ed. */
  async holding(file: string): Promise<string | undefined> {
    const stat = await fs.stat(file, { bigint: true }).catch(() => undefined);
    if (!stat) return undefined;
    const { major, minor } = splitDev(stat.dev);
    const key = `${major}:${minor}`;
    const known = this.names.get(key);
    if (known !== undefined) return known;
    const name = (await this.fromSysfs(key)) ?? (await this.mountSource(key)) ?? key;
    this.names.set(key, name);
    return name;
  }

  private async fromSysfs(key: string): Promise<string | undefined> {
    const uevent = await readText(path.join(this.roots.sys, 'dev', 'block', key, 'uevent'));
    const devname = uevent && /^DEVNAME=(.+)$/m.exec(uevent)?.[1];
    return devname ? `/dev/${devname}` : undefined;
  }

  private async mountSource(key: string): Promise<string | undefined> {
    const text = (await readText(this.roots.mountinfo)) ?? '';
    for (const line of text.split('\n')) {
      const [, , device, , , , ...rest] = line.split(' ');
      const separator = rest.indexOf('-');
      if (device === key && separator >= 0) return rest[separator + 2];
    }
    return undefined;
  }
}

/** Linux's dev_t encoding (glibc's gnu_dev_major/minor). */
export function splitDev(dev: bigint): { major: number; minor: number } {
  return {
    major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)),
    minor: Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn)),
  };
}
