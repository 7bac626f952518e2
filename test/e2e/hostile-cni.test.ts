/**
 * CNI plugins that misbehave, against the real daemon: one that hangs on ADD, one that forks a
 * helper holding its stdout, one that prints invalid JSON, one that prints megabytes, one
 * that fails ADD, one that fails DEL. Each RunPodSandbox must fail in bounded time with a
 * status naming the plugin, leave nothing of the pod (netns, IP, veth, record, process of the
 * plugin or of its children), not block Stop and Remove, and leave the daemon serving.
 *
 * One plugin script plays every part: the chain is bridge → tscri-hostile, and the script
 * reads its part from a file the test writes before each call; in the part `pass` it hands
 * over to the recording test plugin, which passes bridge's result through.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bridgeNetwork, podConfig, sleep, startTestDaemon, type TestDaemon } from './harness.js';
import { allocatedIps, bridgePorts, exists, processesMatching } from './host.js';

const PLUGIN = 'tscri-hostile';
const PLUGIN_TIMEOUT_SECONDS = 3;
/** What every hostile RunPodSandbox must take less than: the timeout, DEL and undo. */
const BOUND_MS = PLUGIN_TIMEOUT_SECONDS * 1000 + 5000;

type Part = 'pass' | 'hang' | 'fork-and-fail' | 'invalid-json' | 'flood' | 'fail-add' | 'fail-del';

/** In every command line of the plugin's children, so none can hide (the plugin's own has its path). */
const marker = `tscri-hostile-child-${process.pid}-${Date.now().toString(36)}`;

/**
 * The plugin. Each call appends "<command> <container id> <netns>" to `calls`; children it
 * leaves behind loop forever (`sleep 1` at a time) under a shell named by the marker.
 */
function pluginScript(partFile: string, callsFile: string): string {
  const child = `sh -c 'while :; do sleep 1; done' ${marker} &`;
  return `#!/bin/sh
echo "$CNI_COMMAND $CNI_CONTAINERID $CNI_NETNS" >> ${callsFile}
part=$(cat ${partFile} 2>/dev/null)
case "$CNI_COMMAND:$part" in
ADD:hang)
  ${child}
  wait ;;
ADD:fork-and-fail)
  ${child}
  echo '{"cniVersion":"1.0.0","code":11,"msg":"started a helper and gave up"}'
  exit 1 ;;
ADD:invalid-json)
  echo 'this is { not json'
  exit 0 ;;
ADD:flood)
  head -c 20000000 /dev/zero | tr '\\0' x
  exit 0 ;;
ADD:fail-add)
  echo '{"cniVersion":"1.0.0","code":7,"msg":"refusing ADD","details":"on purpose"}'
  exit 1 ;;
DEL:fail-del)
  echo '{"cniVersion":"1.0.0","code":7,"msg":"refusing DEL"}'
  exit 1 ;;
esac
exec "$(dirname "$0")/tscri-test-plugin"
`;
}

