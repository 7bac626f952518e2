/**
 * What an operator meets besides the happy path: a second daemon on the same node, clients
 * that give up, runc failures under crictl's deadline, a stop that must not block a
 * force-kill, a cgroup driver the host cannot serve, a record that is not what tscri wrote.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { layer, image } from '../../hack/lib/images.mjs';
import { FakeRegistry } from './fake-registry.js';
import { bridgeNetwork, podConfig, sleep, startTestDaemon, TSCRI_BIN, type TestDaemon } from './harness.js';
import { exists } from './host.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');

/** Start a second daemon process on `configFile` and collect how it ends. */
function secondDaemon(configFile: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TSCRI_BIN, 'daemon', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('faults an operator meets', () => {
  let daemon: TestDaemon;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function newPod(name: string) {
    const config = podConfig(name);
    return { id: (await daemon.runtime('RunPodSandbox', { config })).pod_sandbox_id, config };
  }

  async function runContainer(pod: { id: string; config: Record<string, unknown> }, name: string, overrides: Record<string, unknown> = {}) {
    const config = { metadata: { name }, image: { image: BUSYBOX }, command: ['sleep', '3600'], linux: {}, ...overrides };
    const { container_id } = await daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config });
    await daemon.runtime('StartContainer', { container_id });
    return container_id;
  }

  async function status(id: string): Promise<cri.ContainerStatus> {
    return (await daemon.runtime('ContainerStatus', { container_id: id, verbose: false })).status as cri.ContainerStatus;
  }

  it('refuses a second daemon on the same root and state, naming the first one, and keeps serving', async () => {
    const text = await fs.readFile(daemon.configFile, 'utf8');
    const otherSocket = path.join(daemon.dirs.base, 'second.sock');
    const sameDirs = path.join(daemon.dirs.base, 'same-dirs.toml');
    await fs.writeFile(sameDirs, text.replace(`unix://${daemon.socket}`, `unix://${otherSocket}`));
    const refused = await secondDaemon(sameDirs);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/another tscri daemon \(pid \d+\) is using/);
    expect(await exists(otherSocket)).toBe(false);

    // The same socket with a root and state of its own: the live socket is not taken over.
    const sameSocket = path.join(daemon.dirs.base, 'same-socket.toml');
    await fs.writeFile(
      sameSocket,
      text.replace(`root = "${daemon.dirs.root}"`, `root = "${daemon.dirs.base}/root2"`).replace(`state = "${daemon.dirs.state}"`, `state = "${daemon.dirs.base}/state2"`),
    );
    const refusedSocket = await secondDaemon(sameSocket);
    expect(refusedSocket.code).toBe(1);
    expect(refusedSocket.stderr).toMatch(/is served by a running process/);
    expect(await exists(daemon.socket)).toBe(true);
    await daemon.runtime('Version', { version: 'v1' });
  });

  it('answers a CreateContainer that runc refuses with runc’s reason, well inside crictl’s 2 s deadline', async () => {
    const pod = await newPod('bad-command');
    const config = { metadata: { name: 'nope' }, image: { image: BUSYBOX }, command: ['/no/such/binary'], linux: {} };
    await expect(daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config }, 2000)).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(/^runc create failed: command "\/no\/such\/binary" cannot be run in the container: no such file or directory$/),
    });
    expect((await daemon.runtime('ListContainers', { filter: { pod_sandbox_id: pod.id } })).containers).toEqual([]);
  });

  it('lets a force-kill and a Remove through while a long StopContainer waits out its grace period', async () => {
    const pod = await newPod('stubborn');
    const id = await runContainer(pod, 'ignores-term', { command: ['sh', '-c', "trap '' TERM; while true; do sleep 0.2; done"] });
    await sleep(300);
    const patient = daemon.runtime('StopContainer', { container_id: id, timeout: 600 });
    await sleep(300);
    // The kubelet's force-kill: timeout 0. It must not queue behind the first stop.
    await daemon.runtime('StopContainer', { container_id: id, timeout: 0 }, 5000);
    expect(await status(id)).toMatchObject({ state: 'CONTAINER_EXITED', exit_code: 137 });
    await patient;
    await daemon.runtime('RemoveContainer', { container_id: id }, 5000);
  });

  it('keeps reporting the memory limit after an update that changes only CPU', async () => {
    const pod = await newPod('resize');
    const id = await runContainer(pod, 'c', { linux: { resources: { memory_limit_in_bytes: 64 * 1024 * 1024, cpu_quota: 50_000, cpu_period: 100_000 } } });
    await daemon.runtime('UpdateContainerResources', { container_id: id, linux: { cpu_quota: 20_000, cpu_period: 100_000 } });
    const resources = (await status(id)).resources!.linux!;
    expect(resources).toMatchObject({ memory_limit_in_bytes: String(64 * 1024 * 1024), cpu_quota: '20000', cpu_period: '100000' });
  });

  it('sets aside a record that is not what tscri wrote, and recovers the rest', async () => {
    const keep = await newPod('kept');
    const bad = await newPod('tampered');
    await daemon.terminate();
    const file = path.join(daemon.dirs.root, 'sandboxes', bad.id, 'sandbox.json');
    const record = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
    const realNetns = record.netnsPath as string;
    await fs.writeFile(file, JSON.stringify({ ...record, netnsPath: '/etc' }));
    await daemon.start();
    const ids = (await daemon.runtime('ListPodSandbox', {})).items.map((p) => p.id);
    expect(ids).toContain(keep.id);
    expect(ids).not.toContain(bad.id);
    const quarantine = await fs.readdir(path.join(daemon.dirs.root, 'quarantine'));
    expect(quarantine.some((entry) => entry.startsWith(`sandbox-${bad.id}`))).toBe(true);
    expect(daemon.logs).toMatch(/invalid sandbox record set aside/);
    const { info } = await daemon.runtime('Status', { verbose: true });
    expect(JSON.parse(info.setAsideRecords!)).toEqual([expect.objectContaining({ kind: 'sandbox', id: bad.id, problem: expect.stringMatching(/netnsPath/) })]);
    expect(await exists('/etc/passwd')).toBe(true);
    // What the set-aside pod still holds is the operator's to clean; here, the test's.
    await fs.writeFile(path.join(daemon.dirs.root, 'quarantine', quarantine.find((e) => e.startsWith(`sandbox-${bad.id}`))!, 'sandbox.json'), JSON.stringify({ ...record, netnsPath: realNetns }));
    await daemon.terminate();
    await fs.rename(path.join(daemon.dirs.root, 'quarantine', quarantine.find((e) => e.startsWith(`sandbox-${bad.id}`))!), path.join(daemon.dirs.root, 'sandboxes', bad.id));
    await daemon.start();
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: bad.id });
  });
});

