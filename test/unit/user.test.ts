import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveUser } from '../../src/oci/user.js';

describe('resolving a user spec against the image’s own passwd and group files', () => {
  let rootfs: string;

  beforeAll(async () => {
    rootfs = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-user-'));
    await fs.mkdir(path.join(rootfs, 'etc'));
    await fs.writeFile(
      path.join(rootfs, 'etc/passwd'),
      'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/bin/sh\nuser1000:x:1000:1000::/home/u:/bin/sh\n# comment\nbroken-line\n',
    );
    await fs.writeFile(path.join(rootfs, 'etc/group'), 'root:x:0:\nwww-data:x:33:\ngroup1000:x:1000:\nextra:x:50000:user1000,www-data\nother:x:60000:user1000\n');
  });

  afterAll(async () => {
    await fs.rm(rootfs, { recursive: true, force: true });
  });

  it.each([
    ['', { uid: 0, gid: 0, additionalGids: [], name: 'root' }],
    ['1000', { uid: 1000, gid: 1000, additionalGids: [50000, 60000], name: 'user1000' }],
    ['www-data', { uid: 33, gid: 33, additionalGids: [50000], name: 'www-data' }],
    ['www-data:extra', { uid: 33, gid: 50000, additionalGids: [] }],
    ['1000:60000', { uid: 1000, gid: 60000, additionalGids: [50000] }],
    ['4242', { uid: 4242, gid: 0, additionalGids: [] }],
    ['4242:4243', { uid: 4242, gid: 4243, additionalGids: [] }],
  ])('resolves %j', async (spec, expected) => {
    expect(await resolveUser(rootfs, spec)).toMatchObject(expected);
  });

  it('adds extra groups after the image’s own, without duplicates', async () => {
    expect((await resolveUser(rootfs, '1000', [60000, 7])).additionalGids).toEqual([50000, 60000, 7]);
  });

  it('refuses unknown names', async () => {
    await expect(resolveUser(rootfs, 'nobody-here')).rejects.toThrow(/user "nobody-here" not found/);
    await expect(resolveUser(rootfs, '1000:nogroup')).rejects.toThrow(/group "nogroup" not found/);
  });

  it('does not follow a symlinked /etc/passwd out of the rootfs', async () => {
    const other = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-user-'));
    await fs.mkdir(path.join(other, 'etc'));
    await fs.symlink('/etc/passwd', path.join(other, 'etc/passwd'));
    await expect(resolveUser(other, 'root')).rejects.toThrow(/not found/);
    await fs.rm(other, { recursive: true });
  });
});
