import type * as cri from '../api/cri.js';
import { Protocol } from '../api/generated/runtime/v1/Protocol.js';
import { SupplementalGroupsPolicy } from '../api/generated/runtime/v1/SupplementalGroupsPolicy.js';
import { InvalidArgumentError } from '../errors.js';
import { joinNameParts } from '../persistence/names.js';
import {
  checkAbsolutePath,
  checkEnum,
  checkList,
  checkNumber,
  checkStringMap,
  checkText,
  invalid,
  isIpAddress,
  UINT32_MAX,
} from '../validation/fields.js';
import {
  checkGroups,
  checkId,
  checkNamespaceOptions,
  checkResources,
  checkSeccompProfilePath,
  checkSecurityProfile,
  checkSelinux,
  checkSysctls,
} from '../validation/linux.js';

/** The namespace options a sandbox asked for, with the defaults of an unset security context. */
export function namespaceOptionsOf(config: cri.PodSandboxConfig): cri.NamespaceOption {
  const options = config.linux?.security_context?.namespace_options;
  return {
    network: options?.network ?? 'POD',
    pid: options?.pid ?? 'POD',
    ipc: options?.ipc ?? 'POD',
    target_id: options?.target_id ?? '',
    userns_options: options?.userns_options ?? null,
  };
}

/**
 * A pod's cgroup parent as the kubelet writes it: an absolute path for cgroupfs
 * (`/kubepods/burstable/pod<uid>`), a slice name for systemd (`kubepods-burstable-pod<uid>.slice`);
 * which of the two the configured driver takes is the service's check.
 */
const CGROUP_PARENT = /^(\/[A-Za-z0-9_.:@+=-]*)+$|^[A-Za-z0-9_.:@-]+\.slice$/;
/** A DNS label or dotted name, as Linux keeps in the kernel's hostname (HOST_NAME_MAX 64). */
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
/** A search domain or resolver option: one token of a resolv.conf line. */
const DNS_TOKEN = { maxBytes: 253, noSpace: true } as const;
/** glibc reads at most 3 nameservers; Kubernetes allows 32 search domains. */
const MAX_DNS_SERVERS = 3;
const MAX_DNS_SEARCHES = 32;
const MAX_PORT_MAPPINGS = 1024;

/**
 * Everything RunPodSandbox must refuse, checked before anything is made: missing metadata,
 * values that would become lines of the pod's hosts or resolv.conf, enums out of range,
 * numbers the kernel refuses, sysctls that are not the pod's own.
 */
export function validateSandboxConfig(config: cri.PodSandboxConfig | null): asserts config is cri.PodSandboxConfig {
  if (!config) throw new InvalidArgumentError('config is required');
  checkMetadata(config.metadata);
  checkText('config.hostname', config.hostname, { maxBytes: 64, pattern: HOSTNAME, patternHint: 'a hostname (letters, digits, "-", "_" and ".")' });
  checkAbsolutePath('config.log_directory', config.log_directory);
  checkDns(config.dns_config);
  checkList('config.port_mappings', config.port_mappings, MAX_PORT_MAPPINGS, checkPortMapping);
  checkStringMap('config.labels', config.labels);
  checkStringMap('config.annotations', config.annotations);
  checkLinux(config.linux);
}

function checkMetadata(meta: cri.PodSandboxMetadata | null): void {
  if (!meta) throw invalid('config.metadata', 'is required');
  // Kubernetes' own limit for names (DNS subdomains); the three travel in CNI_ARGS, which has
  // no escaping for its ";" and "=" separators.
  const rules = { required: true, maxBytes: 253, singleLine: true, pattern: /^[^;=]*$/, patternHint: 'free of ";" and "=" (they separate CNI_ARGS)' };
  checkText('config.metadata.name', meta.name, rules);
  checkText('config.metadata.namespace', meta.namespace, rules);
  checkText('config.metadata.uid', meta.uid, rules);
}

function checkDns(dns: cri.DNSConfig | null): void {
  if (!dns) return;
  checkList('config.dns_config.servers', dns.servers, MAX_DNS_SERVERS, (server, field) => {
    checkText(field, server, { required: true, maxBytes: 64, noSpace: true });
    if (!isIpAddress(server)) throw invalid(field, `${JSON.stringify(server)} is not an IP address`);
  });
  checkList('config.dns_config.searches', dns.searches, MAX_DNS_SEARCHES, (search, field) => checkText(field, search, { required: true, ...DNS_TOKEN }));
  checkList('config.dns_config.options', dns.options, 32, (option, field) => checkText(field, option, { required: true, ...DNS_TOKEN }));
}

