import { describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { processEnv } from '../../src/container/spec.js';
import type { ImageConfig } from '../../src/image/registry/manifest.js';
import { withTerm } from '../../src/oci/terminal-env.js';

const image = (env: string[] = []) => ({ config: { Env: env } }) as unknown as ImageConfig;
const config = (tty: boolean, envs: Array<{ key: string; value: string }> = []) => ({ tty, envs }) as unknown as cri.ContainerConfig;

describe('TERM for processes with a terminal', () => {
  it('is xterm for a tty container, and absent without a terminal', () => {
    expect(processEnv(config(true), image(), 'h')).toContain('TERM=xterm');
    expect(processEnv(config(false), image(), 'h').some((e) => e.startsWith('TERM='))).toBe(false);
  });

  it("yields to the image's or the container's own TERM", () => {
    expect(processEnv(config(true), image(['TERM=vt100']), 'h').filter((e) => e.startsWith('TERM='))).toEqual(['TERM=vt100']);
    expect(processEnv(config(true, [{ key: 'TERM', value: 'linux' }]), image(), 'h').filter((e) => e.startsWith('TERM='))).toEqual(['TERM=linux']);
  });

  it('is added to an exec with a terminal unless its environment names one', () => {
    expect(withTerm(['PATH=/bin'])).toEqual(['PATH=/bin', 'TERM=xterm']);
    expect(withTerm(['TERM=screen'])).toEqual(['TERM=screen']);
    expect(withTerm(['TERM='])).toEqual(['TERM=']);
  });
});
