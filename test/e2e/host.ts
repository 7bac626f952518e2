/** Facts read off the host, for checking what the daemon did beyond its RPC replies. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';

export async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch {
    return false;
  }
}

/** The IPv4 addresses (CIDR) of `dev` inside the named netns. */
export async function addressesIn(netnsName: string, dev: string): Promise<string[]> {
  const { stdout } = await execa('ip', ['-n', netnsName, '-j', 'addr', 'show', 'dev', dev]);
  const links = JSON.parse(stdout) as Array<{ addr_info: Array<{ family: string; local: string; prefixlen: number }> }>;
  return links.flatMap((l) => l.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`));
}

export async function linkState(netnsName: string, dev: string): Promise<string> {
  const { stdout } = await execa('ip', ['-n', netnsName, '-j', 'link', 'show', 'dev', dev]);
  const [link] = JSON.parse(stdout) as Array<{ operstate: string; flags: string[] }>;
  return link!.flags.includes('UP') ? 'UP' : 'DOWN';
}

/** Host-side interfaces attached to `bridge` (the pods' veth ends). */
export async function bridgePorts(bridge: string): Promise<string[]> {
  const { stdout, exitCode } = await execa('ip', ['-j', 'link', 'show', 'master', bridge], { reject: false });
  if (exitCode !== 0 || !stdout.trim()) return [];
  return (JSON.parse(stdout) as Array<{ ifname: string }>).map((l) => l.ifname);
}

/** IPs host-local has handed out in `dataDir/<network>`. */
export async function allocatedIps(dataDir: string, network: string): Promise<string[]> {
  try {
    const entries = await fs.readdir(path.join(dataDir, network));
    return entries.filter((e) => /^\d+\.\d+\.\d+\.\d+$/.test(e));
  } catch {
    return [];
  }
}

export async function isAlive(pid: number): Promise<boolean> {
  try {
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
    return !/^State:\s+Z/m.test(status);
  } catch {
    return false;
  }
}

/** The inode of a namespace: equal inodes mean the same namespace. */
export async function nsInode(nsPath: string): Promise<number> {
  return (await fs.stat(nsPath)).ino;
}

/** Mount points at or below `dir`. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const mountinfo = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((mountPoint) => mountPoint === dir || mountPoint.startsWith(dir + '/'));
}

/** Processes whose command line mentions `needle`. */
export async function processesMatching(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = (await fs.readFile(`/proc/${entry}/cmdline`, 'utf8')).replace(/\0/g, ' ');
      if (cmdline.includes(needle) && (await isAlive(Number(entry)))) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/** Run a command inside a named netns. */
export function inNetns(netnsName: string, file: string, args: string[]) {
  return execa('ip', ['netns', 'exec', netnsName, file, ...args], { reject: false });
}
