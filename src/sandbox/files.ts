import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as cri from '../api/cri.js';
import { writeFileAtomic } from '../persistence/atomic.js';

/** Files every container of a pod shares, kept in the sandbox's record directory. */
export interface SandboxFiles {
  hostname: string;
  hosts: string;
  resolvConf: string;
}

export function sandboxFilesIn(dir: string): SandboxFiles {
  return {
    hostname: path.join(dir, 'hostname'),
    hosts: path.join(dir, 'hosts'),
    resolvConf: path.join(dir, 'resolv.conf'),
  };
}

/** resolv.conf text for a DNSConfig; undefined when it names nothing (use the host's file). */
export function resolvConfFor(dns: cri.DNSConfig | null): string | undefined {
  if (!dns || (dns.servers.length === 0 && dns.searches.length === 0 && dns.options.length === 0)) {
    return undefined;
  }
  const lines: string[] = [];
  if (dns.searches.length > 0) lines.push(`search ${dns.searches.join(' ')}`);
  for (const server of dns.servers) lines.push(`nameserver ${server}`);
  if (dns.options.length > 0) lines.push(`options ${dns.options.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** /etc/hosts for a pod in its own network namespace (kubelet may mount its own over it). */
export function podHostsFile(hostname: string): string {
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
    ...(hostname ? [`127.0.1.1\t${hostname}`] : []),
    '',
  ].join('\n');
}

/**
 * Write the pod's hostname, hosts and resolv.conf. Host-network pods see the host's own
 * hostname and hosts file; a pod without DNS settings gets the host's resolv.conf.
 */
export async function writeSandboxFiles(
  files: SandboxFiles,
  config: cri.PodSandboxConfig,
  hostNetwork: boolean,
): Promise<string> {
  const hostname = hostNetwork ? os.hostname() : config.hostname || os.hostname();
  const hosts = hostNetwork ? await readOr('/etc/hosts', podHostsFile(hostname)) : podHostsFile(hostname);
  const resolv = resolvConfFor(config.dns_config) ?? (await readOr('/etc/resolv.conf', ''));
  // Only used while the pod runs, so no fsync: a power loss ends the pod too.
  const options = { mode: 0o644, durable: false };
  await Promise.all([
    writeFileAtomic(files.hostname, hostname + '\n', options),
    writeFileAtomic(files.hosts, hosts, options),
    writeFileAtomic(files.resolvConf, resolv, options),
  ]);
  return hostname;
}

async function readOr(file: string, fallback: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return fallback;
  }
}
