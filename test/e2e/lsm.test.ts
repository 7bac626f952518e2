/**
 * AppArmor and SELinux as a host without either answers (the usual test machine): requests
 * for the runtime's default or for no confinement run, a named AppArmor profile is refused,
 * and nothing in the spec is labelled. Hosts with the modules are covered by unit tests.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podConfig, startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { testImage } from './images.js';

const BUSYBOX = testImage('busybox');
const hasAppArmor = (await fs.readFile('/sys/module/apparmor/parameters/enabled', 'utf8').catch(() => '')).startsWith('Y');
const hasSelinux = await fs.access('/sys/fs/selinux/enforce').then(() => true, () => false);

describe.skipIf(hasAppArmor || hasSelinux)('AppArmor and SELinux on a host without them', () => {
  let daemon: TestDaemon;
  let logs: string;
  let pod: { id: string; config: Record<string, unknown> };

  beforeAll(async () => {
    logs = await tempDir('lsm-logs-');
    daemon = await startTestDaemon();
    await daemon.images('PullImage', { image: { image: BUSYBOX } });
    const config = podConfig('lsm', { log_directory: path.join(logs, 'lsm'), linux: { security_context: { selinux_options: { user: 'u', role: 'r', type: 't', level: 's0:c1,c2' } } } });
    pod = { id: (await daemon.runtime('RunPodSandbox', { config })).pod_sandbox_id, config };
  });

  afterAll(async () => {
    await daemon?.stop();
    await fs.rm(logs, { recursive: true, force: true });
  });

  function create(name: string, security: Record<string, unknown>): Promise<{ container_id: string }> {
    const config = { metadata: { name, attempt: 0 }, image: { image: BUSYBOX }, command: ['true'], linux: { security_context: security } };
    return daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config });
  }

  it('runs RuntimeDefault and Unconfined requests unconfined, with no labels', async () => {
    for (const [name, apparmor] of [['default', 'RuntimeDefault'], ['unconfined', 'Unconfined']] as const) {
      const { container_id } = await create(name, { apparmor: { profile_type: apparmor, localhost_ref: '' }, selinux_options: { user: '', role: '', type: 'x_t', level: '' } });
      const status = await daemon.runtime('ContainerStatus', { container_id, verbose: true });
      const spec = JSON.parse(status.info.info!).runtimeSpec;
      expect(spec.process.apparmorProfile).toBeUndefined();
      expect(spec.process.selinuxLabel).toBeUndefined();
      expect(spec.linux.mountLabel).toBeUndefined();
      await daemon.runtime('RemoveContainer', { container_id });
    }
  });

  it('refuses a Localhost AppArmor profile with INVALID_ARGUMENT naming it', async () => {
    await expect(create('named', { apparmor: { profile_type: 'Localhost', localhost_ref: 'my-profile' } })).rejects.toMatchObject({
      code: grpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(/apparmor\.localhost_ref: AppArmor profile "my-profile" was asked for, but AppArmor is not enabled/),
    });
    await expect(create('named-legacy', { apparmor_profile: 'localhost/my-profile' })).rejects.toMatchObject({ code: grpcStatus.INVALID_ARGUMENT });
  });
});
