/** A pod's CNI attachment, and what RunPodSandbox keeps of the ADD's result. */
import type * as cri from '../api/cri.js';
import { podCniArgs } from '../network/cni/args.js';
import type { Attachment, CapabilityArgs, SetUpResult } from '../network/cni/types.js';
import type { SandboxNetwork, SandboxRecord } from './sandbox.js';

/** The interface name of the pod's network inside its namespace. */
export const POD_IFNAME = 'eth0';

/** The CNI attachment of a sandbox: CNI_ARGS with the pod's labels, port mappings, DNS. */
export function attachmentOf(record: SandboxRecord): Attachment {
  const meta = record.config.metadata!;
  return {
    containerId: record.id,
    netnsPath: record.netnsPath!,
    ifName: POD_IFNAME,
    args: podCniArgs({ namespace: meta.namespace, name: meta.name, uid: meta.uid, sandboxId: record.id }),
    capabilityArgs: capabilityArgsOf(record.config),
  };
}

function capabilityArgsOf(config: cri.PodSandboxConfig): CapabilityArgs {
  const args: CapabilityArgs = {};
  const mappings = config.port_mappings.filter((m) => m.host_port > 0);
  if (mappings.length > 0) {
    args.portMappings = mappings.map((m) => ({
      hostPort: m.host_port,
      containerPort: m.container_port,
      protocol: m.protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp',
      ...(m.host_ip ? { hostIP: m.host_ip } : {}),
    }));
  }
  const dns = config.dns_config;
  if (dns && (dns.servers.length > 0 || dns.searches.length > 0 || dns.options.length > 0)) {
    args.dns = { servers: dns.servers, searches: dns.searches, options: dns.options };
  }
  return args;
}

/** The pod IPs of a CNI result: the first IPv4 is primary, as kubelet expects for dual stack. */
export function networkOf(setUp: SetUpResult): SandboxNetwork {
  const ips = setUp.result.ips.map((ip) => ip.address.split('/')[0]!);
  const primary = ips.find((ip) => !ip.includes(':')) ?? ips[0] ?? '';
  return {
    ip: primary,
    additionalIps: ips.filter((ip) => ip !== primary),
    networkName: setUp.networkName,
    networkSource: setUp.networkSource,
    cniResult: setUp.rawResult,
  };
}
