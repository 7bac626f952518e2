/**
 * Crash anywhere: the daemon is killed with SIGKILL at a random moment inside a random
 * mutating RPC, again and again, and started again each time. After every restart, whatever
 * it lists must answer Status and be removable, the pod and container kept running from the
 * start must still run and take an exec; at the end, removing everything must leave nothing
 * on the host (checked here for the daemon's own directories, and by the run's teardown for
 * netns, links, iptables rules, mounts, cgroups and processes).
 *
 * Rounds and seed: TSCRI_CRASH_ROUNDS (default 24), TSCRI_CRASH_SEED (default: the time).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bridgeNetwork, podConfig, sleep, startTestDaemon, type TestDaemon } from './harness.js';
import { allocatedIps } from './host.js';
import { testImage } from './images.js';

const ROUNDS = Number(process.env.TSCRI_CRASH_ROUNDS ?? 24);
const SEED = Number(process.env.TSCRI_CRASH_SEED ?? Date.now() % 2 ** 31);
const BUSYBOX = testImage('busybox');
const EXTRA_IMAGE = testImage('user', 'uid');

/** A small deterministic generator, so a failing seed replays the same kill points. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/** One mutating RPC to crash inside: what it needs set up, and how to start it. */
interface Operation {
  name: string;
  /** How long it usually takes, in ms: the kill lands somewhere in [0, window]. */
  window: number;
  start: () => Promise<unknown>;
}

