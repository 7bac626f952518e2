import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { AppArmor, APPARMOR_DEFAULT_PROFILE, defaultProfileText, detectAppArmor, parseLoadedProfiles, type AppArmorHost, type Runner } from '../../src/oci/apparmor.js';
import { pino } from 'pino';
import { applyConfinement, detectSecurityModules } from '../../src/oci/lsm.js';
import { baseSpec } from '../../src/oci/spec.js';
import { detectSelinux, parseContext, Selinux, type PodSelinux, type SelinuxHost } from '../../src/oci/selinux.js';

const roots: string[] = [];
afterEach(async () => {
  await Promise.all(roots.splice(0).map((r) => fs.rm(r, { recursive: true, force: true })));
});

/** A fixture tree: each key a path below the root, each value the file's content. */
async function tree(files: Record<string, string>): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-lsm-'));
  roots.push(root);
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await fs.writeFile(path.join(root, name), content);
  }
  return root;
}

const APPARMOR_ON = {
  'sys/module/apparmor/parameters/enabled': 'Y\n',
  'sys/kernel/security/apparmor/profiles': 'docker-default (enforce)\nmy app (complain)\n',
};

describe('AppArmor host detection', () => {
  it('finds AppArmor when the module is enabled and securityfs shows it', async () => {
    const host = await detectAppArmor(await tree(APPARMOR_ON));
    expect(host?.profilesFile).toMatch(/sys\/kernel\/security\/apparmor\/profiles$/);
  });

  it('finds none when the module is disabled, absent, or securityfs is not mounted', async () => {
    expect(await detectAppArmor(await tree({ ...APPARMOR_ON, 'sys/module/apparmor/parameters/enabled': 'N\n' }))).toBeUndefined();
    expect(await detectAppArmor(await tree({}))).toBeUndefined();
    expect(await detectAppArmor(await tree({ 'sys/module/apparmor/parameters/enabled': 'Y\n' }))).toBeUndefined();
  });

  it('reads loaded profile names, spaces included, without their mode', () => {
    expect([...parseLoadedProfiles('docker-default (enforce)\nmy app (complain)\n\n')]).toEqual(['docker-default', 'my app']);
  });
});

