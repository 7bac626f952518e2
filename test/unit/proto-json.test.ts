import { describe, expect, it } from 'vitest';
import { messageFromJson, messageToJson } from '../../src/cli/proto-json.js';

describe('JSON config files for the client', () => {
  it('reads crictl’s snake_case pod config with enum numbers, keeping label keys as they are', () => {
    const config = messageFromJson('PodSandboxConfig', {
      metadata: { name: 'web', namespace: 'default', uid: 'u', attempt: 1 },
      log_directory: '/tmp',
      port_mappings: [{ protocol: 1, container_port: 53, host_port: 5353 }],
      labels: { 'app.kubernetes.io/name': 'web', some_label: 'x' },
      linux: { security_context: { namespace_options: { network: 2 } } },
    });
    expect(config).toEqual({
      metadata: { name: 'web', namespace: 'default', uid: 'u', attempt: 1 },
      log_directory: '/tmp',
      port_mappings: [{ protocol: 'UDP', container_port: 53, host_port: 5353 }],
      labels: { 'app.kubernetes.io/name': 'web', some_label: 'x' },
      linux: { security_context: { namespace_options: { network: 'NODE' } } },
    });
  });

  it('also reads camelCase names and enum names', () => {
    expect(messageFromJson('PodSandboxConfig', { logDirectory: '/x', portMappings: [{ protocol: 'SCTP', containerPort: 1 }] })).toEqual({
      log_directory: '/x',
      port_mappings: [{ protocol: 'SCTP', container_port: 1 }],
    });
  });

  it('names an unknown field with its path', () => {
    expect(() => messageFromJson('PodSandboxConfig', { metadata: { nmae: 'x' } })).toThrow('PodSandboxConfig.metadata: unknown field "nmae"');
  });

  it('prints replies with lowerCamelCase names but map keys untouched', () => {
    expect(messageToJson('PodSandbox', { id: 'a', created_at: '5', labels: { snake_key: 'v' }, runtime_handler: '' })).toEqual({
      id: 'a',
      createdAt: '5',
      labels: { snake_key: 'v' },
      runtimeHandler: '',
    });
  });
});
