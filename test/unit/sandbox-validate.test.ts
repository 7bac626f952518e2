import { describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { namespaceOptionsOf, sandboxNameOf, validateSandboxConfig } from '../../src/sandbox/validate.js';
import { podCniArgs, buildCniArgs } from '../../src/network/cni/args.js';

function config(overrides: Partial<cri.PodSandboxConfig> = {}): cri.PodSandboxConfig {
  return {
    metadata: { name: 'web', namespace: 'default', uid: 'u-1', attempt: 2 },
    hostname: 'web',
    log_directory: '',
    dns_config: null,
    port_mappings: [],
    labels: {},
    annotations: {},
    linux: null,
    windows: null,
    ...overrides,
  };
}

describe('sandbox config validation', () => {
  it('accepts a complete config', () => {
    expect(() => validateSandboxConfig(config())).not.toThrow();
  });

  it('requires a config and metadata', () => {
    expect(() => validateSandboxConfig(null)).toThrow(/config is required/);
    expect(() => validateSandboxConfig(config({ metadata: null }))).toThrow(/must have metadata/);
  });

  it.each(['name', 'namespace', 'uid'] as const)('requires metadata.%s', (field) => {
    const c = config();
    c.metadata = { ...c.metadata!, [field]: '' };
    expect(() => validateSandboxConfig(c)).toThrow(new RegExp(`metadata\\.${field} is required`));
  });

  it('rejects port mappings out of range', () => {
    const mapping = { protocol: 'TCP' as const, container_port: 0, host_port: 80, host_ip: '' };
    expect(() => validateSandboxConfig(config({ port_mappings: [mapping] }))).toThrow(/container_port 0/);
    expect(() => validateSandboxConfig(config({ port_mappings: [{ ...mapping, container_port: 80, host_port: 70000 }] }))).toThrow(/host_port 70000/);
  });

  it('names a sandbox by name, namespace, uid and attempt', () => {
    expect(sandboxNameOf(config().metadata!)).toBe('web_default_u-1_2');
  });

  it('defaults namespace options to POD when the security context is unset', () => {
    expect(namespaceOptionsOf(config())).toMatchObject({ network: 'POD', pid: 'POD', ipc: 'POD' });
  });
});

describe('CNI_ARGS for a pod', () => {
  it('puts IgnoreUnknown first and then the four Kubernetes labels', () => {
    const args = buildCniArgs(podCniArgs({ namespace: 'ns', name: 'web', uid: 'u-1', sandboxId: 'abc' }));
    expect(args).toBe('IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1');
  });
});