describe(`SIGKILL at random moments inside every mutating RPC (seed ${SEED}, ${ROUNDS} rounds)`, () => {
  let daemon: TestDaemon;
  let keeperPod: { id: string; config: Record<string, unknown> };
  let keeper: string;
  const rand = random(SEED);
  const pick = <T>(items: T[]): T => items[Math.floor(rand() * items.length)]!;
  let serial = 0;

  beforeAll(async () => {
    daemon = await startTestDaemon({
      // portmap with a host port: iptables rules are made and must go again.
      network: (plan, dirs) => bridgeNetwork(plan, dirs),
    });
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
    keeperPod = await runPod('keeper');
    keeper = await createContainer(keeperPod, 'keeper');
    await daemon.runtime('StartContainer', { container_id: keeper });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function runPod(name: string) {
    const config = podConfig(`${name}-${serial++}`, { port_mappings: [{ protocol: 'TCP', container_port: 80, host_port: 20000 + (serial % 1000) }] });
    return { id: (await daemon.runtime('RunPodSandbox', { config })).pod_sandbox_id, config };
  }

  async function createContainer(pod: { id: string; config: Record<string, unknown> }, name: string) {
    const config = { metadata: { name: `${name}-${serial++}` }, image: { image: BUSYBOX }, command: ['sleep', '3600'], linux: {} };
    return (await daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config })).container_id;
  }

  /** Build the operation for this round, with whatever it needs made first (not crashed in). */
  async function operation(): Promise<Operation> {
    const kind = pick(['RunPodSandbox', 'StopPodSandbox', 'RemovePodSandbox', 'CreateContainer', 'StartContainer', 'StopContainer', 'RemoveContainer', 'ExecSync', 'PullImage', 'RemoveImage']);
    switch (kind) {
      case 'RunPodSandbox':
        return { name: kind, window: 250, start: () => runPod('crash') };
      case 'StopPodSandbox':
      case 'RemovePodSandbox': {
        const pod = await runPod('victim');
        await daemon.runtime('StartContainer', { container_id: await createContainer(pod, 'inside') });
        return { name: kind, window: 200, start: () => daemon.runtime(kind, { pod_sandbox_id: pod.id }) };
      }
      case 'CreateContainer':
        return { name: kind, window: 150, start: () => createContainer(keeperPod, 'crash') };
      case 'StartContainer': {
        const id = await createContainer(keeperPod, 'to-start');
        return { name: kind, window: 40, start: () => daemon.runtime(kind, { container_id: id }) };
      }
      case 'StopContainer':
      case 'RemoveContainer': {
        const id = await createContainer(keeperPod, 'to-end');
        await daemon.runtime('StartContainer', { container_id: id });
        const request = kind === 'StopContainer' ? { container_id: id, timeout: 1 } : { container_id: id };
        return { name: kind, window: 100, start: () => daemon.runtime(kind, request as never) };
      }
      case 'ExecSync':
        return { name: kind, window: 100, start: () => daemon.runtime(kind, { container_id: keeper, cmd: ['sh', '-c', 'echo crash > /tmp/exec-ran; sleep 0.05'], timeout: 10 }) };
      case 'PullImage':
        return { name: kind, window: 400, start: () => daemon.images(kind, { image: { image: EXTRA_IMAGE } }) };
      default: {
        await daemon.images('PullImage', { image: { image: EXTRA_IMAGE } });
        return { name: kind, window: 60, start: () => daemon.images('RemoveImage', { image: { image: EXTRA_IMAGE } }) };
      }
    }
  }

  /** After a restart: everything listed answers Status, and whatever is not whole can be removed. */
  async function checkWholeOrRemovable(round: string): Promise<void> {
    const { items: pods } = await daemon.runtime('ListPodSandbox', {});
    for (const pod of pods) {
      const { status } = await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true });
      expect(status, round).toBeTruthy();
      if (pod.id !== keeperPod.id && status!.state !== 'SANDBOX_READY') {
        await daemon.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
        await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
      }
    }
    const { containers } = await daemon.runtime('ListContainers', {});
    for (const container of containers) {
      const { status } = await daemon.runtime('ContainerStatus', { container_id: container.id, verbose: true });
      expect(status, round).toBeTruthy();
      if (container.id !== keeper && status!.state !== 'CONTAINER_RUNNING') {
        await daemon.runtime('RemoveContainer', { container_id: container.id });
      }
    }
    const { status } = await daemon.runtime('ContainerStatus', { container_id: keeper, verbose: false });
    expect(status!.state, `${round}: the keeper container`).toBe('CONTAINER_RUNNING');
    const exec = await daemon.runtime('ExecSync', { container_id: keeper, cmd: ['echo', 'alive'], timeout: 10 });
    expect(exec.stdout.toString(), round).toBe('alive\n');
    const pod = await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: keeperPod.id, verbose: false });
    expect(pod.status!.state, `${round}: the keeper pod`).toBe('SANDBOX_READY');
  }

  it('stays whole or removable after every crash, and leaves nothing once everything is removed', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const op = await operation();
      const delay = Math.floor(rand() * op.window);
      const label = `round ${round}: ${op.name} killed after ${delay} ms (seed ${SEED})`;
      const call = op.start().then(
        () => 'finished',
        (err: { code?: number }) => (err.code === grpcStatus.UNAVAILABLE || err.code === grpcStatus.CANCELLED || err.code === undefined ? 'cut' : `failed ${err.code}`),
      );
      await sleep(delay);
      await daemon.kill9();
      const outcome = await call;
      expect(outcome, label).not.toMatch(/^failed/);
      await daemon.start();
      await checkWholeOrRemovable(label);
    }

    // Remove everything but the keeper, then the keeper, and look at what is left.
    await daemon.runtime('RemoveContainer', { container_id: keeper });
    for (const pod of (await daemon.runtime('ListPodSandbox', {})).items) await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    await daemon.images('RemoveImage', { image: { image: EXTRA_IMAGE } }).catch(() => undefined);
    const dirs = daemon.dirs;
    const entries = async (dir: string) => (await fs.readdir(dir).catch(() => [] as string[])).filter((e) => !e.startsWith('.'));
    expect(await entries(path.join(dirs.root, 'sandboxes'))).toEqual([]);
    expect(await entries(path.join(dirs.root, 'containers'))).toEqual([]);
    expect(await entries(path.join(dirs.root, 'cni', 'results'))).toEqual([]);
    expect(await entries(path.join(dirs.root, 'images', 'tmp'))).toEqual([]);
    expect(await entries(path.join(dirs.state, 'bundles'))).toEqual([]);
    expect(await entries(path.join(dirs.state, 'exits'))).toEqual([]);
    expect(await allocatedIps(daemon.plan.ipamDataDir, daemon.plan.networkName)).toEqual([]);
    expect(await entries(path.join(dirs.root, 'quarantine'))).toEqual([]);
  }, 60_000 + ROUNDS * 15_000);
});