describe('hostile CNI plugins', () => {
  let daemon: TestDaemon;
  let partFile: string;
  let callsFile: string;

  beforeAll(async () => {
    daemon = await startTestDaemon({
      network: (plan, dirs) => bridgeNetwork(plan, dirs, [{ type: PLUGIN }]),
    });
    partFile = path.join(daemon.dirs.base, 'hostile-part');
    callsFile = path.join(daemon.dirs.base, 'hostile-calls');
    await fs.writeFile(path.join(daemon.dirs.binDir, PLUGIN), pluginScript(partFile, callsFile), { mode: 0o755 });
    // The harness writes [cni] last, so a line appended to the config lands in it.
    await fs.appendFile(daemon.configFile, `plugin_timeout_seconds = ${PLUGIN_TIMEOUT_SECONDS}\n`);
    await daemon.restart();
  });

  afterAll(async () => {
    // Whatever a failed test left of the plugin's children, first: one holding a plugin's
    // stdout would keep a pod's lock, and so the harness's removal of every pod, waiting.
    for (const pid of await processesMatching(marker)) process.kill(pid, 'SIGKILL');
    await fs.writeFile(partFile, 'pass');
    await daemon?.stop();
  });

  async function play(part: Part): Promise<void> {
    await fs.writeFile(partFile, part);
    await fs.writeFile(callsFile, '');
  }

  /** The netns paths the plugin was handed (what the pod made). */
  async function netnsSeen(): Promise<string[]> {
    const lines = (await fs.readFile(callsFile, 'utf8')).trim().split('\n').filter(Boolean);
    return [...new Set(lines.map((line) => line.split(' ')[2]).filter((netns): netns is string => !!netns))];
  }

  /** RunPodSandbox that must fail within BOUND_MS with the plugin named; the error's details. */
  async function expectRunFails(name: string, details: RegExp): Promise<string> {
    const started = Date.now();
    const err = (await daemon.runtime('RunPodSandbox', { config: podConfig(name) }, 30_000).catch((e: unknown) => e)) as {
      code: number;
      details: string;
    };
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    expect(err).toMatchObject({ code: grpcStatus.INTERNAL });
    expect(err.details).toMatch(new RegExp(`CNI plugin ${PLUGIN} failed on ADD`));
    expect(err.details).toMatch(details);
    // A few hundred characters of what the plugin printed, not all of it.
    expect(err.details.length).toBeLessThan(1000);
    return err.details;
  }

  /** Nothing of the pod: its netns, IP, veth, record, bundle, and no process of the plugin's. */
  async function expectNothingLeft(): Promise<void> {
    const seen = await netnsSeen();
    expect(seen.length).toBeGreaterThan(0);
    for (const netns of seen) expect(await exists(netns)).toBe(false);
    expect(await allocatedIps(daemon.plan.ipamDataDir, daemon.plan.networkName)).toEqual([]);
    expect(await bridgePorts(daemon.plan.bridge)).toEqual([]);
    expect(await fs.readdir(path.join(daemon.dirs.root, 'sandboxes'))).toEqual([]);
    expect(await fs.readdir(path.join(daemon.dirs.state, 'bundles'))).toEqual([]);
    expect(await processesMatching(marker)).toEqual([]);
    expect(await processesMatching(path.join(daemon.dirs.binDir, PLUGIN))).toEqual([]);
    await expectServing();
  }

  async function expectServing(): Promise<void> {
    await daemon.runtime('Version', { version: 'v1' }, 5000);
    expect((await daemon.runtime('ListPodSandbox', {}, 5000)).items).toEqual([]);
  }

  it('kills a plugin that hangs on ADD, with its children, at the timeout; Stop and Remove wait only that long', async () => {
    await play('hang');
    const started = Date.now();
    const run = daemon.runtime('RunPodSandbox', { config: podConfig('hang') }, 30_000);
    run.catch(() => undefined);
    // Stop and Remove of the pod being made queue behind its lock; they must not wait longer than the run.
    let id: string | undefined;
    while (id === undefined && Date.now() - started < BOUND_MS) {
      id = (await daemon.runtime('ListPodSandbox', {}, 5000)).items[0]?.id;
      if (id === undefined) await sleep(20);
    }
    expect(id).toBeDefined();
    const stop = daemon.runtime('StopPodSandbox', { pod_sandbox_id: id! }, 30_000).then(
      () => 'stopped',
      (err: { code: number }) => (err.code === grpcStatus.NOT_FOUND ? 'gone' : err),
    );
    const remove = daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id! }, 30_000).then(
      () => 'removed',
      (err: unknown) => err,
    );

    await expect(run).rejects.toMatchObject({
      code: grpcStatus.INTERNAL,
      details: expect.stringMatching(new RegExp(`^CNI plugin ${PLUGIN} failed on ADD: .*timed out after ${PLUGIN_TIMEOUT_SECONDS}000 ms`)),
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(PLUGIN_TIMEOUT_SECONDS * 1000);
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    expect(await stop).toMatch(/^(stopped|gone)$/);
    expect(await remove).toBe('removed');
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    await expectNothingLeft();
  });

  it('answers when a plugin exits although a child of its holds stdout, and kills that child', async () => {
    await play('fork-and-fail');
    const started = Date.now();
    await expectRunFails('fork', /\(code 11\): started a helper and gave up/);
    // Long before the timeout: the child holding stdout is not waited for.
    expect(Date.now() - started).toBeLessThan(PLUGIN_TIMEOUT_SECONDS * 1000);
    await expectNothingLeft();
  });

  it('reports a plugin that prints invalid JSON', async () => {
    await play('invalid-json');
    await expectRunFails('invalid-json', /printed an unusable result: .*not JSON: this is \{ not json/);
    await expectNothingLeft();
  });

  it('kills a plugin that prints megabytes once it passes the output limit', async () => {
    await play('flood');
    const started = Date.now();
    await expectRunFails('flood', /printed more than 1048576 bytes on stdout; killed/);
    expect(Date.now() - started).toBeLessThan(PLUGIN_TIMEOUT_SECONDS * 1000);
    await expectNothingLeft();
  });

  it('reports a plugin that fails ADD with its own message', async () => {
    await play('fail-add');
    await expectRunFails('fail-add', /\(code 7\): refusing ADD: on purpose$/);
    await expectNothingLeft();
  });

  it('keeps a pod whose DEL fails stoppable once the plugin recovers', async () => {
    await play('pass');
    const { pod_sandbox_id: id } = await daemon.runtime('RunPodSandbox', { config: podConfig('fail-del') });
    await play('fail-del');
    const started = Date.now();
    await expect(daemon.runtime('StopPodSandbox', { pod_sandbox_id: id }, 30_000)).rejects.toMatchObject({
      code: grpcStatus.INTERNAL,
      details: expect.stringMatching(new RegExp(`^CNI plugin ${PLUGIN} failed on DEL \\(code 7\\): refusing DEL`)),
    });
    await expect(daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id }, 30_000)).rejects.toMatchObject({
      details: expect.stringContaining(PLUGIN),
    });
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    // The pod is kept, so the teardown can be finished: the daemon still serves and knows it.
    expect((await daemon.runtime('ListPodSandbox', {}, 5000)).items.map((p) => p.id)).toEqual([id]);

    await play('pass');
    await daemon.runtime('StopPodSandbox', { pod_sandbox_id: id });
    await daemon.runtime('RemovePodSandbox', { pod_sandbox_id: id });
    await expectNothingLeft();
  });
});
