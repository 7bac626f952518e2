import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podConfig, startTestDaemon, type TestDaemon } from './harness.js';
import {
  addressesIn,
  allocatedIps,
  bridgePorts,
  exists,
  inNetns,
  isAlive,
  linkState,
  mountsUnder,
  nsInode,
} from './host.js';
import { freePort } from '../../hack/lib/registry.mjs';

interface VerboseInfo {
  pid: number;
  netnsPath: string;
  shmPath: string;
  cgroupsPath: string;
  timingsMs: Record<string, number>;
  runtimeSpec: { process: { user: { uid: number } } };
}

describe('pod sandboxes end to end', () => {
  let daemon: TestDaemon;

  beforeAll(async () => {
    daemon = await startTestDaemon();
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function runPod(config: Record<string, unknown>): Promise<string> {
    const { pod_sandbox_id } = await daemon.runtime('RunPodSandbox', { config });
    return pod_sandbox_id;
  }

  async function inspect(id: string) {
    const res = await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: id, verbose: true });
    return { status: res.status!, info: JSON.parse(res.info.info!) as VerboseInfo };
  }

  it('reports its version and a ready runtime and network', async () => {
    const version = await daemon.runtime('Version', { version: 'v1' });
    expect(version).toMatchObject({ runtime_name: 'tscri', runtime_api_version: 'v1', version: '0.1.0' });
    const { status } = await daemon.runtime('Status', { verbose: false });
    const conditions = Object.fromEntries(status!.conditions.map((c) => [c.type, c.status]));
    expect(conditions).toEqual({ RuntimeReady: true, NetworkReady: true });
  });

  it('runs a pod in its own netns with the IP CNI gave it, a pause process inside, and the pod labels passed to CNI', async () => {
    const config = podConfig('web');
    const id = await runPod(config);
    const { status, info } = await inspect(id);

    expect(status.state).toBe('SANDBOX_READY');
    expect(status.metadata).toMatchObject(config.metadata as object);
    expect(status.labels).toEqual(config.labels);
    expect(status.annotations).toEqual(config.annotations);
    expect(BigInt(status.created_at)).toBeGreaterThan(BigInt(Date.now() - 60_000) * 1_000_000n);

    // The netns exists under /run/netns and eth0 in it carries the reported IP.
    const netnsName = path.basename(info.netnsPath);
    expect(info.netnsPath).toMatch(/^\/run\/netns\/cni-[0-9a-f-]{36}$/);
    expect(await exists(info.netnsPath)).toBe(true);
    expect(status.network!.ip).toMatch(/^10\.88\.\d+\.\d+$/);
    expect(await addressesIn(netnsName, 'eth0')).toContain(`${status.network!.ip}/24`);
    expect(await linkState(netnsName, 'lo')).toBe('UP');
    expect(await allocatedIps(daemon.plan.ipamDataDir, daemon.plan.networkName)).toContain(status.network!.ip);

    // The pause process lives in that netns, as the unprivileged pause user, with the pod hostname.
    expect(await isAlive(info.pid)).toBe(true);
    expect(await nsInode(`/proc/${info.pid}/ns/net`)).toBe(await nsInode(info.netnsPath));
    expect(await fs.readFile(`/proc/${info.pid}/status`, 'utf8')).toMatch(/^Uid:\s+65535\s/m);
    const { stdout: hostname } = await execa('nsenter', ['-t', String(info.pid), '-u', 'hostname']);
    expect(hostname).toBe('web');
    expect(await mountsUnder(info.shmPath)).toEqual([info.shmPath]);
    expect(info.timingsMs).toHaveProperty('cni');

    // The pause process is in the sandbox's cgroup.
    const procs = await fs.readFile(`/sys/fs/cgroup/memory${info.cgroupsPath}/cgroup.procs`, 'utf8').catch(() =>
      fs.readFile(`/sys/fs/cgroup${info.cgroupsPath}/cgroup.procs`, 'utf8'),
    );
    expect(procs.split('\n')).toContain(String(info.pid));

    // CNI got the netns, eth0, and CNI_ARGS with IgnoreUnknown and the four pod labels.
    const add = (await daemon.cniRecords()).find((r) => r.command === 'ADD' && r.containerId === id);
    expect(add).toBeDefined();
    expect(add!.netns).toBe(info.netnsPath);
    expect(add!.ifName).toBe('eth0');
    const meta = config.metadata as { name: string; namespace: string; uid: string };
    expect(add!.args.split(';')).toEqual([
      'IgnoreUnknown=1',
      `K8S_POD_NAMESPACE=${meta.namespace}`,
      `K8S_POD_NAME=${meta.name}`,
      `K8S_POD_INFRA_CONTAINER_ID=${id}`,
      `K8S_POD_UID=${meta.uid}`,
    ]);
  });

  it('answers on a mapped host port with the server inside the pod', async () => {
    const hostPort = await freePort();
    const id = await runPod(podConfig('ports', { port_mappings: [{ protocol: 'TCP', container_port: 8080, host_port: hostPort }] }));
    const { info } = await inspect(id);
    const netnsName = path.basename(info.netnsPath);

    const add = (await daemon.cniRecords()).find((r) => r.command === 'ADD' && r.containerId === id);
    expect(add!.stdin.runtimeConfig).toEqual({
      portMappings: [{ hostPort, containerPort: 8080, protocol: 'tcp' }],
    });

    const server = execa('ip', ['netns', 'exec', netnsName, process.execPath, '-e', POD_SERVER, '8080'], { reject: false });
    try {
      await waitFor(async () => (await inNetns(netnsName, 'ss', ['-ltn'])).stdout.includes(':8080'));
      expect(await fetchLine('127.0.0.1', hostPort)).toBe('hello from the pod');
    } finally {
      server.kill('SIGKILL');
      await server;
    }
  });

  it('stops a pod by releasing its IP, veth, netns and pause process, and removes it without a trace', async () => {
    const id = await runPod(podConfig('stopme'));
    const { status, info } = await inspect(id);
    const veths = await bridgePorts(daemon.plan.bridge);
    expect(veths.length).toBeGreaterThan(0);

    await daemon.runtime('StopPodSandbox', { pod_sandbox_id: id });
    const stopped = await inspect(id);
    expect(stopped.status.state).toBe('SANDBOX_NOTREADY');
    expect(await exists(info.netnsPath)).toBe(false);
    expect(await allocatedIps(daemon.plan.ipamDataDir, daemon.plan.networkName)).not.toContain(status.network!.ip);
    expect((await bridgePorts(daemon.plan.bridge)).length).toBe(veths.length - 1);
    expect(await isAlive(info.pid)).toBe(false);
    expect(await mountsUnder(info.shmPath)).toEqual([]);
    expect((await daemon.cniRecords()).some((r) => r.command === 'DEL' && r.containerId === id)).toBe(true);

    // Stop is idempotent.
    await daemon.runtime('StopPodSandbox', { pod_sandbox_id: id });

    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id });
    await expect(daemon.runtime('PodSandboxStatus', { pod_sandbox_id: id, verbose: false })).rejects.toMatchObject({
      code: grpcStatus.NOT_FOUND,
    });
    expect(await exists(path.join(daemon.dirs.root, 'sandboxes', id))).toBe(false);
    expect(await exists(path.join(daemon.dirs.state, 'bundles', id))).toBe(false);
    expect(await exists(path.join(daemon.dirs.state, 'sandboxes', id))).toBe(false);
    expect(await fs.readdir(path.join(daemon.dirs.root, 'cni', 'results'))).not.toContain(`${id}-eth0.json`);

    // Remove is idempotent: an id that is gone is not an error.
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id });
  });

  it('removes a running pod in one call', async () => {
    const id = await runPod(podConfig('rm-running'));
    const { status, info } = await inspect(id);
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id });
    expect(await exists(info.netnsPath)).toBe(false);
    expect(await isAlive(info.pid)).toBe(false);
    expect(await allocatedIps(daemon.plan.ipamDataDir, daemon.plan.networkName)).not.toContain(status.network!.ip);
  });

  it('refuses the same pod metadata twice while the first sandbox exists', async () => {
    const config = podConfig('twice');
    const id = await runPod(config);
    await expect(runPod(config)).rejects.toMatchObject({ code: grpcStatus.ALREADY_EXISTS });
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id });
    const again = await runPod(config);
    expect(again).not.toBe(id);
  });

  it('rejects a config without name, namespace or uid as InvalidArgument', async () => {
    await expect(daemon.runtime('RunPodSandbox', {})).rejects.toMatchObject({ code: grpcStatus.INVALID_ARGUMENT });
    for (const field of ['name', 'namespace', 'uid']) {
      const config = podConfig('invalid');
      delete (config.metadata as Record<string, unknown>)[field];
      await expect(runPod(config)).rejects.toMatchObject({
        code: grpcStatus.INVALID_ARGUMENT,
        details: expect.stringContaining(`metadata.${field}`),
      });
    }
    await expect(daemon.runtime('RunPodSandbox', { config: podConfig('handler'), runtime_handler: 'kata' })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
    });
  });

  it('answers NotFound for an unknown id in Status, stops and removes it idempotently, and accepts unique id prefixes', async () => {
    await expect(daemon.runtime('PodSandboxStatus', { pod_sandbox_id: 'f'.repeat(64), verbose: false })).rejects.toMatchObject({
      code: grpcStatus.NOT_FOUND,
    });
    // The API makes stops idempotent: a pod (or container) that does not exist is stopped.
    await daemon.runtime('StopPodSandbox', { pod_sandbox_id: 'f'.repeat(64) });
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: 'f'.repeat(64) });
    await daemon.runtime('StopContainer', { container_id: 'f'.repeat(64), timeout: 10 });
    await daemon.runtime('RemoveContainer', { container_id: 'f'.repeat(64) });
    await expect(daemon.runtime('ContainerStatus', { container_id: 'f'.repeat(64), verbose: false })).rejects.toMatchObject({
      code: grpcStatus.NOT_FOUND,
    });
    const id = await runPod(podConfig('prefix'));
    const { status } = await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: id.slice(0, 13), verbose: false });
    expect(status!.id).toBe(id);
  });

  it('lists pods filtered by id prefix, state and labels', async () => {
    const a = await runPod(podConfig('list-a', { labels: { group: 'one', tier: 'web' } }));
    const b = await runPod(podConfig('list-b', { labels: { group: 'one', tier: 'db' } }));
    await daemon.runtime('StopPodSandbox', { pod_sandbox_id: b });

    const ids = async (filter: Record<string, unknown>) =>
      (await daemon.runtime('ListPodSandbox', { filter })).items.map((item) => item.id).sort();
    expect(await ids({ label_selector: { group: 'one' } })).toEqual([a, b].sort());
    expect(await ids({ label_selector: { group: 'one', tier: 'db' } })).toEqual([b]);
    expect(await ids({ label_selector: { group: 'one' }, state: { state: 'SANDBOX_READY' } })).toEqual([a]);
    expect(await ids({ label_selector: { group: 'one' }, state: { state: 'SANDBOX_NOTREADY' } })).toEqual([b]);
    expect(await ids({ id: a.slice(0, 12) })).toEqual([a]);
    expect(await ids({ id: 'doesnotexist' })).toEqual([]);

    const { items } = await daemon.runtime('ListPodSandbox', { filter: { id: a } });
    expect(items[0]).toMatchObject({ id: a, state: 'SANDBOX_READY', labels: { group: 'one', tier: 'web' } });
  });

  it('runs a host-network pod without a netns or CNI, in the host network namespace', async () => {
    const recordsBefore = (await daemon.cniRecords()).length;
    const id = await runPod(
      podConfig('hostnet', { linux: { security_context: { namespace_options: { network: 'NODE' } } } }),
    );
    const { status, info } = await inspect(id);
    expect(status.state).toBe('SANDBOX_READY');
    expect(status.network!.ip).toBe('');
    expect(status.linux!.namespaces!.options!.network).toBe('NODE');
    expect(info.netnsPath).toBe('');
    expect(await nsInode(`/proc/${info.pid}/ns/net`)).toBe(await nsInode('/proc/self/ns/net'));
    expect((await daemon.cniRecords()).length).toBe(recordsBefore);
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id });
    expect(await isAlive(info.pid)).toBe(false);
  });

  it('gives the pod the DNS settings it asked for', async () => {
    const id = await runPod(
      podConfig('dns', { dns_config: { servers: ['10.88.0.10'], searches: ['e2e.svc.cluster.local'], options: ['ndots:5'] } }),
    );
    const resolv = await fs.readFile(path.join(daemon.dirs.root, 'sandboxes', id, 'resolv.conf'), 'utf8');
    expect(resolv).toBe('search e2e.svc.cluster.local\nnameserver 10.88.0.10\noptions ndots:5\n');
  });
});

/** A one-line HTTP-free server: writes a greeting to every connection. */
const POD_SERVER = `require('net').createServer(s => s.end('hello from the pod\\n')).listen(Number(process.argv[1]), '0.0.0.0')`;

function fetchLine(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    let data = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('timed out')));
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('end', () => resolve(data.trim()));
    socket.on('error', reject);
  });
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('condition not met in time');
}
