/**
 * Before any end-to-end test: they need root and the runtime's host dependencies, and they
 * run the built daemon, so build it unless TSCRI_SKIP_BUILD=1 says it is fresh.
 */
import { constants, promises as fs } from 'node:fs';
import { execa } from 'execa';
import { REPO } from './harness.js';

const REQUIRED = ['/usr/sbin/runc', '/usr/bin/conmon', '/usr/bin/catatonit', '/usr/lib/cni/bridge', '/usr/lib/cni/host-local', '/usr/lib/cni/portmap'];

export default async function setup(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('end-to-end tests need root (they create netns, bridges and containers)');
  for (const file of REQUIRED) {
    try {
      await fs.access(file, constants.X_OK);
    } catch {
      throw new Error(`${file} is missing: run hack/setup.sh first`);
    }
  }
  if (process.env.TSCRI_SKIP_BUILD !== '1') {
    await execa('npm', ['run', 'build'], { cwd: REPO, stdio: 'inherit' });
  }
}
