import { promises as fs } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, errnoCode } from '../errors.js';
import { quote } from '../validation/fields.js';

/** The identity a container process runs as. */
export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups from the rootfs's /etc/group, then any extra ones asked for. */
  additionalGids: number[];
  /** The login name, when /etc/passwd has one for the uid. */
  name?: string;
  home?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/**
 * Resolve a user spec, as an image's `User` or kubelet's RunAsUser/RunAsUsername give it:
 * `uid`, `name`, `uid:gid`, `name:group`, `uid:group`, `name:gid`, against the container's
 * own /etc/passwd and /etc/group (never the host's). A numeric uid need not exist there; its
 * gid then defaults to the passwd entry's, or 0. A name must exist.
 */
export async function resolveUser(rootfs: string, spec: string, extraGids: number[] = []): Promise<ResolvedUser> {
  const [userPart = '', groupPart] = spec.trim().split(':');
  const passwd = await readPasswd(rootfs);
  const groups = await readGroups(rootfs);
  let uid: number;
  let entry: PasswdEntry | undefined;
  if (userPart === '') {
    uid = 0;
    entry = passwd.find((p) => p.uid === 0);
  } else if (/^\d+$/.test(userPart)) {
    uid = Number(userPart);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === userPart);
    if (!entry) throw new InvalidArgumentError(`user ${quote(userPart)} not found in the image's /etc/passwd`);
    uid = entry.uid;
  }
  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const group = groups.find((g) => g.name === groupPart);
      if (!group) throw new InvalidArgumentError(`group ${quote(groupPart)} not found in the image's /etc/group`);
      gid = group.gid;
    }
  }
  // Membership comes from /etc/group only when a user name is known, as with initgroups().
  const member = entry ? groups.filter((g) => g.members.includes(entry!.name)).map((g) => g.gid) : [];
  const additionalGids = [...new Set([...member, ...extraGids])].filter((g) => g !== gid);
  return { uid, gid, additionalGids, ...(entry ? { name: entry.name, home: entry.home } : {}) };
}

async function readPasswd(rootfs: string): Promise<PasswdEntry[]> {
  return (await readLines(rootfs, 'etc/passwd')).flatMap((fields) => {
    const [name, , uid, gid, , home] = fields;
    if (!name || !/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '')) return [];
    return [{ name, uid: Number(uid), gid: Number(gid), home: home ?? '/' }];
  });
}

async function readGroups(rootfs: string): Promise<GroupEntry[]> {
  return (await readLines(rootfs, 'etc/group')).flatMap((fields) => {
    const [name, , gid, members] = fields;
    if (!name || !/^\d+$/.test(gid ?? '')) return [];
    return [{ name, gid: Number(gid), members: (members ?? '').split(',').filter(Boolean) }];
  });
}

/**
 * Colon-separated lines of a file inside the rootfs. The path is resolved without leaving the
 * rootfs: a symlinked /etc/passwd pointing at the host's must not be read.
 */
async function readLines(rootfs: string, relative: string): Promise<string[][]> {
  const file = path.join(rootfs, relative);
  try {
    // Every component must be real: a symlinked etc/ or etc/passwd is not followed.
    let dir = rootfs;
    for (const part of path.dirname(relative).split('/')) {
      dir = path.join(dir, part);
      if (!(await fs.lstat(dir)).isDirectory()) return [];
    }
    const stat = await fs.lstat(file);
    if (!stat.isFile()) return [];
    const text = await fs.readFile(file, 'utf8');
    return text
      .split('\n')
      .filter((line) => line && !line.startsWith('#'))
      .map((line) => line.split(':'));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
    throw err;
  }
}
