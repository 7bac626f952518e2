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

/**
 * What a test run could leave on the host, read before the run and compared after it
 * (global-setup.ts): named netns, network links, per-pod iptables chains and rules. Mounts,
 * processes and cgroups are checked by place instead (the run's own directory and cgroup parent).
 */
export interface HostSnapshot {
  netns: Set<string>;
  links: Set<string>;
  iptables: Set<string>;
  /** Top-level cgroups of every hierarchy (`memory/kubepods`, or `kubepods` on v2). */
  cgroups: Set<string>;
  /** What is below CNI's state directory, two levels deep (`.` for the directory itself). */
  cniState: Set<string>;
}

/** Where host-local and libcni-style runtimes keep state that outlives a pod. */
export const CNI_STATE_DIR = '/var/lib/cni';

/** `dir` (as `.`) and the entries below it, `depth` levels deep; nothing if it does not exist. */
async function entriesBelow(dir: string, depth: number): Promise<string[]> {
  if (!(await exists(dir))) return [];
  const found = ['.'];
  const walk = async (rel: string, level: number): Promise<void> => {
    if (level > depth) return;
    for (const name of await fs.readdir(path.join(dir, rel)).catch(() => [] as string[])) {
      const child = path.join(rel, name);
      found.push(child);
      await walk(child, level + 1);
    }
  };
  await walk('', 1);
  return found;
}

/**
 * Remove the directories below CNI's state directory that the run created and that are
 * empty again (host-local makes `networks/` for a network and leaves it when its last
 * allocation goes), deepest first, and the state directory itself if the run made it.
 */
export async function removeEmptyCniDirs(before: HostSnapshot): Promise<void> {
  const made = (await entriesBelow(CNI_STATE_DIR, 2)).filter((rel) => !before.cniState.has(rel));
  for (const rel of made.sort((a, b) => b.length - a.length)) await fs.rmdir(path.join(CNI_STATE_DIR, rel)).catch(() => {});
}

export async function snapshotHost(): Promise<HostSnapshot> {
  const netns = await fs.readdir('/run/netns').catch(() => [] as string[]);
  const { stdout: linkJson } = await execa('ip', ['-j', 'link', 'show']);
  const links = (JSON.parse(linkJson) as Array<{ ifname: string }>).map((l) => l.ifname);
  const { stdout: rules } = await execa('iptables-save', [], { reject: false });
  return {
    netns: new Set(netns),
    links: new Set(links),
    iptables: new Set(rules.split('\n').filter(isPodIptablesLine)),
    cgroups: new Set(await topLevelCgroups()),
    cniState: new Set(await entriesBelow(CNI_STATE_DIR, 2)),
  };
}

/** A pod whose cgroup parent names a new path makes cgroups there that outlive it unless removed. */
async function topLevelCgroups(): Promise<string[]> {
  const root = '/sys/fs/cgroup';
  const isHierarchy = async (dir: string) => exists(path.join(dir, 'cgroup.procs'));
  const hierarchies = (await isHierarchy(root)) ? [''] : await fs.readdir(root).catch(() => [] as string[]);
  const found: string[] = [];
  for (const hierarchy of hierarchies) {
    for (const entry of await fs.readdir(path.join(root, hierarchy), { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) found.push(path.join(hierarchy, entry.name));
    }
  }
  return found;
}

/** portmap's own chains stay once made (as under containerd and CRI-O); anything else it adds is per pod. */
const PORTMAP_INFRASTRUCTURE = new Set(['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK']);

/** A chain or rule that belongs to one pod's attachment, not to the plugins' shared chains. */
export function isPodIptablesLine(line: string): boolean {
  const chains = line.match(/CNI-[A-Za-z0-9-]+/g) ?? [];
  return chains.some((chain) => !PORTMAP_INFRASTRUCTURE.has(chain));
}

/** Everything in `after` that `before` did not have, as readable lines. */
export function leftoversSince(before: HostSnapshot, after: HostSnapshot): string[] {
  const added = (kind: string, a: Set<string>, b: Set<string>) => [...b].filter((x) => !a.has(x)).map((x) => `${kind} ${x}`);
  return [
    ...added('netns', before.netns, after.netns),
    ...added('link', before.links, after.links),
    ...added('iptables', before.iptables, after.iptables),
    ...added('cgroup', before.cgroups, after.cgroups),
    ...added(CNI_STATE_DIR, before.cniState, after.cniState),
  ];
}

/** The cgroup directories named `parent` under every mounted hierarchy (v1) or the unified one. */
export async function cgroupDirs(parent: string): Promise<string[]> {
  const roots = ['/sys/fs/cgroup', ...(await fs.readdir('/sys/fs/cgroup').catch(() => [] as string[])).map((c) => path.join('/sys/fs/cgroup', c))];
  const dirs: string[] = [];
  for (const root of roots) {
    const dir = path.join(root, parent);
    if (await exists(dir)) dirs.push(dir);
  }
  return dirs;
}

/** Sub-cgroups below `dir`, deepest first (the order rmdir needs). */
export async function cgroupChildren(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (!entry.isDirectory()) continue;
    const child = path.join(dir, entry.name);
    found.push(...(await cgroupChildren(child)), child);
  }
  return found;
}
