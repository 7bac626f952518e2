import { describe, expect, it } from 'vitest';
import { podHostsFile, resolvConfFor } from '../../src/sandbox/files.js';

describe('the pod’s DNS and hosts files', () => {
  it('writes search, nameservers and options from the DNS config', () => {
    expect(resolvConfFor({ servers: ['10.96.0.10', '8.8.8.8'], searches: ['ns.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] })).toBe(
      'search ns.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 8.8.8.8\noptions ndots:5\n',
    );
  });

  it('leaves an empty DNS config to the host’s resolv.conf', () => {
    expect(resolvConfFor(null)).toBeUndefined();
    expect(resolvConfFor({ servers: [], searches: [], options: [] })).toBeUndefined();
  });

  it('maps localhost and the pod hostname', () => {
    const hosts = podHostsFile('web-0');
    expect(hosts).toContain('127.0.0.1\tlocalhost\n');
    expect(hosts).toContain('::1\tlocalhost ip6-localhost ip6-loopback\n');
    expect(hosts).toContain('127.0.1.1\tweb-0\n');
  });
});
