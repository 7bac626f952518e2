import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podConfig, startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { testImage } from './images.js';

/** busybox plus `syscall-probe NAME`, which makes one system call and prints `ok N` or `errno N`. */
const SYSCALLS = testImage('syscalls');
const EPERM = 'errno 1';
type Profile = { profile_type: 'RuntimeDefault' | 'Unconfined'; localhost_ref: '' };
const RUNTIME_DEFAULT: Profile = { profile_type: 'RuntimeDefault', localhost_ref: '' };
const UNCONFINED: Profile = { profile_type: 'Unconfined', localhost_ref: '' };

interface Pod {
  id: string;
  config: Record<string, unknown>;
}

describe('seccomp RuntimeDefault as an allowlist', () => {
  let daemon: TestDaemon;
  let logs: string;
  let profiles: string;
  let pod: Pod;
  /** One container per (profile, added capabilities), made on first use. */
  const containers = new Map<string, Promise<string>>();

  beforeAll(async () => {
    logs = await tempDir('logs-');
    profiles = await tempDir('seccomp-');
    daemon = await startTestDaemon({ extraToml: `seccomp_profile_root = "${profiles}"` });
    await daemon.images('PullImage', { image: { image: SYSCALLS } });
    pod = await newPod('seccomp');
  });

  afterAll(async () => {
    await daemon?.stop();
    await fs.rm(logs, { recursive: true, force: true });
    await fs.rm(profiles, { recursive: true, force: true });
  });

  async function newPod(name: string, security: Record<string, unknown> | null = null): Promise<Pod> {
    const config = podConfig(name, { log_directory: path.join(logs, name), linux: security ? { security_context: security } : {} });
    const { pod_sandbox_id } = await daemon.runtime('RunPodSandbox', { config });
    return { id: pod_sandbox_id, config };
  }

  function container(seccomp: Profile, ...caps: string[]): Promise<string> {
    const key = `${seccomp.profile_type}+${caps.join('+')}`;
    let id = containers.get(key);
    if (!id) {
      id = start(key.toLowerCase().replace(/[^a-z0-9]+/g, '-'), seccomp, caps);
      containers.set(key, id);
    }
    return id;
  }

  async function start(name: string, seccomp: Profile, caps: string[]): Promise<string> {
    const config = {
      metadata: { name, attempt: 0 },
      image: { image: SYSCALLS },
      command: ['sleep', '3600'],
      log_path: `${name}.log`,
      linux: { security_context: { seccomp, capabilities: { add_capabilities: caps, drop_capabilities: [] } } },
    };
    const { container_id } = await daemon.runtime('CreateContainer', { pod_sandbox_id: pod.id, config, sandbox_config: pod.config });
    await daemon.runtime('StartContainer', { container_id });
    return container_id;
  }

  async function sh(id: Promise<string>, script: string): Promise<{ code: number; out: string }> {
    const res = await daemon.runtime('ExecSync', { container_id: await id, cmd: ['sh', '-c', script], timeout: 20 });
    return { code: res.exit_code, out: `${res.stdout.toString()}${res.stderr.toString()}`.trim() };
  }

  const probe = async (id: Promise<string>, call: string) => (await sh(id, `syscall-probe ${call}`)).out;

  it('loads a filter and lets ordinary programs run: a shell, files, fork, sockets on loopback', async () => {
    const confined = container(RUNTIME_DEFAULT);
    expect((await sh(confined, 'grep Seccomp: /proc/self/status')).out).toMatch(/^Seccomp:\s+2$/m);
    const files = await sh(confined, 'ls / >/dev/null && cat /etc/passwd | wc -l && mkdir -p /tmp/a/b && echo hi > /tmp/a/b/f && mv /tmp/a/b/f /tmp/g && rm -r /tmp/a && cat /tmp/g');
    expect(files).toEqual({ code: 0, out: '5\nhi' });
    expect(await sh(confined, '(sleep 0; echo child) & wait; date +%Y >/dev/null; echo done')).toEqual({ code: 0, out: 'child\ndone' });
    const web = await sh(confined, 'httpd -p 127.0.0.1:8080 -h /etc && wget -q -O - http://127.0.0.1:8080/group | head -1');
    expect(web).toEqual({ code: 0, out: 'root:x:0:' });
    expect(await probe(confined, 'inet')).toMatch(/^ok \d+$/);
    // perl is a dynamically linked glibc program: it starts, and clone3 says "not here" so libc uses clone.
    expect(await probe(confined, 'clone3')).toBe('errno 38');
  });

  it('refuses namespaces, mounts and hostnames without CAP_SYS_ADMIN and allows them with it', async () => {
    const plain = container(RUNTIME_DEFAULT);
    const admins = [container(RUNTIME_DEFAULT, 'SYS_ADMIN'), container(UNCONFINED, 'SYS_ADMIN')];
    for (const script of ['unshare -m true', 'unshare -u hostname x', 'mkdir -p /mnt && mount -t tmpfs none /mnt', 'hostname inside']) {
      const refused = await sh(plain, script);
      expect(refused.code, script).not.toBe(0);
      expect(refused.out, script).toMatch(/operation not permitted|permission denied/i);
      for (const admin of admins) {
        const allowed = await sh(admin, script);
        expect(allowed.code, `${script}: ${allowed.out}`).toBe(0);
      }
    }
    const admin = admins[0]!;
    // With CAP_SYS_ADMIN clone3 reaches the kernel, which rejects its empty arguments.
    expect(await probe(admin, 'clone3')).toBe('errno 22');
  });

  it('refuses a user namespace the kernel would give an unprivileged process', async () => {
    const unconfined = await sh(container(UNCONFINED), 'syscall-probe userns');
    // Some hosts forbid unprivileged user namespaces themselves; seccomp then adds nothing to see.
    if (!unconfined.out.startsWith('ok')) return;
    expect(await probe(container(RUNTIME_DEFAULT), 'userns')).toBe(EPERM);
    expect((await sh(container(RUNTIME_DEFAULT), 'unshare -U true')).code).not.toBe(0);
  });

  it('never allows keyrings, even with CAP_SYS_ADMIN; Unconfined does', async () => {
    for (const call of ['keyctl', 'add_key']) {
      expect(await probe(container(RUNTIME_DEFAULT), call), call).toBe(EPERM);
      expect(await probe(container(RUNTIME_DEFAULT, 'SYS_ADMIN'), call), call).toBe(EPERM);
      expect(await probe(container(UNCONFINED), call), call).toMatch(/^ok \d+$/);
    }
  });

  it('allows kcmp only with CAP_SYS_PTRACE, and leaves ptrace itself to the kernel', async () => {
    expect(await probe(container(RUNTIME_DEFAULT), 'kcmp')).toBe(EPERM);
    expect(await probe(container(RUNTIME_DEFAULT, 'SYS_PTRACE'), 'kcmp')).toBe('ok 0');
    expect(await probe(container(UNCONFINED), 'kcmp')).toBe('ok 0');
    // Attaching to a sibling process of the same user: seccomp lets the call through.
    const attach = 'sleep 30 & pid=$!; syscall-probe ptrace $pid; kill -9 $pid';
    expect((await sh(container(RUNTIME_DEFAULT), attach)).out).toBe('ok 0');
    expect((await sh(container(RUNTIME_DEFAULT, 'SYS_PTRACE'), attach)).out).toBe('ok 0');
  });

  it('refuses odd personalities, vsock sockets and io_uring, which Unconfined passes to the kernel', async () => {
    for (const call of ['personality', 'vsock', 'io_uring']) {
      expect(await probe(container(RUNTIME_DEFAULT), call), call).toBe(EPERM);
      expect(await probe(container(UNCONFINED), call), call).not.toBe(EPERM);
    }
  });

  it('runs the pause container under RuntimeDefault when the pod asks for it', async () => {
    const pauseSeccomp = async (p: Pod) => {
      const res = await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: p.id, verbose: true });
      const { pid } = JSON.parse(res.info.info!) as { pid: number };
      return /^Seccomp:\s+(\d)$/m.exec(await fs.readFile(`/proc/${pid}/status`, 'utf8'))?.[1];
    };
    expect(await pauseSeccomp(await newPod('pause-default', { seccomp: RUNTIME_DEFAULT }))).toBe('2');
    expect(await pauseSeccomp(await newPod('pause-path', { seccomp_profile_path: 'runtime/default' }))).toBe('2');
    // Nothing named: unconfined, as containerd does with its default settings.
    expect(await pauseSeccomp(pod)).toBe('0');
    expect(await pauseSeccomp(await newPod('pause-unconfined', { seccomp: UNCONFINED }))).toBe('0');
    expect(await pauseSeccomp(await newPod('pause-privileged', { privileged: true, seccomp: RUNTIME_DEFAULT }))).toBe('0');

    await fs.writeFile(path.join(profiles, 'pause.json'), JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['keyctl'], action: 'SCMP_ACT_ERRNO' }] }));
    expect(await pauseSeccomp(await newPod('pause-localhost', { seccomp: { profile_type: 'Localhost', localhost_ref: 'pause.json' } }))).toBe('2');
    await expect(newPod('pause-outside', { seccomp: { profile_type: 'Localhost', localhost_ref: '/etc/passwd' } })).rejects.toMatchObject({
      details: expect.stringMatching(/is not below/),
    });
  });
});