function checkPortMapping(mapping: cri.PortMapping, field: string): void {
  checkEnum(`${field}.protocol`, mapping.protocol, Object.values(Protocol));
  checkNumber(`${field}.container_port`, mapping.container_port, 1, 65535);
  checkNumber(`${field}.host_port`, mapping.host_port, 0, 65535);
  const hostIp = checkText(`${field}.host_ip`, mapping.host_ip, { maxBytes: 64, noSpace: true });
  if (hostIp && !isIpAddress(hostIp)) throw invalid(`${field}.host_ip`, `${JSON.stringify(hostIp)} is not an IP address`);
}

function checkLinux(linux: cri.LinuxPodSandboxConfig | null): void {
  if (!linux) return;
  checkText('config.linux.cgroup_parent', linux.cgroup_parent, { maxBytes: 4096, pattern: CGROUP_PARENT, patternHint: 'an absolute cgroup path or a systemd slice name' });
  if (linux.cgroup_parent.split('/').includes('..')) throw invalid('config.linux.cgroup_parent', 'must not contain ".."');
  const security = linux.security_context;
  const namespaces = security?.namespace_options ?? null;
  checkNamespaceOptions('config.linux.security_context.namespace_options', namespaces, 'pod');
  checkUserNamespace(namespaces?.userns_options ?? null);
  checkSysctls('config.linux.sysctls', linux.sysctls, namespaces?.network === 'NODE', namespaces?.ipc === 'NODE');
  checkResources('config.linux.overhead', linux.overhead);
  checkResources('config.linux.resources', linux.resources);
  if (!security) return;
  const field = 'config.linux.security_context';
  checkSelinux(`${field}.selinux_options`, security.selinux_options);
  checkId(`${field}.run_as_user`, security.run_as_user);
  checkId(`${field}.run_as_group`, security.run_as_group);
  checkGroups(`${field}.supplemental_groups`, security.supplemental_groups);
  checkEnum(`${field}.supplemental_groups_policy`, security.supplemental_groups_policy, Object.values(SupplementalGroupsPolicy));
  checkSeccompProfilePath(`${field}.seccomp_profile_path`, security.seccomp_profile_path);
  checkSecurityProfile(`${field}.seccomp`, security.seccomp);
  checkSecurityProfile(`${field}.apparmor`, security.apparmor);
}

/**
 * As the API defines it: NODE (the host's user namespace, no mappings) or POD (a namespace of
 * the pod's own, with exactly one uid and one gid mapping, which must map container id 0).
 */
export function checkUserNamespace(userns: cri.UserNamespace | null, field = 'config.linux.security_context.namespace_options.userns_options'): void {
  if (!userns) return;
  const mode = checkEnum(`${field}.mode`, userns.mode, ['NODE', 'POD', 'CONTAINER', 'TARGET']);
  if (mode !== 'NODE' && mode !== 'POD') throw invalid(`${field}.mode`, `${mode} is not supported for sandboxes (NODE or POD)`);
  if (mode === 'NODE') {
    if (userns.uids.length > 0 || userns.gids.length > 0) throw invalid(field, 'NODE mode takes no uid or gid mappings');
    return;
  }
  for (const kind of ['uids', 'gids'] as const) {
    const mappings = userns[kind];
    if (mappings.length !== 1) throw invalid(`${field}.${kind}`, `POD mode needs exactly one mapping, not ${mappings.length}`);
    const { container_id, host_id, length } = mappings[0]!;
    if (container_id !== 0) throw invalid(`${field}.${kind}[0].container_id`, `${container_id}: the mapping must start at the pod's root, 0`);
    checkNumber(`${field}.${kind}[0].length`, length, 1, UINT32_MAX - 1);
    checkNumber(`${field}.${kind}[0].host_id`, host_id, 1, UINT32_MAX - length);
  }
}

/** The reserved name of a pod: unique per name, namespace, uid and attempt. */
export function sandboxNameOf(meta: cri.PodSandboxMetadata): string {
  return joinNameParts([meta.name, meta.namespace, meta.uid, String(meta.attempt)]);
}
