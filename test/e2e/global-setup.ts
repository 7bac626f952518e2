/**
 * Before any end-to-end test: they need root and the runtime's host dependencies, they run
 * the built daemon (built here unless TSCRI_SKIP_BUILD=1 says it is fresh), and they pull
 * from a local registry holding the test images (started here, stopped at the end).
 */
import { constants, promises as fs } from 'node:fs';
import { execa } from 'execa';
import { pushTestImages } from '../../hack/test-images.mjs';
import { REPO } from './harness.js';
import { LOCAL_REGISTRY } from './images.js';

const REQUIRED = [
  '/usr/sbin/runc',
  '/usr/bin/conmon',
  '/usr/bin/catatonit',
  '/usr/bin/busybox',
  '/usr/bin/docker-registry',
  '/usr/bin/setfattr',
  '/usr/lib/cni/bridge',
  '/usr/lib/cni/host-local',
  '/usr/lib/cni/portmap',
];

export default async function setup(): Promise<() => Promise<void>> {
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
  // A registry that was already running (a developer's, or another run's) is reused and left
  // running; only one started here is stopped at the end.
  const registry = await execa(`${REPO}/hack/registry.sh`, ['start'], { cwd: REPO });
  const startedHere = registry.stdout.startsWith('registry: started');
  const teardown = async (): Promise<void> => {
    if (startedHere) await execa(`${REPO}/hack/registry.sh`, ['stop'], { cwd: REPO });
  };
  try {
    await pushTestImages(LOCAL_REGISTRY);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}
