import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRemoteCommand } from '../../src/cli/streaming-client.js';
import { duplicateKeys } from '../unit/json-keys.js';
import { collector, podConfig, startTestDaemon, type TestDaemon } from './harness.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');
/** Prints TERM between brackets, so "unset" is visible as []. */
const SHOW_TERM = ['sh', '-c', 'echo "[$TERM]"'];

describe("what operators and a pod's terminals see", () => {
  let daemon: TestDaemon;
  let podId: string;
  let pod: Record<string, unknown>;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
    pod = podConfig('terms', { metadata: { name: 'terms', namespace: 'logs-ns', uid: `uid-terms-${Date.now()}`, attempt: 0 } });
    podId = (await daemon.runtime('RunPodSandbox', { config: pod })).pod_sandbox_id;
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function container(name: string, tty: boolean): Promise<string> {
    const config = { metadata: { name }, image: { image: BUSYBOX }, command: ['sleep', '3600'], tty, stdin: tty };
    const { container_id } = await daemon.runtime('CreateContainer', { pod_sandbox_id: podId, config, sandbox_config: pod });
    await daemon.runtime('StartContainer', { container_id });
    return container_id;
  }

  async function ttyExec(containerId: string): Promise<string> {
    const { url } = await daemon.runtime('Exec', { container_id: containerId, cmd: SHOW_TERM, tty: true, stdin: false, stdout: true, stderr: false });
    const stdout = collector();
    expect(await runRemoteCommand({ url, transport: 'spdy', tty: true, stdout })).toBe(0);
    return stdout.text().trim();
  }

  it('gives a tty container and a tty exec TERM=xterm, and a process without a terminal none', async () => {
    const plain = await container('plain', false);
    const withTty = await container('with-tty', true);
    const syncOut = async (id: string) => (await daemon.runtime('ExecSync', { container_id: id, cmd: SHOW_TERM, timeout: 10 })).stdout.toString().trim();
    // ExecSync runs in the container's environment: the container's own TERM, or none.
    expect(await syncOut(withTty)).toBe('[xterm]');
    expect(await syncOut(plain)).toBe('[]');
    expect(await ttyExec(plain)).toBe('[xterm]');
    expect(await ttyExec(withTty)).toBe('[xterm]');
    for (const id of [plain, withTty]) {
      await daemon.runtime('StopContainer', { container_id: id, timeout: 0 });
      await daemon.runtime('RemoveContainer', { container_id: id });
    }
  });

  it("writes JSON lines with each key once, naming the pod on every line of the pod's calls", async () => {
    // A client's mistake, to see its level.
    await expect(daemon.runtime('StartContainer', { container_id: 'f'.repeat(64) })).rejects.toThrow(/not found/);
    await daemon.runtime('StopPodSandbox', { pod_sandbox_id: podId });
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: podId });

    const lines = daemon.logs.split('\n').filter((line) => line.startsWith('{'));
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) expect({ line, duplicates: duplicateKeys(line) }).toEqual({ line, duplicates: [] });

    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const podCalls = ['RunPodSandbox', 'CreateContainer', 'StartContainer', 'ExecSync', 'Exec', 'StopContainer', 'RemoveContainer', 'StopPodSandbox', 'RemovePodSandbox'];
    const ofPod = entries.filter((e) => podCalls.includes(String(e.rpc)) && (e.podSandboxId === podId || e.containerId !== 'f'.repeat(64)));
    expect(new Set(ofPod.map((e) => e.rpc))).toEqual(new Set(podCalls));
    for (const e of ofPod) expect(e).toMatchObject({ podName: 'terms', podNamespace: 'logs-ns' });
    // Lines the services write themselves, within a call, carry it too.
    expect(ofPod.some((e) => e.msg === 'sandbox ready')).toBe(true);
    expect(ofPod.some((e) => e.msg === 'container created')).toBe(true);

    // The streaming server's own lines, once a client connects, name the pod as well.
    const sessions = entries.filter((e) => e.stream === 'exec');
    expect(sessions.some((e) => e.msg === 'stream connected')).toBe(true);
    for (const e of sessions) expect(e).toMatchObject({ podName: 'terms', podNamespace: 'logs-ns' });

    const refused = entries.find((e) => e.rpc === 'StartContainer' && e.msg === 'failed');
    expect(refused).toMatchObject({ level: 'info', code: 'NotFound' });
  });
});
