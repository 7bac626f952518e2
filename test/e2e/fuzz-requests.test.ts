/**
 * Property-based fuzzing of the CRI surface against the real daemon: every request starts as
 * one kubelet would send and has a few of its fields replaced by random or boundary values
 * (huge, empty, NUL, newlines, `..`, int64 extremes, enum numbers no version defines). Whatever
 * comes in, the daemon answers with a status the API names for it (never INTERNAL or UNKNOWN),
 * keeps serving, and what it accepted is removed again without a trace (the harness and the
 * run's teardown check the host). Bounded: a fixed number of runs per RPC, seeded from the
 * environment (TSCRI_FUZZ_SEED) so a failure can be replayed.
 */
import { promises as fs } from 'node:fs';
import { status as grpcStatus } from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cgroupParentOf, podConfig, startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { cgroupChildren, cgroupDirs } from './host.js';
import { absentTestImage, testImage } from './images.js';

const SEED = Number(process.env.TSCRI_FUZZ_SEED ?? Date.now() % 2 ** 31);
const RUNS = Number(process.env.TSCRI_FUZZ_RUNS ?? 60);
const BUSYBOX = testImage('busybox');
/** Each property's share of the time: runs of a few calls each, some of them making pods. */
const TIMEOUT_MS = 60_000 + RUNS * 1_000;

/** What the daemon takes as a cgroup parent (src/sandbox/validate.ts). */
const CGROUP_PARENT = /^(\/[A-Za-z0-9_.:@+=-]*)+$|^[A-Za-z0-9_.:@-]+\.slice$/;
const RUN_CGROUP_PARENT = `/${cgroupParentOf(inject('runId'))}`;

/** Codes that answer a bad request; INTERNAL and UNKNOWN mean the daemon itself broke. */
const ACCEPTABLE = new Set([
  grpcStatus.OK,
  grpcStatus.INVALID_ARGUMENT,
  grpcStatus.NOT_FOUND,
  grpcStatus.ALREADY_EXISTS,
  grpcStatus.FAILED_PRECONDITION,
  grpcStatus.OUT_OF_RANGE,
  grpcStatus.RESOURCE_EXHAUSTED,
]);

// ---- values --------------------------------------------------------------------------------

const HOSTILE_STRINGS = ['', ' ', '\n', 'a\nb', 'a\r\nb', '\0', 'a\0b', '..', '../../etc/passwd', '/', '/etc/passwd', '.', ';', '=', 'a;b=c', '%5F', '_', '\u202e', 'ü', '${HOME}', '*', '-1', 'x'.repeat(300)];
const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 * 1024 * 1024 }).map((n) => 'y'.repeat(n)) },
);
const int64 = fc.oneof(
  fc.constantFrom('0', '1', '-1', '2', '999', '1000', '65535', '4294967295', '4294967296', '9007199254740991', '9007199254740993', '9223372036854775807', '-9223372036854775808'),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
);
const uint32 = fc.oneof(fc.constantFrom(0, 1, 80, 65535, 65536, 2 ** 31, 2 ** 32 - 1), fc.nat());
/** A known enum name or a number no version of the API defines. */
const enumOf = (...names: string[]) => fc.oneof(fc.constantFrom(...names), fc.integer({ min: 0, max: 5000 }));
const stringList = fc.array(hostileString, { maxLength: 5 });
const stringMap = fc.dictionary(hostileString, hostileString, { maxKeys: 3 });

const resources = fc.record(
  {
    cpu_period: int64,
    cpu_quota: int64,
    cpu_shares: int64,
    memory_limit_in_bytes: int64,
    oom_score_adj: int64,
    cpuset_cpus: fc.oneof(hostileString, fc.constantFrom('0', '0-1', '0,1', '1-0', '0-4096', '99')),
    cpuset_mems: fc.oneof(hostileString, fc.constantFrom('0', '0-1', '7')),
    memory_swap_limit_in_bytes: int64,
    hugepage_limits: fc.array(fc.record({ page_size: fc.oneof(hostileString, fc.constantFrom('2MB', '1GB', '3MB')), limit: int64 }), { maxLength: 2 }),
    unified: fc.dictionary(fc.oneof(hostileString, fc.constantFrom('memory.high', 'cpu.max', '../x', 'pids.max')), hostileString, { maxKeys: 2 }),
  },
  { requiredKeys: [] },
);