describe('the default AppArmor profile', () => {
  const text = defaultProfileText();

  it('is named tscri-default and survives a detached or deleted path', () => {
    expect(text).toMatch(/^profile tscri-default flags=\(attach_disconnected,mediate_deleted\) \{$/m);
  });

  it('denies mounts, kernel knobs under /proc and /sys, and the firmware and LSM interfaces', () => {
    for (const rule of ['deny mount,', 'deny @{PROC}/{sysrq-trigger,kcore} rwklx,', 'deny /sys/firmware/** rwklx,', 'deny /sys/kernel/security/** rwklx,']) {
      expect(text).toContain(rule);
    }
    expect(text).toMatch(/deny @\{PROC\}\/sys\/kernel\/\{\[\^s\]\*,s\[\^h\]\*,sh\[\^m\]\*\} w,/);
  });

  it('lets processes of the profile trace and signal each other, and the host and runtimes signal them', () => {
    expect(text).toContain('ptrace (trace,read,tracedby,readby) peer=tscri-default,');
    expect(text).toContain('signal (send,receive) peer=tscri-default,');
    expect(text).toContain('signal (receive) peer=unconfined,');
    expect(text).toContain('signal (receive) peer=runc,');
  });
});

/** A fake apparmor_parser: records its calls and "loads" by appending to the profiles file. */
function fakeParser(profilesFile: string, fail = false): { runner: Runner; calls: Array<{ args: readonly string[]; input?: string; timeoutMs?: number }> } {
  const calls: Array<{ args: readonly string[]; input?: string; timeoutMs?: number }> = [];
  const runner: Runner = async (_file, args, options) => {
    calls.push({ args, input: options.input, timeoutMs: options.timeoutMs });
    if (fail) throw new Error('apparmor_parser -Kr: syntax error');
    await fs.appendFile(profilesFile, `${APPARMOR_DEFAULT_PROFILE} (enforce)\n`);
    return { stdout: '', stderr: '', exitCode: 0, signal: null, timedOut: false, truncated: { stdout: false, stderr: false } };
  };
  return { runner, calls };
}

const profile = (profile_type: cri.SecurityProfile['profile_type'], localhost_ref = ''): cri.SecurityProfile => ({ profile_type, localhost_ref });
const FIELD = 'config.linux.security_context.apparmor';

describe('AppArmor profile for a request', () => {
  async function onHost(options: { parser?: string | undefined; fail?: boolean } = {}) {
    const root = await tree(APPARMOR_ON);
    const host: AppArmorHost = { profilesFile: path.join(root, 'sys/kernel/security/apparmor/profiles'), parser: 'parser' in options ? options.parser : '/sbin/apparmor_parser' };
    const fake = fakeParser(host.profilesFile, options.fail);
    return { apparmor: new AppArmor(host, fake.runner), calls: fake.calls };
  }
  const ask = (p: cri.SecurityProfile | null, legacy = '', privileged = false) => ({ profile: p, legacy, privileged, field: FIELD });

  it('RuntimeDefault, "runtime/default" and no request all mean tscri-default, loaded once when missing', async () => {
    const { apparmor, calls } = await onHost();
    expect(await apparmor.profileFor(ask(profile('RuntimeDefault')))).toBe('tscri-default');
    expect(await apparmor.profileFor(ask(null, 'runtime/default'))).toBe('tscri-default');
    expect(await apparmor.profileFor(ask(null))).toBe('tscri-default');
    expect(calls).toEqual([{ args: ['-Kr'], input: defaultProfileText(), timeoutMs: 30_000 }]);
  });

  it('loads the default profile once for concurrent requests', async () => {
    const { apparmor, calls } = await onHost();
    await Promise.all([1, 2, 3].map(() => apparmor.profileFor(ask(null))));
    expect(calls).toHaveLength(1);
  });

  it('refuses RuntimeDefault when the profile is missing and apparmor_parser is not installed', async () => {
    const { apparmor } = await onHost({ parser: undefined });
    await expect(apparmor.profileFor(ask(null))).rejects.toMatchObject({ code: 'FailedPrecondition', message: expect.stringContaining('apparmor_parser') });
  });

  it('reports a failed load', async () => {
    const { apparmor } = await onHost({ fail: true });
    await expect(apparmor.profileFor(ask(null))).rejects.toThrow(/syntax error/);
  });

  it('Unconfined leaves the profile unset', async () => {
    const { apparmor, calls } = await onHost();
    expect(await apparmor.profileFor(ask(profile('Unconfined')))).toBeUndefined();
    expect(await apparmor.profileFor(ask(null, 'unconfined'))).toBeUndefined();
    expect(calls).toHaveLength(0);
  });

  it('Localhost names a loaded profile, with or without the localhost/ prefix', async () => {
    const { apparmor } = await onHost();
    expect(await apparmor.profileFor(ask(profile('Localhost', 'docker-default')))).toBe('docker-default');
    expect(await apparmor.profileFor(ask(profile('Localhost', 'localhost/my app')))).toBe('my app');
    expect(await apparmor.profileFor(ask(null, 'localhost/docker-default'))).toBe('docker-default');
  });

  it('refuses a Localhost profile that is not loaded, naming the field and the profile', async () => {
    const { apparmor } = await onHost();
    await expect(apparmor.profileFor(ask(profile('Localhost', 'nope')))).rejects.toMatchObject({
      code: 'InvalidArgument',
      message: `${FIELD}.localhost_ref: AppArmor profile "nope" is not loaded`,
    });
    await expect(apparmor.profileFor(ask(null, 'localhost/nope'))).rejects.toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^config\.linux\.security_context\.apparmor_profile: .*"nope" is not loaded/),
    });
  });

  it('gives a privileged container no default profile, but the Localhost profile it names', async () => {
    const { apparmor, calls } = await onHost();
    expect(await apparmor.profileFor(ask(null, '', true))).toBeUndefined();
    expect(await apparmor.profileFor(ask(profile('RuntimeDefault'), '', true))).toBeUndefined();
    expect(await apparmor.profileFor(ask(profile('Localhost', 'docker-default'), '', true))).toBe('docker-default');
    expect(calls).toHaveLength(0);
  });

  it('the structured field wins over the deprecated string', async () => {
    const { apparmor } = await onHost();
    expect(await apparmor.profileFor(ask(profile('Unconfined'), 'localhost/nope'))).toBeUndefined();
  });

  it('refuses an unknown deprecated string on any host', async () => {
    const { apparmor } = await onHost();
    await expect(apparmor.profileFor(ask(null, 'docker/default'))).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(new AppArmor(undefined).profileFor(ask(null, 'whatever'))).rejects.toMatchObject({ code: 'InvalidArgument' });
  });

  it('on a host without AppArmor: nothing applied, and a Localhost profile refused', async () => {
    const none = new AppArmor(undefined);
    expect(await none.profileFor(ask(null))).toBeUndefined();
    expect(await none.profileFor(ask(profile('RuntimeDefault')))).toBeUndefined();
    expect(await none.profileFor(ask(profile('Unconfined')))).toBeUndefined();
    await expect(none.profileFor(ask(profile('Localhost', 'mine')))).rejects.toMatchObject({
      code: 'InvalidArgument',
      message: `${FIELD}.localhost_ref: AppArmor profile "mine" was asked for, but AppArmor is not enabled on this host`,
    });
  });
});

