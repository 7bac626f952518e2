import { describe, it, expect } from 'vitest';
import { buildCniArgs, podCniArgs } from '../../src/network/cni/args.js';
import { InvalidArgumentError } from '../../src/errors.js';

describe('podCniArgs', () => {
  it('lists IgnoreUnknown first, then the four K8S_ labels', () => {
    const pairs = podCniArgs({ namespace: 'default', name: 'web-0', uid: 'u-1', sandboxId: 'abc123' });
    expect(pairs).toEqual([
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', 'default'],
      ['K8S_POD_NAME', 'web-0'],
      ['K8S_POD_INFRA_CONTAINER_ID', 'abc123'],
      ['K8S_POD_UID', 'u-1'],
    ]);
    expect(buildCniArgs(pairs)).toBe(
      'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1',
    );
  });
});

describe('buildCniArgs', () => {
  it('renders an empty list as an empty string', () => {
    expect(buildCniArgs([])).toBe('');
  });

  it('allows empty values', () => {
    expect(buildCniArgs([['A', ''], ['B', '2']])).toBe('A=;B=2');
  });

  it('rejects separators in keys and values', () => {
    expect(() => buildCniArgs([['A;B', '1']])).toThrow(InvalidArgumentError);
    expect(() => buildCniArgs([['A=B', '1']])).toThrow(InvalidArgumentError);
    expect(() => buildCniArgs([['', '1']])).toThrow(InvalidArgumentError);
    expect(() => buildCniArgs([['A', 'x;B=y']])).toThrow(InvalidArgumentError);
    // Plugins split each pair on "=" and want exactly two parts.
    expect(() => buildCniArgs([['A', 'x=y']])).toThrow(InvalidArgumentError);
  });
});