const securityProfile = fc.record({ profile_type: enumOf('RuntimeDefault', 'Unconfined', 'Localhost'), localhost_ref: hostileString });
const namespaceOptions = fc.record(
  { network: enumOf('POD', 'CONTAINER', 'NODE', 'TARGET'), pid: enumOf('POD', 'CONTAINER', 'NODE', 'TARGET'), ipc: enumOf('POD', 'CONTAINER', 'NODE', 'TARGET'), target_id: hostileString },
  { requiredKeys: [] },
);
const int64Value = fc.record({ value: int64 });

/** One field of a pod config and the values to try there. */
const POD_FIELDS: Array<[string, fc.Arbitrary<unknown>]> = [
  ['metadata.name', hostileString],
  ['metadata.namespace', hostileString],
  ['metadata.uid', hostileString],
  ['metadata.attempt', uint32],
  ['hostname', hostileString],
  ['log_directory', hostileString],
  ['dns_config', fc.record({ servers: stringList, searches: stringList, options: stringList })],
  ['port_mappings', fc.array(fc.record({ protocol: enumOf('TCP', 'UDP', 'SCTP'), container_port: uint32, host_port: uint32, host_ip: hostileString }), { maxLength: 3 })],
  ['labels', stringMap],
  ['annotations', stringMap],
  // Cgroup parents that are valid make cgroups a pod's removal leaves (they are the kubelet's):
  // valid ones are put below the run's own parent, which the run removes; the rest must be refused.
  ['linux.cgroup_parent', fc.oneof(hostileString.filter((v) => !CGROUP_PARENT.test(v) || v.includes('..')), hostileString.map((v) => `${RUN_CGROUP_PARENT}/fuzz/${v.replace(/^\/+/, '')}`))],
  ['linux.sysctls', fc.dictionary(fc.oneof(hostileString, fc.constantFrom('net.core.somaxconn', 'kernel.shmmax', 'kernel.panic', 'net/ipv4/ip_forward')), hostileString, { maxKeys: 2 })],
  ['linux.overhead', resources],
  ['linux.resources', resources],
  ['linux.security_context.namespace_options', namespaceOptions],
  ['linux.security_context.namespace_options.userns_options', fc.record({ mode: enumOf('POD', 'NODE', 'CONTAINER', 'TARGET'), uids: fc.array(fc.record({ host_id: uint32, container_id: uint32, length: uint32 }), { maxLength: 2 }), gids: fc.constant([]) })],
  ['linux.security_context.run_as_user', int64Value],
  ['linux.security_context.run_as_group', int64Value],
  ['linux.security_context.supplemental_groups', fc.array(int64, { maxLength: 3 })],
  ['linux.security_context.supplemental_groups_policy', enumOf('Merge', 'Strict')],
  ['linux.security_context.seccomp', securityProfile],
  ['linux.security_context.seccomp_profile_path', hostileString],
  ['linux.security_context.selinux_options', fc.record({ user: hostileString, role: hostileString, type: hostileString, level: hostileString })],
  ['linux.security_context.apparmor', securityProfile],
];

/** RunPodSandbox's runtime_handler: the default, the configured one, or anything. */
const runtimeHandler = fc.oneof(fc.constant(''), fc.constant('runc'), hostileString);
/** Fully qualified CDI names as the kubelet sends them, or anything; this node has no CDI spec. */
const cdiName = fc.oneof(hostileString, fc.constantFrom('vendor.com/gpu=0', 'vendor.com/gpu=all', 'a/b=c'));

