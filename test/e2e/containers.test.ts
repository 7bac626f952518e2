import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { podConfig, sleep, startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { mountsUnder } from './host.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');
const CRI_LOG_LINE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+(Z|[+-]\d{2}:\d{2}) (stdout|stderr) (F|P) (.*)$/;

describe('containers in pods', () => {
  let daemon: TestDaemon;
  let logDir: string;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    logDir = await tempDir('logs-');
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
    for (const tag of ['uid', 'uid-gid', 'name', 'name-group']) await daemon.images('PullImage', { image: { image: testImage('user', tag) } });
    await daemon.images('PullImage', { image: { image: testImage('stopsignal') } });
  });

  afterAll(async () => {
    await daemon?.stop();
    await fs.rm(logDir, { recursive: true, force: true });
  });

  /** A pod with a log directory, returning its id and config. */
  async function newPod(name: string, overrides: Record<string, unknown> = {}) {
    const config = podConfig(name, { log_directory: path.join(logDir, name), ...overrides });
    const { pod_sandbox_id } = await daemon.runtime('RunPodSandbox', { config });
    return { id: pod_sandbox_id, config };
  }

  async function newContainer(pod: { id: string; config: Record<string, unknown> }, name: string, overrides: Record<string, unknown> = {}) {
    const config = {
      metadata: { name, attempt: 0 },
      image: { image: BUSYBOX },
      command: ['sh', '-c', 'sleep 3600'],
      log_path: `${name}.log`,
      linux: {},
      ...overrides,
    };
    const { container_id } = await daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config });
    return container_id;
  }

  async function run(pod: { id: string; config: Record<string, unknown> }, name: string, overrides: Record<string, unknown> = {}) {
    const id = await newContainer(pod, name, overrides);
    await daemon.runtime('StartContainer', { container_id: id });
    return id;
  }

  const exec = (id: string, cmd: string[], timeout = 10) => daemon.runtime('ExecSync', { container_id: id, cmd, timeout });
  const execText = async (id: string, cmd: string[]) => (await exec(id, cmd)).stdout.toString().trim();
  const status = async (id: string) => (await daemon.runtime('ContainerStatus', { container_id: id, verbose: true }));

  async function waitState(id: string, state: string, timeoutMs = 10_000): Promise<cri.ContainerStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { status: s } = await status(id);
      if (s!.state === state) return s as cri.ContainerStatus;
      if (Date.now() > deadline) throw new Error(`container ${id} is ${s!.state}, not ${state}`);
      await sleep(50);
    }
  }

  async function logLines(file: string): Promise<Array<{ stream: string; tag: string; text: string }>> {
    const text = await fs.readFile(file, 'utf8');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const match = CRI_LOG_LINE.exec(line);
        if (!match) throw new Error(`not a CRI log line: ${line}`);
        return { stream: match[2]!, tag: match[3]!, text: match[4]! };
      });
  }

  it('runs a container that writes its output to a CRI log and exits Completed', async () => {
    const pod = await newPod('logs');
    const id = await run(pod, 'hello', { command: ['sh', '-c', 'echo out-line; echo err-line >&2; printf partial'] });
    const exited = await waitState(id, 'CONTAINER_EXITED');
    expect(exited).toMatchObject({ exit_code: 0, reason: 'Completed' });
    expect(BigInt(exited.finished_at)).toBeGreaterThanOrEqual(BigInt(exited.started_at));
    expect(exited.log_path).toBe(path.join(logDir, 'logs', 'hello.log'));
    const lines = await logLines(exited.log_path);
    expect(lines).toEqual(
      expect.arrayContaining([
        { stream: 'stdout', tag: 'F', text: 'out-line' },
        { stream: 'stderr', tag: 'F', text: 'err-line' },
        { stream: 'stdout', tag: 'P', text: 'partial' },
      ]),
    );
  });

  it('reports a failing command as Error with its exit code', async () => {
    const pod = await newPod('fails');
    const id = await run(pod, 'fail', { command: ['sh', '-c', 'exit 7'] });
    expect(await waitState(id, 'CONTAINER_EXITED')).toMatchObject({ exit_code: 7, reason: 'Error' });
  });

  it('merges command, args, env and working dir the way kubelet expects', async () => {
    const pod = await newPod('env');
    const id = await run(pod, 'env', {
      command: ['sh', '-c'],
      args: ['echo "$0|$GREETING|$PATH|$(pwd)|$HOSTNAME" > /tmp/out; sleep 3600', 'arg0'],
      envs: [{ key: 'GREETING', value: Buffer.from('hello world') }],
      working_dir: '/etc',
    });
    await waitState(id, 'CONTAINER_RUNNING');
    await sleep(200);
    expect(await execText(id, ['cat', '/tmp/out'])).toBe(`arg0|hello world|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/etc|${pod.config.hostname as string}`);
    // Without command and args, the image's Cmd (sh) runs; with only args, they replace Cmd.
    const defaults = await newContainer(pod, 'defaults', { command: [], args: [] });
    const spec = JSON.parse((await status(defaults)).info.info!).runtimeSpec;
    expect(spec.process.args).toEqual(['sh']);
  });

  it('runs as the user, group and supplementary groups asked for', async () => {
    const pod = await newPod('users');
    const asUid = await run(pod, 'uid', { linux: { security_context: { run_as_user: { value: 1000 }, supplemental_groups: [1234, 5678] } } });
    expect(await execText(asUid, ['id', '-u'])).toBe('1000');
    expect((await execText(asUid, ['id', '-G'])).split(' ').sort()).toEqual(['1000', '1234', '50000', '5678']);

    const asName = await run(pod, 'name', { linux: { security_context: { run_as_username: 'www-data' } } });
    expect(await execText(asName, ['id', '-nu'])).toBe('www-data');

    const withGroup = await run(pod, 'group', { linux: { security_context: { run_as_user: { value: 1000 }, run_as_group: { value: 33 } } } });
    expect(await execText(withGroup, ['id', '-g'])).toBe('33');

    await expect(newContainer(pod, 'group-only', { linux: { security_context: { run_as_group: { value: 33 } } } })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
    });
  });

  it.each([
    ['uid', '1000', '1000 50000'],
    ['uid-gid', '1000', '50000'],
    ['name', '33', '33'],
    ['name-group', '33', '50000'],
  ])('takes the user from the image (%s)', async (tag, uid, groups) => {
    const pod = await newPod(`image-user-${tag}`);
    const id = await run(pod, 'c', { image: { image: testImage('user', tag) } });
    expect(await execText(id, ['id', '-u'])).toBe(uid);
    expect((await execText(id, ['id', '-G'])).split(' ').sort().join(' ')).toBe(groups.split(' ').sort().join(' '));
  });

  it('refuses writes to a read-only rootfs but not to its volumes', async () => {
    const pod = await newPod('readonly');
    const id = await run(pod, 'ro', { linux: { security_context: { readonly_rootfs: true } } });
    const denied = await exec(id, ['touch', '/newfile']);
    expect(denied.exit_code).not.toBe(0);
    expect(denied.stderr.toString()).toContain('Read-only file system');
    expect((await exec(id, ['touch', '/dev/shm/ok'])).exit_code).toBe(0);
  });

  it('grants the default capabilities, and adds and drops as asked', async () => {
    const pod = await newPod('caps');
    const capEff = async (id: string) => BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(await execText(id, ['cat', '/proc/self/status']))![1]}`);
    const defaults = await run(pod, 'defaults');
    expect(await capEff(defaults)).toBe(0xa80425fbn); // the 14 default capabilities
    const added = await run(pod, 'added', { linux: { security_context: { capabilities: { add_capabilities: ['NET_ADMIN'], drop_capabilities: ['CHOWN'] } } } });
    const bits = await capEff(added);
    expect(bits & (1n << 12n)).toBe(1n << 12n); // CAP_NET_ADMIN
    expect(bits & 1n).toBe(0n); // CAP_CHOWN
    const none = await run(pod, 'none', { linux: { security_context: { capabilities: { drop_capabilities: ['ALL'] } } } });
    expect(await capEff(none)).toBe(0n);
    const all = await run(pod, 'all', { linux: { security_context: { capabilities: { add_capabilities: ['ALL'] } } } });
    // Everything the daemon itself may hand out (its bounding set).
    const bounding = BigInt(`0x${/CapBnd:\s+([0-9a-f]+)/.exec(await fs.readFile('/proc/self/status', 'utf8'))![1]}`);
    expect(await capEff(all)).toBe(bounding);
  });

  it('applies the RuntimeDefault seccomp profile and hides masked paths', async () => {
    const pod = await newPod('seccomp');
    const confined = await run(pod, 'confined', { linux: { security_context: { seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' } } } });
    expect(await execText(confined, ['grep', 'Seccomp:', '/proc/self/status'])).toMatch(/Seccomp:\s+2/);
    const unshare = await exec(confined, ['unshare', '-U', 'true']);
    expect(unshare.exit_code).not.toBe(0);
    const unconfined = await run(pod, 'unconfined');
    expect(await execText(unconfined, ['grep', 'Seccomp:', '/proc/self/status'])).toMatch(/Seccomp:\s+0/);
    // /proc/timer_list is one of the default masked paths: it reads as empty.
    expect(await execText(unconfined, ['sh', '-c', 'wc -c < /proc/timer_list'])).toBe('0');
  });

  it('binds a host directory with rshared propagation both ways', async () => {
    const pod = await newPod('propagation');
    const host = await tempDir('prop-');
    const source = path.join(host, 'shared');
    await fs.mkdir(path.join(source, 'from-host'), { recursive: true });
    await fs.mkdir(path.join(host, 'payload'));
    await fs.writeFile(path.join(host, 'payload', 'flag'), 'flag');
    await execa('mount', ['--bind', source, source]);
    await execa('mount', ['--make-rshared', source]);
    try {
      const id = await run(pod, 'shared', {
        mounts: [{ container_path: '/shared', host_path: source, propagation: 'PROPAGATION_BIDIRECTIONAL' }],
        linux: { security_context: { privileged: false, capabilities: { add_capabilities: ['SYS_ADMIN'] } } },
      });
      expect((await status(id)).status!.mounts[0]).toMatchObject({ container_path: '/shared', propagation: 'PROPAGATION_BIDIRECTIONAL' });
      // Host → container.
      await execa('mount', ['--bind', path.join(host, 'payload'), path.join(source, 'from-host')]);
      expect(await execText(id, ['cat', '/shared/from-host/flag'])).toBe('flag');
      // Container → host.
      await exec(id, ['sh', '-c', 'mkdir -p /shared/from-ctr && mount -t tmpfs tmpfs /shared/from-ctr && echo hi > /shared/from-ctr/x']);
      expect(await fs.readFile(path.join(source, 'from-ctr', 'x'), 'utf8')).toBe('hi\n');
      await daemon.runtime('RemoveContainer', { container_id: id });
    } finally {
      for (const mount of (await mountsUnder(source)).reverse()) await execa('umount', ['-l', mount], { reject: false });
      await fs.rm(host, { recursive: true, force: true });
    }
  });

  it('refuses a bind mount of a missing host path', async () => {
    const pod = await newPod('missing-mount');
    await expect(newContainer(pod, 'c', { mounts: [{ container_path: '/x', host_path: '/no/such/path' }] })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringContaining('/no/such/path'),
    });
  });

  it('puts memory and CPU limits in the cgroup, and updates them live', async () => {
    const pod = await newPod('limits');
    const id = await run(pod, 'limited', {
      linux: { resources: { memory_limit_in_bytes: 64 * 1024 * 1024, cpu_quota: 50_000, cpu_period: 100_000, cpu_shares: 512 } },
    });
    const cgroup = JSON.parse((await status(id)).info.info!).runtimeSpec.linux.cgroupsPath as string;
    const read = (controller: string, file: string) => fs.readFile(path.join('/sys/fs/cgroup', controller, cgroup, file), 'utf8').then((t) => t.trim());
    expect(await read('memory', 'memory.limit_in_bytes')).toBe(String(64 * 1024 * 1024));
    expect(await read('cpu', 'cpu.cfs_quota_us')).toBe('50000');
    expect(await read('cpu', 'cpu.cfs_period_us')).toBe('100000');
    expect(await read('cpu', 'cpu.shares')).toBe('512');

    await daemon.runtime('UpdateContainerResources', { container_id: id, linux: { memory_limit_in_bytes: 128 * 1024 * 1024, cpu_quota: 20_000, cpu_period: 100_000 } });
    expect(await read('memory', 'memory.limit_in_bytes')).toBe(String(128 * 1024 * 1024));
    expect(await read('cpu', 'cpu.cfs_quota_us')).toBe('20000');
    expect((await status(id)).status!.resources!.linux!.memory_limit_in_bytes).toBe(String(128 * 1024 * 1024));
  });

  it('kills a process that ignores SIGTERM once the stop timeout passes', async () => {
    const pod = await newPod('stubborn');
    const id = await run(pod, 'ignores-term', { command: ['sh', '-c', "trap '' TERM; while true; do sleep 1; done"] });
    await sleep(300);
    const started = Date.now();
    await daemon.runtime('StopContainer', { container_id: id, timeout: 2 });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1900);
    expect(await waitState(id, 'CONTAINER_EXITED')).toMatchObject({ exit_code: 137 });
    // The image's StopSignal is what the first signal is: SIGUSR1 ends this one at once.
    const usr1 = await run(pod, 'usr1', { image: { image: testImage('stopsignal') }, command: ['sh', '-c', "trap 'exit 42' USR1; while true; do sleep 0.1; done"] });
    await sleep(300);
    await daemon.runtime('StopContainer', { container_id: usr1, timeout: 10 });
    expect(await waitState(usr1, 'CONTAINER_EXITED')).toMatchObject({ exit_code: 42 });
  });

  it('runs ExecSync with output apart, the exit code, and a timeout', async () => {
    const pod = await newPod('exec');
    const id = await run(pod, 'c');
    const result = await exec(id, ['sh', '-c', 'echo to-out; echo to-err >&2; exit 3']);
    expect(result.stdout.toString()).toBe('to-out\n');
    expect(result.stderr.toString()).toBe('to-err\n');
    expect(result.exit_code).toBe(3);
    const started = Date.now();
    await expect(exec(id, ['sleep', '30'], 1)).rejects.toMatchObject({ code: grpcStatus.DEADLINE_EXCEEDED });
    expect(Date.now() - started).toBeLessThan(5000);
    // The timed-out process was killed, not left running.
    await sleep(200);
    expect(await execText(id, ['sh', '-c', 'ps -o comm | grep -c "^sleep$" || true'])).toBe('1');
  });

  it('lets two containers of a pod talk over localhost and share /dev/shm', async () => {
    const pod = await newPod('shared');
    const server = await run(pod, 'server', { command: ['sh', '-c', 'echo shared > /dev/shm/token; while true; do echo pong | nc -l -p 7070; done'] });
    const client = await run(pod, 'client');
    await sleep(300);
    expect(await execText(client, ['cat', '/dev/shm/token'])).toBe('shared');
    expect(await execText(client, ['sh', '-c', 'echo ping | nc 127.0.0.1 7070'])).toBe('pong');
    expect(server).not.toBe(client);
  });

  it('reports stats that change under load', async () => {
    const pod = await newPod('stats');
    const id = await run(pod, 'busy');
    const first = (await daemon.runtime('ContainerStats', { container_id: id })).stats!;
    await exec(id, ['sh', '-c', 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; dd if=/dev/zero of=/tmp/fill bs=1M count=8 2>/dev/null']);
    const second = (await daemon.runtime('ContainerStats', { container_id: id })).stats!;
    expect(Number(second.cpu!.usage_core_nano_seconds!.value)).toBeGreaterThan(Number(first.cpu!.usage_core_nano_seconds!.value));
    expect(Number(second.writable_layer!.used_bytes!.value)).toBeGreaterThan(Number(first.writable_layer!.used_bytes!.value) + 7 * 1024 * 1024);
    expect(Number(second.memory!.working_set_bytes!.value)).toBeGreaterThan(0);
    const listed = await daemon.runtime('ListContainerStats', { filter: { pod_sandbox_id: pod.id } });
    expect(listed.stats.map((s) => s.attributes!.id)).toEqual([id]);
    const podStats = (await daemon.runtime('PodSandboxStats', { pod_sandbox_id: pod.id })).stats!;
    expect(podStats.linux!.containers).toHaveLength(1);
    expect(Number(podStats.linux!.cpu!.usage_core_nano_seconds!.value)).toBeGreaterThan(0);
    expect(podStats.linux!.network!.default_interface?.name).toBe('eth0');
  });

  it('lists containers by pod, state and labels', async () => {
    const pod = await newPod('listing');
    const created = await newContainer(pod, 'created', { labels: { role: 'a' } });
    const running = await run(pod, 'running', { labels: { role: 'b' } });
    const ids = async (filter: Record<string, unknown>) => (await daemon.runtime('ListContainers', { filter })).containers.map((c) => c.id).sort();
    expect(await ids({ pod_sandbox_id: pod.id })).toEqual([created, running].sort());
    expect(await ids({ pod_sandbox_id: pod.id, state: { state: 'CONTAINER_CREATED' } })).toEqual([created]);
    expect(await ids({ pod_sandbox_id: pod.id, label_selector: { role: 'b' } })).toEqual([running]);
    expect(await ids({ id: running.slice(0, 10) })).toEqual([running]);
  });

  it('rotates its log when asked to reopen it', async () => {
    const pod = await newPod('rotate');
    const id = await run(pod, 'ticker', { command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done'] });
    const { log_path } = (await status(id)).status!;
    await sleep(400);
    await fs.rename(log_path!, `${log_path}.1`);
    await daemon.runtime('ReopenContainerLog', { container_id: id });
    // kubelet reads the new file right after the reply: it must already exist.
    await expect(fs.access(log_path!)).resolves.toBeUndefined();
    await sleep(400);
    expect((await logLines(log_path!)).length).toBeGreaterThan(0);
    expect((await logLines(`${log_path}.1`)).length).toBeGreaterThan(0);
  });

  it('streams lifecycle events in order', async () => {
    const pod = await newPod('events');
    const events: Array<{ id: string; type: string }> = [];
    const stream = daemon.clients.runtime.GetContainerEvents({});
    stream.on('data', (e: cri.ContainerEventResponse) => events.push({ id: e.container_id, type: e.container_event_type }));
    stream.on('error', () => undefined);
    await sleep(100);
    const id = await run(pod, 'short', { command: ['true'] });
    await waitState(id, 'CONTAINER_EXITED');
    await daemon.runtime('RemoveContainer', { container_id: id });
    await sleep(200);
    stream.cancel();
    expect(events.filter((e) => e.id === id).map((e) => e.type)).toEqual([
      'CONTAINER_CREATED_EVENT',
      'CONTAINER_STARTED_EVENT',
      'CONTAINER_STOPPED_EVENT',
      'CONTAINER_DELETED_EVENT',
    ]);
  });

  it('removes containers with their rootfs, and a pod removes its containers', async () => {
    const pod = await newPod('teardown');
    const id = await run(pod, 'c');
    const rootfs = JSON.parse((await status(id)).info.info!).rootfs as string;
    expect(await mountsUnder(rootfs)).toEqual([rootfs]);
    await daemon.runtime('RemoveContainer', { container_id: id });
    // Unmounted after the answer, wherever the removal moved the container's directory to.
    const containersDir = path.dirname(path.dirname(rootfs));
    const mountsOfIt = async (): Promise<string[]> => (await mountsUnder(containersDir)).filter((m) => m.includes(id));
    await expect.poll(mountsOfIt, { timeout: 5000 }).toEqual([]);
    await expect(daemon.runtime('ContainerStatus', { container_id: id, verbose: false })).rejects.toMatchObject({ code: grpcStatus.NOT_FOUND });
    await daemon.runtime('RemoveContainer', { container_id: id });

    const second = await run(pod, 'c2');
    const rootfs2 = JSON.parse((await status(second)).info.info!).rootfs as string;
    await daemon.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    expect((await status(second)).status!.state).toBe('CONTAINER_EXITED');
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    expect((await daemon.runtime('ListContainers', { filter: { pod_sandbox_id: pod.id } })).containers).toEqual([]);
    expect((await mountsUnder(path.dirname(path.dirname(rootfs2)))).filter((m) => m.includes(second))).toEqual([]);
  });

  it('reports a container the kernel killed for memory as OOMKilled', async () => {
    const pod = await newPod('oom');
    const id = await run(pod, 'hog', {
      command: ['sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'],
      linux: { resources: { memory_limit_in_bytes: 32 * 1024 * 1024 } },
    });
    expect(await waitState(id, 'CONTAINER_EXITED', 30_000)).toMatchObject({ reason: 'OOMKilled', exit_code: 137 });
  });

  it('gives a container the devices it asks for, and a privileged one all of them', async () => {
    const pod = await newPod('devices', { linux: { security_context: { privileged: true } } });
    const withDevice = await run(pod, 'device', { devices: [{ host_path: '/dev/null', container_path: '/dev/mynull', permissions: 'rwm' }] });
    expect(await execText(withDevice, ['sh', '-c', 'echo data > /dev/mynull && echo wrote'])).toBe('wrote');
    expect(await execText(withDevice, ['sh', '-c', 'ls /dev/mynull'])).toBe('/dev/mynull');

    const privileged = await run(pod, 'privileged', { linux: { security_context: { privileged: true } } });
    const hostDevices = (await fs.readdir('/dev')).filter((d) => d.startsWith('vd') || d === 'kmsg');
    const seen = (await execText(privileged, ['ls', '/dev'])).split(/\s+/);
    expect(seen).toEqual(expect.arrayContaining(hostDevices));
    expect(await execText(privileged, ['grep', 'Seccomp:', '/proc/self/status'])).toMatch(/Seccomp:\s+0/);
    // Masked paths are gone for privileged containers: /proc/timer_list has content again.
    expect(Number(await execText(privileged, ['sh', '-c', 'wc -c < /proc/timer_list']))).toBeGreaterThan(0);

    const plain = await newPod('unprivileged');
    await expect(newContainer(plain, 'p', { linux: { security_context: { privileged: true } } })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
    });
  });

  it('shares the pod’s PID namespace, or gives a container its own, the node’s or another container’s', async () => {
    const pod = await newPod('pids');
    const first = await run(pod, 'first', { command: ['sh', '-c', 'sleep 3600'] });
    const shared = await run(pod, 'shared');
    const shown = await execText(shared, ['ps', '-o', 'comm']);
    expect(shown).toContain('pause');
    const own = await run(pod, 'own', { linux: { security_context: { namespace_options: { pid: 'CONTAINER' } } } });
    expect(await execText(own, ['sh', '-c', 'echo $$'])).not.toBe('1');
    // sh -c 'sleep 3600' execs sleep, which is then PID 1 of the container's own namespace.
    expect(await execText(own, ['cat', '/proc/1/comm'])).toBe('sleep');
    const host = await run(pod, 'host', { linux: { security_context: { namespace_options: { pid: 'NODE' } } } });
    expect(await execText(host, ['cat', '/proc/1/cmdline'])).not.toContain('pause');
    const target = await run(pod, 'target', { linux: { security_context: { namespace_options: { pid: 'TARGET', target_id: own } } } });
    expect(await execText(target, ['cat', '/proc/1/comm'])).toBe('sleep');
    expect(await execText(target, ['ps', '-o', 'comm'])).not.toContain('pause');
    expect(first).toBeDefined();
  });

  it('keeps containers through a daemon restart and notices exits made while it was down', async () => {
    const pod = await newPod('restart');
    const keep = await run(pod, 'keep');
    const ends = await run(pod, 'ends', { command: ['sh', '-c', 'sleep 1; exit 5'] });
    await daemon.terminate();
    await sleep(1500);
    await daemon.start();
    expect((await status(keep)).status!.state).toBe('CONTAINER_RUNNING');
    expect(await execText(keep, ['echo', 'alive'])).toBe('alive');
    expect((await status(ends)).status).toMatchObject({ state: 'CONTAINER_EXITED', exit_code: 5 });
  });
});
