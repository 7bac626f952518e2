/**
 * Before any end-to-end test: they need root and the runtime's host dependencies, they run
 * the built daemon (built here unless TSCRI_SKIP_BUILD=1 says it is fresh), and they pull
 * from a registry this run starts on a free port and fills itself.
 *
 * A run owns everything it uses and finds nothing it did not make: its files live in one new
 * directory (registry storage, daemon roots, logs), its bridges, networks and cgroups carry
 * the run's id, and at the end it stops the registry, insists that no netns, link, iptables
 * rule, mount, process or cgroup was left behind, and removes the directory.
 */
import { constants, promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { execa } from 'execa';
import type { TestProject } from 'vitest/node';
import { startRegistry, type RunningRegistry } from '../../hack/lib/registry.mjs';
import { pushTestImages, TEST_IMAGE_NAMES } from '../../hack/test-images.mjs';
import { checkTestsAgainstCatalogue } from './catalogue-guard.js';
import { cgroupParentOf, REPO } from './harness.js';
import { cgroupChildren, cgroupDirs, leftoversSince, mountsUnder, processesMatching, removeEmptyCniDirs, snapshotHost, type HostSnapshot } from './host.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `127.0.0.1:<port>` of the run's own registry. */
    registry: string;
    /** Six hex digits unique to this run, in the names of its networks and cgroups. */
    runId: string;
    /** The directory every file of the run lives in; removed at the end. */
    runDir: string;
  }
}

const REQUIRED = [
  '/usr/sbin/runc',
  '/usr/bin/conmon',
  '/usr/bin/catatonit',
  '/usr/bin/busybox',
  '/usr/bin/docker-registry',
  '/usr/bin/setfattr',
  '/usr/bin/socat',
  '/usr/bin/nsenter',
  '/usr/sbin/iptables-save',
  '/usr/lib/cni/bridge',
  '/usr/lib/cni/host-local',
  '/usr/lib/cni/portmap',
];

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) throw new Error('end-to-end tests need root (they create netns, bridges and containers)');
  for (const file of REQUIRED) {
    try {
      await fs.access(file, constants.X_OK);
    } catch {
      throw new Error(`${file} is missing: run hack/setup.sh first`);
    }
  }
  await checkTestsAgainstCatalogue(path.join(REPO, 'test/e2e'), TEST_IMAGE_NAMES, REPO);
  if (process.env.TSCRI_SKIP_BUILD !== '1') {
    await execa('npm', ['run', 'build'], { cwd: REPO, stdio: 'inherit' });
  }

  const before = await snapshotHost();
  const runId = randomBytes(3).toString('hex');
  const runDir = `/tmp/tse2e-${runId}`;
  await fs.mkdir(runDir, { mode: 0o700 });
  let registry: RunningRegistry | undefined;
  const teardown = () => finishRun({ runId, runDir, before, registry });
  try {
    registry = await startRegistry({ dir: path.join(runDir, 'registry') });
    await pushTestImages(registry.address);
  } catch (err) {
    await teardown().catch(() => {});
    throw err;
  }
  project.provide('registry', registry.address);
  project.provide('runId', runId);
  project.provide('runDir', runDir);
  return teardown;
}

interface Run {
  runId: string;
  runDir: string;
  before: HostSnapshot;
  registry: RunningRegistry | undefined;
}

/** Stop the registry, check that the run left nothing, and remove what it made. */
async function finishRun({ runId, runDir, before, registry }: Run): Promise<void> {
  await registry?.stop();
  const leftovers: string[] = [];
  // The run's own cgroup parent goes first (its children would be leftovers), so that any
  // other new top-level cgroup found below is one a pod made elsewhere and left.
  for (const dir of await cgroupDirs(cgroupParentOf(runId))) {
    const children = await cgroupChildren(dir);
    leftovers.push(...children.map((child) => `cgroup ${child}`));
    for (const cgroup of [...children, dir]) await fs.rmdir(cgroup).catch(() => {});
  }
  await removeEmptyCniDirs(before);
  leftovers.push(...leftoversSince(before, await snapshotHost()));
  const mounts = await mountsUnder(runDir);
  leftovers.push(...mounts.map((m) => `mount ${m}`));
  leftovers.push(...(await processesMatching(runDir)).map((pid) => `process ${pid}`));
  // Never delete through a mount: a pod's rootfs left mounted would lose the evidence and
  // could reach outside the directory.
  if (mounts.length === 0) await fs.rm(runDir, { recursive: true, force: true });
  if (leftovers.length > 0) {
    // vitest only logs an error thrown here ("error during close") and exits 0.
    process.exitCode = 1;
    throw new Error(`the test run left behind:\n  ${leftovers.join('\n  ')}`);
  }
}