/** One field of a container config and the values to try there. */
const CONTAINER_FIELDS: Array<[string, fc.Arbitrary<unknown>]> = [
  ['metadata.name', hostileString],
  ['metadata.attempt', uint32],
  ['image.image', fc.oneof(hostileString, fc.constant(absentTestImage('never-built')))],
  ['command', stringList],
  ['args', stringList],
  ['working_dir', hostileString],
  ['envs', fc.array(fc.record({ key: hostileString, value: hostileString.map((v) => Buffer.from(v)) }), { maxLength: 3 })],
  ['mounts', fc.array(fc.record({ container_path: hostileString, host_path: fc.oneof(hostileString, fc.constantFrom('/tmp', '/proc', '/dev/null')), readonly: fc.boolean(), propagation: enumOf('PROPAGATION_PRIVATE', 'PROPAGATION_HOST_TO_CONTAINER', 'PROPAGATION_BIDIRECTIONAL') }), { maxLength: 2 })],
  ['devices', fc.array(fc.record({ container_path: hostileString, host_path: fc.oneof(hostileString, fc.constantFrom('/dev/null', '/dev/zero', '/etc/passwd')), permissions: hostileString }), { maxLength: 2 })],
  ['labels', stringMap],
  ['annotations', stringMap],
  ['log_path', hostileString],
  ['stop_signal', enumOf('RUNTIME_DEFAULT', 'SIGTERM', 'SIGKILL', 'SIGUSR1')],
  ['linux.resources', resources],
  ['linux.security_context.capabilities', fc.record({ add_capabilities: fc.array(fc.oneof(hostileString, fc.constantFrom('ALL', 'NET_ADMIN', 'CAP_SYS_ADMIN')), { maxLength: 2 }), drop_capabilities: fc.array(fc.oneof(hostileString, fc.constantFrom('ALL', 'CHOWN')), { maxLength: 2 }) })],
  ['linux.security_context.namespace_options', namespaceOptions],
  ['linux.security_context.run_as_user', int64Value],
  ['linux.security_context.run_as_group', int64Value],
  ['linux.security_context.run_as_username', hostileString],
  ['linux.security_context.supplemental_groups', fc.array(int64, { maxLength: 3 })],
  ['linux.security_context.seccomp', securityProfile],
  ['linux.security_context.seccomp_profile_path', hostileString],
  ['linux.security_context.masked_paths', stringList],
  ['linux.security_context.readonly_paths', stringList],
  ['linux.security_context.readonly_rootfs', fc.boolean()],
  ['linux.security_context.apparmor', securityProfile],
  ['linux.security_context.apparmor_profile', hostileString],
  ['linux.security_context.selinux_options', fc.record({ user: hostileString, role: hostileString, type: hostileString, level: hostileString })],
  ['CDI_devices', fc.array(fc.record({ name: cdiName }), { maxLength: 2 })],
  ['annotations', fc.dictionary(fc.oneof(fc.constant('cdi.k8s.io/fuzz'), hostileString.map((v) => `cdi.k8s.io/${v}`)), fc.array(cdiName, { maxLength: 2 }).map((names) => names.join(',')), { maxKeys: 2 })],
];

/** The cgroup parents the fuzzer named below the run's own, deepest first, once their pods are gone. */
async function removeFuzzCgroups(): Promise<void> {
  for (const dir of await cgroupDirs(`${RUN_CGROUP_PARENT.slice(1)}/fuzz`)) {
    for (const cgroup of [...(await cgroupChildren(dir)), dir]) await fs.rmdir(cgroup).catch(() => undefined);
  }
}