describe('clients that give up', () => {
  let daemon: TestDaemon | undefined;
  let registry: FakeRegistry | undefined;

  afterEach(async () => {
    await daemon?.stop();
    await registry?.close();
    daemon = undefined;
    registry = undefined;
  });

  it('hands a RunPodSandbox finished after its client’s deadline to the retry, never ALREADY_EXISTS', async () => {
    daemon = await startTestDaemon({
      network: (plan, dirs) => bridgeNetwork(plan, dirs, [{ type: 'tscri-test-plugin', delayOn: 'ADD', delayMs: 2500 }]),
    });
    const config = podConfig('slow-network');
    await expect(daemon.runtime('RunPodSandbox', { config }, 700)).rejects.toMatchObject({ code: grpcStatus.DEADLINE_EXCEEDED });
    // The kubelet's retry, with the same metadata, gets the pod the first call made.
    const { pod_sandbox_id } = await daemon.runtime('RunPodSandbox', { config });
    const pods = (await daemon.runtime('ListPodSandbox', {})).items;
    expect(pods.map((p) => p.id)).toEqual([pod_sandbox_id]);
    expect(pods[0]!.state).toBe('SANDBOX_READY');
    // Delivered once: the same metadata again is a conflict, as it always was.
    await expect(daemon.runtime('RunPodSandbox', { config })).rejects.toMatchObject({ code: grpcStatus.ALREADY_EXISTS });
  });

  it('cancels a pull whose every client gave up, and a retry starts afresh', async () => {
    const blob = await layer([{ path: 'big', type: 'file', content: Buffer.alloc(512 * 1024, 7) }]);
    registry = await FakeRegistry.start({ slowBlobs: { chunks: 40, delayMs: 100 } });
    registry.add('slow/image', '1', image({ layers: [blob], config: { Cmd: ['/big'] } }));
    daemon = await startTestDaemon({ network: 'none' });
    const ref = `${registry.host}/slow/image:1`;
    await expect(daemon.images('PullImage', { image: { image: ref } }, 1500)).rejects.toMatchObject({ code: grpcStatus.DEADLINE_EXCEEDED });
    // The daemon hung up on the registry instead of reading the rest of the layer (4 s).
    const deadline = Date.now() + 3000;
    while (registry.openResponses > 0 && Date.now() < deadline) await sleep(50);
    expect(registry.openResponses).toBe(0);
    const blobRequests = () => registry!.requests.filter((r) => r.path.endsWith(`/blobs/${blob.digest}`)).length;
    const before = blobRequests();
    const { image_ref } = await daemon.images('PullImage', { image: { image: ref } }, 60_000);
    expect(image_ref).toMatch(/^sha256:/);
    expect(blobRequests()).toBeGreaterThan(before);
    // Nothing of the cancelled download is left in the store's scratch space.
    expect(await fs.readdir(path.join(daemon.dirs.root, 'images', 'tmp')).catch(() => [])).toEqual([]);
  });

  it.skipIf(existsSync('/run/systemd/system'))('refuses to start with the systemd cgroup driver on a host without systemd', async () => {
    await expect(startTestDaemon({ systemdDriver: true })).rejects.toThrow(/cgroup_driver is .*systemd.*, but systemd is not running on this host/);
  });
});