const SELINUX_ON = {
  'sys/fs/selinux/enforce': '1',
  'proc/self/attr/current': 'system_u:system_r:container_runtime_t:s0\0',
  'etc/selinux/config': 'SELINUX=enforcing\nSELINUXTYPE=mls\n',
  'etc/selinux/mls/contexts/lxc_contexts': 'process = "system_u:system_r:spc_like_t:s0"\nfile = "system_u:object_r:some_file_t:s0"\n',
};

describe('SELinux host detection', () => {
  it("reads the policy's container contexts when selinuxfs is mounted and a policy loaded", async () => {
    const host = await detectSelinux(await tree(SELINUX_ON));
    expect(host).toEqual({
      process: { user: 'system_u', role: 'system_r', type: 'spc_like_t', level: 's0' },
      file: { user: 'system_u', role: 'object_r', type: 'some_file_t', level: 's0' },
    });
  });

  it('falls back to container_t and container_file_t without lxc_contexts', async () => {
    const host = await detectSelinux(await tree({ 'sys/fs/selinux/enforce': '0', 'proc/self/attr/current': 'unconfined_u:unconfined_r:unconfined_t:s0' }));
    expect(host?.process.type).toBe('container_t');
    expect(host?.file.type).toBe('container_file_t');
  });

  it('finds none without selinuxfs, or before a policy is loaded', async () => {
    expect(await detectSelinux(await tree({}))).toBeUndefined();
    expect(await detectSelinux(await tree({ 'sys/fs/selinux/enforce': '0', 'proc/self/attr/current': 'kernel\0' }))).toBeUndefined();
  });

  it('parses contexts whose level holds colons', () => {
    expect(parseContext('u:r:t:s0:c1,c2')).toEqual({ user: 'u', role: 'r', type: 't', level: 's0:c1,c2' });
    expect(parseContext('u:r:t')).toBeUndefined();
  });
});

const HOST: SelinuxHost = {
  process: { user: 'system_u', role: 'system_r', type: 'container_t', level: 's0' },
  file: { user: 'system_u', role: 'object_r', type: 'container_file_t', level: 's0' },
};
const SE_FIELD = 'config.linux.security_context.selinux_options';
const opts = (o: Partial<cri.SELinuxOption>): cri.SELinuxOption => ({ user: '', role: '', type: '', level: '', ...o });

/** A random source that yields the given numbers in turn. */
function sequence(...numbers: number[]): (below: number) => number {
  return () => numbers.shift() ?? 0;
}

describe('SELinux labelling switch', () => {
  it('labels only when the config enables it, even on an SELinux host', async () => {
    const root = await tree(SELINUX_ON);
    const silent = pino({ level: 'silent' });
    expect((await detectSecurityModules(silent, { selinux: false }, root)).selinux.enabled).toBe(false);
    expect((await detectSecurityModules(silent, { selinux: true }, root)).selinux.enabled).toBe(true);
  });
});

