import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podConfig, sleep, startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');
const KIND = 'tscri.test/dev';

/**
 * CDI against the real daemon, runc and a spec directory the test owns: a spec written before
 * the start (a device node, an env var, a bind mount and a createRuntime hook that runc runs on
 * the host), one written while the daemon runs, an unknown device, and the annotation form.
 */
describe('CDI devices', () => {
  let daemon: TestDaemon;
  let specDir: string;
  let hostData: string;
  let hookDir: string;

  beforeAll(async () => {
    specDir = await tempDir('cdi-specs-');
    hostData = await tempDir('cdi-data-');
    hookDir = await tempDir('cdi-hook-');
    await fs.writeFile(path.join(hostData, 'hello'), 'from the host\n');
    // runc runs the hook on the host with the container's state on stdin; it gets no
    // environment but the hook's own.
    const hook = path.join(hookDir, 'hook.sh');
    await fs.writeFile(hook, '#!/bin/sh\ncat >> "$1/created"\necho >> "$1/created"\n', { mode: 0o755 });
    await writeSpec('vendor.json', {
      cdiVersion: '1.1.0',
      kind: KIND,
      containerEdits: { env: ['TSCRI_CDI_SPEC=1'] },
      devices: [
        {
          name: 'vendor0',
          containerEdits: {
            deviceNodes: [{ path: '/dev/vendor0', hostPath: '/dev/null', permissions: 'rw' }],
            env: ['TSCRI_CDI=vendor0'],
            mounts: [{ hostPath: hostData, containerPath: '/cdi-data', options: ['ro', 'rbind', 'nosuid', 'nodev'] }],
            hooks: [{ hookName: 'createRuntime', path: hook, args: ['hook.sh', hookDir], env: ['PATH=/usr/bin:/bin'] }],
          },
        },
      ],
    });
    daemon = await startTestDaemon({ extraToml: `[cdi]\nspec_dirs = ["${specDir}"]\n` });
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
  });

  afterAll(async () => {
    await daemon?.stop();
    for (const dir of [specDir, hostData, hookDir]) if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  function writeSpec(name: string, spec: object): Promise<void> {
    return fs.writeFile(path.join(specDir, name), JSON.stringify(spec));
  }

  async function newPod(name: string) {
    const config = podConfig(name);
    const { pod_sandbox_id } = await daemon.runtime('RunPodSandbox', { config });
    return { id: pod_sandbox_id, config };
  }

  async function create(pod: { id: string; config: Record<string, unknown> }, name: string, overrides: Record<string, unknown>): Promise<string> {
    const config = { metadata: { name, attempt: 0 }, image: { image: BUSYBOX }, command: ['sleep', '3600'], linux: {}, ...overrides };
    const { container_id } = await daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config });
    return container_id;
  }

  async function run(pod: { id: string; config: Record<string, unknown> }, name: string, overrides: Record<string, unknown>): Promise<string> {
    const id = await create(pod, name, overrides);
    await daemon.runtime('StartContainer', { container_id: id });
    return id;
  }

  async function sh(id: string, script: string): Promise<string> {
    const reply = await daemon.runtime('ExecSync', { container_id: id, cmd: ['sh', '-c', script], timeout: 10 });
    expect(reply.exit_code, reply.stderr.toString()).toBe(0);
    return reply.stdout.toString().trim();
  }

  it('applies a device from CDI_devices: node, env, mount, hook and cgroup rule', async () => {
    const pod = await newPod('cdi-config');
    const id = await run(pod, 'c', { CDI_devices: [{ name: `${KIND}=vendor0` }] });
    expect(await sh(id, 'test -c /dev/vendor0 && stat -c %t:%T /dev/vendor0')).toBe('1:3');
    expect(await sh(id, 'head -c 16 /dev/vendor0 | wc -c && echo x > /dev/vendor0 && echo written')).toBe('0\nwritten');
    expect(await sh(id, 'echo "$TSCRI_CDI|$TSCRI_CDI_SPEC"')).toBe('vendor0|1');
    expect(await sh(id, 'cat /cdi-data/hello')).toBe('from the host');
    expect(await sh(id, 'touch /cdi-data/x 2>&1 || echo refused')).toMatch(/refused$/);

    const marker = await fs.readFile(path.join(hookDir, 'created'), 'utf8');
    expect(marker).toContain(`"id":"${id}"`);
    const spec = JSON.parse((await daemon.runtime('ContainerStatus', { container_id: id, verbose: true })).info.info!).runtimeSpec;
    expect(spec.linux.resources.devices).toContainEqual({ allow: true, type: 'c', major: 1, minor: 3, access: 'rw' });
    expect(spec.hooks.createRuntime).toEqual([{ path: path.join(hookDir, 'hook.sh'), args: ['hook.sh', hookDir], env: ['PATH=/usr/bin:/bin'] }]);
  });

  it('applies a device named in a cdi.k8s.io annotation', async () => {
    const pod = await newPod('cdi-annotation');
    const id = await run(pod, 'c', { annotations: { 'cdi.k8s.io/test-plugin_vendor0': `${KIND}=vendor0` } });
    expect(await sh(id, 'test -c /dev/vendor0 && echo "$TSCRI_CDI"')).toBe('vendor0');
  });

  it('refuses an unknown device with InvalidArgument naming it, making nothing', async () => {
    const pod = await newPod('cdi-unknown');
    await expect(create(pod, 'c', { CDI_devices: [{ name: `${KIND}=vendor0` }, { name: `${KIND}=nope` }] })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: `config.CDI_devices[1].name: unknown CDI device "${KIND}=nope"`,
    });
    await expect(create(pod, 'd', { annotations: { 'cdi.k8s.io/x': 'not-a-name' } })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringContaining('config.annotations["cdi.k8s.io/x"]'),
    });
    const { containers } = await daemon.runtime('ListContainers', { filter: { pod_sandbox_id: pod.id } });
    expect(containers).toEqual([]);
  });

  it('picks up a spec file written while the daemon runs', async () => {
    await writeSpec('late.yaml', {
      cdiVersion: '0.3.0',
      kind: 'tscri.test/late',
      devices: [{ name: 'l0', containerEdits: { env: ['TSCRI_LATE=yes'] } }],
    });
    const pod = await newPod('cdi-late');
    // The directory watch sees the file within milliseconds; allow for a slow host.
    let id: string | undefined;
    for (let attempt = 0; !id; attempt++) {
      try {
        id = await run(pod, 'c', { CDI_devices: [{ name: 'tscri.test/late=l0' }] });
      } catch (err) {
        if (attempt > 40 || (err as { code?: number }).code !== grpcStatus.INVALID_ARGUMENT) throw err;
        await sleep(50);
      }
    }
    expect(await sh(id, 'echo "$TSCRI_LATE"')).toBe('yes');
  });
});
