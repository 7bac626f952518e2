/**
 * Requests a buggy or hostile client could send, against the real daemon: each is refused
 * with the code the API names and a short message naming the field, before anything is made,
 * or (for timeouts beyond what a timer holds) served as asked.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { podConfig, sleep, startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { exists } from './host.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');
const THIRTY_DAYS = 30 * 24 * 3600;

describe('hostile requests', () => {
  let daemon: TestDaemon;
  let profiles: string;
  let logs: string;

  beforeAll(async () => {
    profiles = await tempDir('seccomp-');
    logs = await tempDir('logs-');
    daemon = await startTestDaemon({ extraToml: `seccomp_profile_root = "${profiles}"` });
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  async function newPod(name: string, overrides: Record<string, unknown> = {}) {
    const config = podConfig(name, { log_directory: path.join(logs, name), ...overrides });
    const { pod_sandbox_id } = await daemon.runtime('RunPodSandbox', { config });
    return { id: pod_sandbox_id, config };
  }

  function createContainer(pod: { id: string; config: Record<string, unknown> }, name: string, overrides: Record<string, unknown> = {}) {
    const config = { metadata: { name }, image: { image: BUSYBOX }, command: ['sleep', '3600'], log_path: `${name}.log`, linux: {}, ...overrides };
    return daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config });
  }

  async function runContainer(pod: { id: string; config: Record<string, unknown> }, name: string, overrides: Record<string, unknown> = {}) {
    const { container_id } = await createContainer(pod, name, overrides);
    await daemon.runtime('StartContainer', { container_id });
    return container_id;
  }

  async function exitOf(id: string, timeoutMs = 10_000): Promise<cri.ContainerStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { status } = await daemon.runtime('ContainerStatus', { container_id: id, verbose: false });
      if (status!.state === 'CONTAINER_EXITED') return status as cri.ContainerStatus;
      if (Date.now() > deadline) throw new Error(`container ${id} did not exit`);
      await sleep(50);
    }
  }

  const netnsCount = async () => (await fs.readdir('/run/netns').catch(() => [])).length;

  it('waits out a 30-day grace period instead of killing at once', async () => {
    const pod = await newPod('grace');
    // The stop signal ends it with 7 after a second; a SIGKILL would give 137.
    const id = await runContainer(pod, 'slow-stop', { command: ['sh', '-c', "trap 'sleep 1; exit 7' TERM; while true; do sleep 0.1; done"] });
    await sleep(300);
    await daemon.runtime('StopContainer', { container_id: id, timeout: THIRTY_DAYS });
    expect(await exitOf(id)).toMatchObject({ exit_code: 7 });
  });

  it('runs an ExecSync with a 30-day timeout to completion', async () => {
    const pod = await newPod('exec-timeout');
    const id = await runContainer(pod, 'c');
    const result = await daemon.runtime('ExecSync', { container_id: id, cmd: ['sh', '-c', 'sleep 3; echo done'], timeout: THIRTY_DAYS });
    expect(result.stdout.toString()).toBe('done\n');
  });

  it('answers an ExecSync that fills both streams to their cap within one reply', async () => {
    const pod = await newPod('exec-flood');
    const id = await runContainer(pod, 'c');
    // 20 MiB on each stream: more than the 16 MiB cap of each, and of the reply together.
    const flood = 'head -c 20971520 /dev/zero';
    const result = await daemon.runtime('ExecSync', { container_id: id, cmd: ['sh', '-c', `${flood}; ${flood} >&2; exit 3`], timeout: 60 });
    expect(result.exit_code).toBe(3);
    expect(result.stdout.length + result.stderr.length).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(result.stdout.length).toBeGreaterThan(7 * 1024 * 1024);
    expect(result.stderr.length).toBeGreaterThan(7 * 1024 * 1024);
  });

  it('refuses bad pod configs before making a netns or calling CNI', async () => {
    const netnsBefore = await netnsCount();
    const recordsBefore = (await daemon.cniRecords()).length;
    const refused = async (overrides: Record<string, unknown>, message: RegExp) => {
      await expect(daemon.runtime('RunPodSandbox', { config: podConfig('bad', overrides) })).rejects.toMatchObject({
        code: grpcStatus.INVALID_ARGUMENT,
        details: expect.stringMatching(message),
      });
    };
    await refused({ port_mappings: [{ protocol: 9, container_port: 80, host_port: 8080 }] }, /port_mappings\[0\]\.protocol "9" is not one of TCP, UDP, SCTP/);
    await refused({ hostname: 'web\n6.6.6.6 evil' }, /config\.hostname .* is not a hostname/);
    await refused({ dns_config: { options: ['ndots:5\nnameserver 6.6.6.6'] } }, /config\.dns_config\.options\[0\]/);
    await refused({ linux: { sysctls: { 'kernel.panic': '1' } } }, /kernel\.panic.* is not namespaced/);
    await refused({ linux: { resources: { cpu_period: 5 } } }, /config\.linux\.resources\.cpu_period 5 is below/);
    expect(await netnsCount()).toBe(netnsBefore);
    expect((await daemon.cniRecords()).length).toBe(recordsBefore);
    expect((await daemon.runtime('ListPodSandbox', {})).items.map((p) => p.metadata!.name)).not.toContain('bad');
  });

  it('refuses bad container configs before anything is made, with int64 values kept exact', async () => {
    const pod = await newPod('bad-containers');
    const refused = async (overrides: Record<string, unknown>, message: RegExp) => {
      await expect(createContainer(pod, 'bad', overrides)).rejects.toMatchObject({ code: grpcStatus.INVALID_ARGUMENT, details: expect.stringMatching(message) });
    };
    await refused({ linux: { resources: { memory_limit_in_bytes: '9007199254740993' } } }, /memory_limit_in_bytes 9007199254740993 is outside/);
    await refused({ linux: { resources: { cpu_shares: 1 } } }, /cpu_shares 1 is below/);
    await refused({ linux: { resources: { cpuset_cpus: 'all' } } }, /cpuset_cpus "all" is not a CPU list/);
    await refused({ command: ['sh', '-c', 'x\0y'] }, /NUL/);
    await refused({ linux: { security_context: { capabilities: { add_capabilities: ['CAP_EVERYTHING'] } } } }, /not a Linux capability/);
    expect((await daemon.runtime('ListContainers', { filter: { pod_sandbox_id: pod.id } })).containers).toEqual([]);
  });

  it('keeps container logs inside the pod log directory, never through a symlink', async () => {
    const pod = await newPod('logs');
    const outside = await tempDir('outside-');
    const target = path.join(outside, 'victim');
    await fs.writeFile(target, 'untouched\n');
    await expect(createContainer(pod, 'dotdot', { log_path: `../../${path.relative(logs, outside)}/escaped.log` })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(/config\.log_path .* must not contain "\.\."/),
    });
    expect(await exists(path.join(outside, 'escaped.log'))).toBe(false);

    const logDir = path.join(logs, 'logs');
    await fs.mkdir(logDir, { recursive: true });
    await fs.symlink(target, path.join(logDir, 'linked.log'));
    await fs.symlink(outside, path.join(logDir, 'linked-dir'));
    await expect(createContainer(pod, 'file-link', { log_path: 'linked.log', command: ['echo', 'pwned'] })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(/linked\.log" is a symlink/),
    });
    await expect(createContainer(pod, 'dir-link', { log_path: 'linked-dir/c.log', command: ['echo', 'pwned'] })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(/linked-dir" is not a directory/),
    });
    expect(await fs.readFile(target, 'utf8')).toBe('untouched\n');
    expect(await exists(path.join(outside, 'c.log'))).toBe(false);
    // A nested path below the directory is made as it should be.
    const ok = await runContainer(pod, 'nested', { log_path: 'c/0.log', command: ['echo', 'fine'] });
    await exitOf(ok);
    expect(await fs.readFile(path.join(logDir, 'c/0.log'), 'utf8')).toMatch(/stdout F fine/);
  });

  it('lets a container join the PID namespace of a container in its own pod only', async () => {
    const first = await newPod('pid-owner');
    const other = await runContainer(first, 'victim');
    const second = await newPod('pid-intruder');
    await expect(
      createContainer(second, 'intruder', { linux: { security_context: { namespace_options: { pid: 'TARGET', target_id: other } } } }),
    ).rejects.toMatchObject({ code: grpcStatus.INVALID_ARGUMENT, details: expect.stringMatching(/target_id .* names no container of pod/) });
    expect((await daemon.runtime('ListContainers', { filter: { pod_sandbox_id: second.id } })).containers).toEqual([]);
  });

  it('reads Localhost seccomp profiles only as small regular files below the profile root', async () => {
    const pod = await newPod('seccomp');
    const fifo = path.join(profiles, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    await fs.symlink('/etc/shadow', path.join(profiles, 'shadow.json'));
    await fs.writeFile(path.join(profiles, 'huge.json'), Buffer.alloc(2 * 1024 * 1024, 0x20));
    await fs.writeFile(path.join(profiles, 'secret.json'), 'TOP-SECRET-CONTENT not json');
    const refused = async (ref: string, message: RegExp) => {
      await expect(
        createContainer(pod, 'profiled', { linux: { security_context: { seccomp: { profile_type: 'Localhost', localhost_ref: ref } } } }),
      ).rejects.toMatchObject({ code: grpcStatus.INVALID_ARGUMENT, details: expect.stringMatching(message) });
    };
    const started = Date.now();
    await refused(fifo, /fifo\.json" is not a regular file/);
    await refused('/dev/zero', /"\/dev\/zero" is not below/);
    await refused('/etc/passwd', /is not below/);
    await refused(`${profiles}/../../../etc/passwd`, /is not below/);
    await refused(path.join(profiles, 'shadow.json'), /is a symlink/);
    await refused(path.join(profiles, 'huge.json'), /is 2097152 bytes, more than/);
    await expect(
      createContainer(pod, 'profiled', { linux: { security_context: { seccomp: { profile_type: 'Localhost', localhost_ref: path.join(profiles, 'secret.json') } } } }),
    ).rejects.toMatchObject({ code: grpcStatus.INVALID_ARGUMENT, details: expect.not.stringMatching(/TOP-SECRET/) });
    // Nothing above waited on the FIFO; every RPC still answers.
    expect(Date.now() - started).toBeLessThan(20_000);
    await daemon.runtime('ListContainers', {});

    const profile = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] };
    await fs.writeFile(path.join(profiles, 'no-mkdir.json'), JSON.stringify(profile));
    const confined = await runContainer(pod, 'confined', { linux: { security_context: { seccomp: { profile_type: 'Localhost', localhost_ref: 'no-mkdir.json' } } } });
    const mkdir = await daemon.runtime('ExecSync', { container_id: confined, cmd: ['mkdir', '/tmp/x'], timeout: 10 });
    expect(mkdir.exit_code).not.toBe(0);
    expect(mkdir.stderr.toString()).toMatch(/Operation not permitted/);
  });

  it('answers a megabyte id with a short NotFound the client receives', async () => {
    const huge = 'f'.repeat(1024 * 1024);
    const error = await daemon.runtime('ContainerStatus', { container_id: huge, verbose: false }).catch((err: unknown) => err as { code: number; details: string });
    expect(error).toMatchObject({ code: grpcStatus.NOT_FOUND });
    expect((error as { details: string }).details.length).toBeLessThan(300);
  });

  it('keeps pods whose names join to the same string apart', async () => {
    const a = await daemon.runtime('RunPodSandbox', { config: { ...podConfig('joined-a'), metadata: { name: 'web/team_a', namespace: 'x', uid: 'u-same', attempt: 0 } } });
    const b = await daemon.runtime('RunPodSandbox', { config: { ...podConfig('joined-b'), metadata: { name: 'web/team', namespace: 'a_x', uid: 'u-same', attempt: 0 } } });
    expect(a.pod_sandbox_id).not.toBe(b.pod_sandbox_id);
  });
});