describe('SELinux levels and labels', () => {
  it('draws a pod level as s0:cLOW,cHIGH, skipping equal pairs and levels a live pod holds', () => {
    const selinux = new Selinux(HOST, sequence(9, 3, 5, 5, 3, 9, 7, 1));
    expect(selinux.podLevel(null, SE_FIELD)).toBe('s0:c3,c9');
    // 5,5 is no pair; 3,9 is held; 7,1 is free.
    expect(selinux.podLevel(null, SE_FIELD)).toBe('s0:c1,c7');
  });

  it('hands a released level out again, and holds recovered ones', () => {
    const selinux = new Selinux(HOST, sequence(1, 2, 3, 4, 2, 1));
    selinux.hold('s0:c1,c2');
    expect(selinux.podLevel(null, SE_FIELD)).toBe('s0:c3,c4');
    selinux.release('s0:c1,c2');
    expect(selinux.podLevel(null, SE_FIELD)).toBe('s0:c1,c2');
  });

  it("keeps a pod's own level, and checks it", () => {
    const selinux = new Selinux(HOST, sequence());
    expect(selinux.podLevel(opts({ level: 's0:c100,c200' }), SE_FIELD)).toBe('s0:c100,c200');
    expect(() => selinux.podLevel(opts({ level: 'c1' }), SE_FIELD)).toThrow(`${SE_FIELD}.level: "c1" is not an SELinux level`);
    expect(() => selinux.podLevel(opts({ type: 'a:b' }), SE_FIELD)).toThrow(/type: "a:b" is not an SELinux name/);
  });

  const pod = (o: Partial<PodSelinux> = {}): PodSelinux => ({ options: null, level: 's0:c1,c2', sharesHostProcesses: false, ...o });

  it("labels pause at the pod's level with the policy's defaults and the pod's options", () => {
    const selinux = new Selinux(HOST);
    expect(selinux.pauseLabels(pod(), false)).toEqual({
      processLabel: 'system_u:system_r:container_t:s0:c1,c2',
      mountLabel: 'system_u:object_r:container_file_t:s0:c1,c2',
    });
    expect(selinux.pauseLabels(pod({ options: opts({ user: 'user_u', type: 'my_t' }) }), false)).toEqual({
      processLabel: 'user_u:system_r:my_t:s0:c1,c2',
      mountLabel: 'user_u:object_r:container_file_t:s0:c1,c2',
    });
  });

  it("gives a container the pod's label, with what its own options name instead", () => {
    const selinux = new Selinux(HOST);
    const labels = selinux.containerLabels(pod({ options: opts({ type: 'pod_t' }) }), opts({ role: 'r_r' }), false, SE_FIELD);
    expect(labels.processLabel).toBe('system_u:r_r:pod_t:s0:c1,c2');
    const ownLevel = selinux.containerLabels(pod(), opts({ level: 's0:c5,c6' }), false, SE_FIELD);
    expect(ownLevel).toEqual({ processLabel: 'system_u:system_r:container_t:s0:c5,c6', mountLabel: 'system_u:object_r:container_file_t:s0:c5,c6' });
  });

  it('gives privileged processes no process label, and pods sharing host PID or IPC no labels', () => {
    const selinux = new Selinux(HOST);
    expect(selinux.containerLabels(pod(), null, true, SE_FIELD)).toEqual({ mountLabel: 'system_u:object_r:container_file_t:s0:c1,c2' });
    expect(selinux.pauseLabels(pod(), true)).toEqual({ mountLabel: 'system_u:object_r:container_file_t:s0:c1,c2' });
    expect(selinux.containerLabels(pod({ sharesHostProcesses: true }), null, false, SE_FIELD)).toEqual({});
  });

  it('on a host without SELinux: no level, no labels, options not checked', () => {
    const selinux = new Selinux(undefined);
    expect(selinux.podLevel(opts({ level: 'anything' }), SE_FIELD)).toBeUndefined();
    expect(selinux.containerLabels(pod({ level: undefined }), opts({ type: 'a:b' }), false, SE_FIELD)).toEqual({});
  });
});

describe('confinement in the OCI spec', () => {
  it('sets the AppArmor profile, the process label and the mount label', () => {
    const spec = baseSpec('/rootfs');
    applyConfinement(spec, { apparmorProfile: 'tscri-default', selinux: { processLabel: 'u:r:t:s0:c1,c2', mountLabel: 'u:object_r:f:s0:c1,c2' } });
    expect(spec.process.apparmorProfile).toBe('tscri-default');
    expect(spec.process.selinuxLabel).toBe('u:r:t:s0:c1,c2');
    expect(spec.linux.mountLabel).toBe('u:object_r:f:s0:c1,c2');
  });

  it('leaves all three unset when nothing applies', () => {
    const spec = baseSpec('/rootfs');
    applyConfinement(spec, { apparmorProfile: undefined, selinux: {} });
    applyConfinement(spec, undefined);
    expect(spec.process).not.toHaveProperty('apparmorProfile');
    expect(spec.process).not.toHaveProperty('selinuxLabel');
    expect(spec.linux).not.toHaveProperty('mountLabel');
  });
});