/** A few (field, value) replacements drawn from `fields`. */
function mutations(fields: Array<[string, fc.Arbitrary<unknown>]>) {
  const one = fc.integer({ min: 0, max: fields.length - 1 }).chain((i) => fields[i]![1].map((value) => [fields[i]![0], value] as const));
  return fc.array(one, { minLength: 1, maxLength: 3 });
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

function mutated(base: Record<string, unknown>, changes: ReadonlyArray<readonly [string, unknown]>): Record<string, unknown> {
  const copy = structuredClone(base);
  for (const [field, value] of changes) setPath(copy, field, value);
  return copy;
}

/** What the daemon answered: a status code and message, or OK with the reply. */
async function outcome<T>(call: Promise<T>): Promise<{ code: number; details: string; reply?: T }> {
  try {
    return { code: grpcStatus.OK, details: '', reply: await call };
  } catch (err) {
    const { code, details } = err as { code?: number; details?: string };
    return { code: code ?? -1, details: details ?? String(err) };
  }
}

function describeChanges(changes: ReadonlyArray<readonly [string, unknown]>): string {
  return changes.map(([field, value]) => `${field}=${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'string' && v.length > 80 ? `${v.slice(0, 80)}…(${v.length})` : v))}`).join(' ');
}

describe(`fuzzing every request field (seed ${SEED}, ${RUNS} runs per RPC)`, () => {
  let daemon: TestDaemon;
  let logs: string;
  let pod: { id: string; config: Record<string, unknown> };
  let running: string;
  let busyboxId: string;

  beforeAll(async () => {
    logs = await tempDir('fuzz-logs-');
    daemon = await startTestDaemon();
    busyboxId = (await daemon.images('PullImage', { image: { image: BUSYBOX } })).image_ref;
    const config = podConfig('fuzz-home', { log_directory: `${logs}/home` });
    pod = { id: (await daemon.runtime('RunPodSandbox', { config })).pod_sandbox_id, config };
    running = (await daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config: baseContainer('target'), sandbox_config: config })).container_id;
    await daemon.runtime('StartContainer', { container_id: running });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  function baseContainer(name: string): Record<string, unknown> {
    return { metadata: { name, attempt: 0 }, image: { image: BUSYBOX }, command: ['sleep', '3600'], log_path: `${name}.log`, linux: {} };
  }

  /** The assertion every run ends with: an acceptable code, and a daemon that still answers. */
  async function expectHandled(result: { code: number; details: string }, what: string): Promise<void> {
    if (!ACCEPTABLE.has(result.code)) throw new Error(`${what} → code ${result.code}: ${result.details.slice(0, 500)}`);
    expect(result.details.length).toBeLessThanOrEqual(4200);
    await daemon.runtime('Version', { version: 'v1' }, 5000);
  }

  const params = { seed: SEED, numRuns: RUNS, endOnFailure: true };

  it('RunPodSandbox', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(mutations(POD_FIELDS), runtimeHandler, async (changes, handler) => {
        const base = podConfig(`fuzz-${n++}`, { log_directory: `${logs}/p${n}` });
        const result = await outcome(daemon.runtime('RunPodSandbox', { config: mutated(base, changes), runtime_handler: handler }));
        if (result.reply) {
          await daemon.runtime('StopPodSandbox', { pod_sandbox_id: result.reply.pod_sandbox_id });
          await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: result.reply.pod_sandbox_id });
          // A cgroup parent is the kubelet's: here the fuzzer plays it and removes what it named.
          await removeFuzzCgroups();
        }
        await expectHandled(result, `RunPodSandbox ${describeChanges([...changes, ['runtime_handler', handler]])}`);
      }),
      params,
    );
  }, TIMEOUT_MS);

  it('CreateContainer', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(mutations(CONTAINER_FIELDS), async (changes) => {
        const config = mutated(baseContainer(`c${n++}`), changes);
        const result = await outcome(daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config }));
        if (result.reply) await daemon.runtime('RemoveContainer', { container_id: result.reply.container_id });
        await expectHandled(result, `CreateContainer ${describeChanges(changes)}`);
      }),
      params,
    );
  }, TIMEOUT_MS);

  it('UpdateContainerResources, ExecSync and StopContainer', async () => {
    await fc.assert(
      fc.asyncProperty(resources, async (linux) => {
        await expectHandled(await outcome(daemon.runtime('UpdateContainerResources', { container_id: running, linux })), `UpdateContainerResources ${JSON.stringify(linux)}`);
      }),
      params,
    );
    await fc.assert(
      fc.asyncProperty(fc.array(hostileString, { maxLength: 4 }), fc.oneof(int64, fc.constant('1')), async (cmd, timeout) => {
        // Exec into the running container, but never a command that could stop it.
        const args = cmd.length > 0 ? ['echo', ...cmd] : cmd;
        await expectHandled(await outcome(daemon.runtime('ExecSync', { container_id: running, cmd: args, timeout })), `ExecSync ${describeChanges([['cmd', args], ['timeout', timeout]])}`);
      }),
      params,
    );
    await fc.assert(
      fc.asyncProperty(hostileString, int64, async (id, timeout) => {
        await expectHandled(await outcome(daemon.runtime('StopContainer', { container_id: id === running.slice(0, id.length) ? `x${id}` : id, timeout })), `StopContainer ${describeChanges([['id', id]])}`);
      }),
      params,
    );
  }, TIMEOUT_MS);

  it('lookups, lists, streaming requests and image requests by any id, filter or name', async () => {
    await fc.assert(
      fc.asyncProperty(hostileString, fc.boolean(), async (id, verbose) => {
        const ours = [running, pod.id, busyboxId, busyboxId.replace(/^sha256:/, ''), BUSYBOX];
        const safeId = ours.some((own) => own.startsWith(id)) ? `z${id}` : id;
        // Thunks, so each call starts only when the previous one has answered.
        const calls = [
          () => daemon.runtime('ContainerStatus', { container_id: safeId, verbose }),
          () => daemon.runtime('PodSandboxStatus', { pod_sandbox_id: safeId, verbose }),
          () => daemon.runtime('ContainerStats', { container_id: safeId }),
          () => daemon.runtime('ReopenContainerLog', { container_id: safeId }),
          () => daemon.runtime('StopPodSandbox', { pod_sandbox_id: safeId }),
          () => daemon.runtime('RemoveContainer', { container_id: safeId }),
          () => daemon.runtime('ListContainers', { filter: { id: safeId, pod_sandbox_id: safeId, label_selector: { [safeId]: safeId } } }),
          () => daemon.runtime('ListPodSandbox', { filter: { id: safeId, label_selector: { a: safeId } } }),
          () => daemon.images('ImageStatus', { image: { image: safeId }, verbose }),
          () => daemon.images('RemoveImage', { image: { image: safeId } }),
        ];
        for (const call of calls) await expectHandled(await outcome(call()), `lookup ${JSON.stringify(safeId.slice(0, 80))}`);
      }),
      params,
    );
    await fc.assert(
      fc.asyncProperty(fc.array(hostileString, { maxLength: 3 }), fc.boolean(), fc.boolean(), fc.boolean(), async (cmd, stdin, stdout, tty) => {
        await expectHandled(await outcome(daemon.runtime('Exec', { container_id: running, cmd, stdin, stdout, stderr: !tty, tty })), `Exec ${JSON.stringify(cmd).slice(0, 200)}`);
        await expectHandled(await outcome(daemon.runtime('Attach', { container_id: running, stdin, stdout, stderr: !tty, tty })), 'Attach');
        await expectHandled(await outcome(daemon.runtime('PortForward', { pod_sandbox_id: pod.id, port: cmd.length > 0 ? [1, 65536, 0] : [] })), 'PortForward');
      }),
      params,
    );
    // Pulls are aimed at the run's own registry or fail in parsing: nothing leaves the machine.
    await fc.assert(
      fc.asyncProperty(hostileString, async (name) => {
        const local = absentTestImage('fuzz').replace(/\/[^/]*$/, `/${encodeURIComponent(name).slice(0, 200) || 'x'}`);
        for (const image of [local, `${name}/../x`, `${name}@sha256:${name}`]) {
          await expectHandled(await outcome(daemon.images('PullImage', { image: { image } }, 30_000)), `PullImage ${JSON.stringify(image.slice(0, 120))}`);
        }
      }),
      { ...params, numRuns: Math.ceil(RUNS / 3) },
    );
  }, TIMEOUT_MS);

  it('is still whole afterwards: the home pod and its container run, nothing else is left', async () => {
    const { status } = await daemon.runtime('ContainerStatus', { container_id: running, verbose: false });
    expect(status!.state).toBe('CONTAINER_RUNNING');
    const { items } = await daemon.runtime('ListPodSandbox', {});
    expect(items.map((p) => p.id)).toEqual([pod.id]);
    const { containers } = await daemon.runtime('ListContainers', {});
    expect(containers.map((c) => c.id)).toEqual([running]);
  });
});
