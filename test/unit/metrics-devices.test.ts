import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { countOpenFiles } from '../../src/cgroups/processes.js';
import { DeviceNames, splitDev } from '../../src/metrics/devices.js';
import { removeTree, writeTree } from './cgroup-fixtures.js';

describe('device names for the device label', () => {
  const trees: string[] = [];
  afterAll(() => Promise.all(trees.map(removeTree)));

  it('splits dev_t as glibc does, including large majors and minors', () => {
    expect(splitDev(65024n)).toEqual({ major: 254, minor: 0 });
    expect(splitDev((259n << 8n) | 5n)).toEqual({ major: 259, minor: 5 });
    // minor 300: its high bits live above bit 20.
    expect(splitDev((8n << 8n) | (300n & 0xffn) | ((300n & ~0xffn) << 12n))).toEqual({ major: 8, minor: 300 });
  });

  it('names a block device from sysfs, else by its numbers', async () => {
    const root = await writeTree({ 'sys/dev/block/254:0/uevent': 'MAJOR=254\nMINOR=0\nDEVNAME=vda\n' });
    trees.push(root);
    const names = new DeviceNames({ sys: path.join(root, 'sys'), mountinfo: path.join(root, 'none') });
    expect(await names.blockDevice(254, 0)).toBe('/dev/vda');
    expect(await names.blockDevice(7, 3)).toBe('7:3');
  });

  it('names a filesystem without a block device by its mount source', async () => {
    const root = await writeTree({ 'layer/file': 'x' });
    trees.push(root);
    const { major, minor } = splitDev((await fs.stat(root, { bigint: true })).dev);
    const mountinfo = `27 1 ${major}:${minor} / / rw,relatime shared:1 - ext4 /dev/fixture-disk rw\n31 27 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n`;
    await fs.writeFile(path.join(root, 'mountinfo'), mountinfo);
    const names = new DeviceNames({ sys: path.join(root, 'no-sys'), mountinfo: path.join(root, 'mountinfo') });
    expect(await names.holding(path.join(root, 'layer'))).toBe('/dev/fixture-disk');
    expect(await names.holding(path.join(root, 'missing'))).toBeUndefined();
  });
});

describe('open files of a cgroup’s processes', () => {
  it('counts descriptors and sockets per process, a vanished process as none', async () => {
    const root = await writeTree({ 'proc/10/fd': null, 'proc/11/fd': null });
    try {
      for (const [pid, fd, target] of [
        [10, 0, '/dev/null'],
        [10, 1, 'socket:[1]'],
        [10, 2, 'pipe:[2]'],
        [11, 0, 'socket:[3]'],
      ] as const) {
        await fs.symlink(target, path.join(root, `proc/${pid}/fd/${fd}`));
      }
      expect(await countOpenFiles([10, 11, 12], path.join(root, 'proc'))).toEqual({ fileDescriptors: 4, sockets: 2 });
    } finally {
      await removeTree(root);
    }
  });
});
