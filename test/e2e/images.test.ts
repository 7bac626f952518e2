import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { image, index, layer, type BuiltImage } from '../../hack/lib/images.mjs';
import { findExecutable } from '../../src/util/executable.js';
import { FakeRegistry } from './fake-registry.js';
import { podConfig, startTestDaemon, type TestDaemon } from './harness.js';
import { absentTestImage, LOCAL_REGISTRY, mirrorToml, testImage } from './images.js';

const spec = (ref: string) => ({ image: ref });

async function layerDirs(daemon: TestDaemon): Promise<string[]> {
  return (await fs.readdir(path.join(daemon.dirs.root, 'images', 'layers')).catch(() => [] as string[])).sort();
}

async function imageFs(daemon: TestDaemon): Promise<{ bytes: number; inodes: number }> {
  const { image_filesystems } = await daemon.images('ImageFsInfo', {});
  return { bytes: Number(image_filesystems[0]!.used_bytes!.value), inodes: Number(image_filesystems[0]!.inodes_used!.value) };
}

async function smallImage(marker: string): Promise<BuiltImage> {
  return image({
    layers: [await layer([{ path: 'etc', type: 'dir' }, { path: 'etc/marker', type: 'file', content: marker }])],
    config: { Cmd: ['/bin/true'], User: '1234' },
  });
}

describe('pulling images from registries', () => {
  let daemon: TestDaemon;

  beforeAll(async () => {
    daemon = await startTestDaemon({ network: 'none', extraToml: mirrorToml('registry.tscri-test.invalid') });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  it('pulls by tag, stores each layer once, and describes the image', async () => {
    const ref = testImage('busybox');
    const { image_ref } = await daemon.images('PullImage', { image: spec(ref) });
    expect(image_ref).toMatch(/^sha256:[a-f0-9]{64}$/);

    const { image: status, info } = await daemon.images('ImageStatus', { image: spec(ref), verbose: true });
    expect(status).toMatchObject({ id: image_ref, repo_tags: [ref] });
    expect(status!.repo_digests[0]).toMatch(new RegExp(`^${LOCAL_REGISTRY}/tscri-test/busybox@sha256:[a-f0-9]{64}$`));
    expect(Number(status!.size)).toBeGreaterThan(500_000);
    expect(status!.uid).toBeNull();
    expect(JSON.parse(info.info!).imageSpec.config.Cmd).toEqual(['sh']);

    // The layer is on disk, unpacked: busybox and its hard-linked applets.
    const [layerHex] = await layerDirs(daemon);
    const layerDir = path.join(daemon.dirs.root, 'images', 'layers', layerHex!);
    const [busybox, sh] = await Promise.all([fs.stat(path.join(layerDir, 'bin/busybox')), fs.stat(path.join(layerDir, 'bin/sh'))]);
    expect(sh.ino).toBe(busybox.ino);
    expect((await fs.stat(path.join(layerDir, 'tmp'))).mode & 0o7777).toBe(0o1777);

    // By image id, by short id prefix and by repo digest it is the same image.
    for (const name of [image_ref, image_ref.slice(7, 19), status!.repo_digests[0]!]) {
      expect((await daemon.images('ImageStatus', { image: spec(name), verbose: false })).image?.id).toBe(image_ref);
    }
    expect((await daemon.images('ListImages', {})).images.map((i) => i.id)).toContain(image_ref);
  });

  it('pulls by digest and through a Docker schema 2 manifest', async () => {
    const { image: byTag } = await daemon.images('ImageStatus', { image: spec(testImage('busybox')), verbose: false });
    const digestRef = byTag!.repo_digests[0]!;
    const { image_ref } = await daemon.images('PullImage', { image: spec(digestRef) });
    expect(image_ref).toBe(byTag!.id);

    const docker = await daemon.images('PullImage', { image: spec(testImage('busybox-docker')) });
    const { image: status } = await daemon.images('ImageStatus', { image: spec(testImage('busybox-docker')), verbose: false });
    expect(status!.id).toBe(docker.image_ref);
  });

  it.each([
    ['multiarch', testImage('multiarch')],
    ['multiarch-docker', testImage('multiarch-docker')],
  ])('picks linux/amd64 from the %s index', async (name, ref) => {
    await daemon.images('PullImage', { image: spec(ref) });
    const { image: status, info } = await daemon.images('ImageStatus', { image: spec(ref), verbose: true });
    const details = JSON.parse(info.info!);
    expect(details.imageSpec.architecture).toBe('amd64');
    // The repo digest is the index's (as kubelet expects for multi-platform images), and both
    // the index and the amd64 manifest were kept.
    const repoDigest = status!.repo_digests.find((d) => d.includes(`/tscri-test/${name}@`))!;
    const indexDigest = repoDigest.split('@')[1]!;
    expect(details.manifestDigests).toContain(indexDigest);
    expect(details.manifestDigests.length).toBeGreaterThanOrEqual(2);
    const platformLayer = details.layers[details.layers.length - 1].diffId.slice(7);
    const platform = await fs.readFile(path.join(daemon.dirs.root, 'images', 'layers', platformLayer, 'etc/platform'), 'utf8');
    expect(platform).toBe('linux/amd64\n');
  });

  it('pulls through a mirror while the origin cannot be reached', async () => {
    const ref = 'registry.tscri-test.invalid/tscri-test/busybox:1.0';
    const { image_ref } = await daemon.images('PullImage', { image: spec(ref) });
    const { image: status } = await daemon.images('ImageStatus', { image: spec(ref), verbose: false });
    expect(status!.id).toBe(image_ref);
    expect(status!.repo_tags).toContain(ref);
  });

  it('refuses malformed references as InvalidArgument and reports a missing image as NotFound', async () => {
    await expect(daemon.images('PullImage', { image: spec('Not/A:Valid::Ref') })).rejects.toMatchObject({ code: grpcStatus.INVALID_ARGUMENT });
    await expect(daemon.images('PullImage', { image: spec(absentTestImage('no-such-image')) })).rejects.toMatchObject({ code: grpcStatus.NOT_FOUND });
    const { image: missing } = await daemon.images('ImageStatus', { image: spec('docker.io/library/never-pulled:1'), verbose: false });
    expect(missing).toBeNull();
  });

  it('removes a tag but keeps the image while another tag remains; removing by id frees its bytes', async () => {
    const one = testImage('busybox', '1.0');
    const latest = testImage('busybox', 'latest');
    await daemon.images('PullImage', { image: spec(one) });
    const { image_ref } = await daemon.images('PullImage', { image: spec(latest) });
    const { image: both } = await daemon.images('ImageStatus', { image: spec(image_ref), verbose: false });
    expect(both!.repo_tags).toEqual(expect.arrayContaining([one, latest]));

    await daemon.images('RemoveImage', { image: spec(latest) });
    const { image: kept } = await daemon.images('ImageStatus', { image: spec(image_ref), verbose: false });
    expect(kept!.repo_tags).toContain(one);
    expect(kept!.repo_tags).not.toContain(latest);

    // Only this image uses its layer? Remove every other user of it first.
    for (const other of (await daemon.images('ListImages', {})).images) {
      if (other.id !== image_ref) await daemon.images('RemoveImage', { image: spec(other.id) });
    }
    const before = await imageFs(daemon);
    expect(await layerDirs(daemon)).not.toEqual([]);
    await daemon.images('RemoveImage', { image: spec(image_ref) });
    expect((await daemon.images('ImageStatus', { image: spec(image_ref), verbose: false })).image).toBeNull();
    expect(await layerDirs(daemon)).toEqual([]);
    const after = await imageFs(daemon);
    expect(before.bytes - after.bytes).toBeGreaterThan(1_000_000);
    expect(after.inodes).toBeLessThan(before.inodes);
    // Idempotent.
    await daemon.images('RemoveImage', { image: spec(image_ref) });
  });

  it('shares the work of concurrent pulls of one image', async () => {
    const registry = await new FakeRegistry().listen();
    try {
      const built = await smallImage('concurrent');
      registry.add('app/shared', 'v1', built);
      const ref = `${registry.host}/app/shared:v1`;
      const ids = await Promise.all(Array.from({ length: 5 }, () => daemon.images('PullImage', { image: spec(ref) })));
      expect(new Set(ids.map((r) => r.image_ref)).size).toBe(1);
      const layerGets = registry.requests.filter((r) => r.method === 'GET' && r.path.endsWith(built.layers[0]!.digest));
      expect(layerGets).toHaveLength(1);
    } finally {
      await registry.close();
    }
  });
});

describe('registry authentication and hostile content', () => {
  let daemon: TestDaemon;
  let registry: FakeRegistry | undefined;

  beforeAll(async () => {
    daemon = await startTestDaemon({ network: 'none' });
  });

  afterEach(async () => {
    await registry?.close();
    registry = undefined;
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  it('pulls with basic credentials from the request, and is refused without them', async () => {
    registry = await new FakeRegistry({ auth: { kind: 'basic', username: 'alice', password: 's3cret' } }).listen();
    registry.add('private/app', 'v1', await smallImage('basic'));
    const ref = `${registry.host}/private/app:v1`;
    await expect(daemon.images('PullImage', { image: spec(ref) })).rejects.toMatchObject({ details: expect.stringMatching(/401|denied/i) });
    await expect(daemon.images('PullImage', { image: spec(ref), auth: { username: 'alice', password: 'wrong' } })).rejects.toBeDefined();
    const { image_ref } = await daemon.images('PullImage', { image: spec(ref), auth: { username: 'alice', password: 's3cret' } });
    expect(image_ref).toMatch(/^sha256:/);
    // The same credentials as one base64 "auth" string.
    await daemon.images('RemoveImage', { image: spec(ref) });
    const auth = Buffer.from('alice:s3cret').toString('base64');
    expect((await daemon.images('PullImage', { image: spec(ref), auth: { auth } })).image_ref).toBe(image_ref);
  });

  it('follows the bearer-token flow of WWW-Authenticate', async () => {
    registry = await new FakeRegistry({ auth: { kind: 'token', username: 'bob', password: 'pw', service: 'fake-registry' } }).listen();
    const built = await smallImage('token');
    registry.add('team/app', 'v2', built);
    const ref = `${registry.host}/team/app:v2`;
    const { image_ref } = await daemon.images('PullImage', { image: spec(ref), auth: { username: 'bob', password: 'pw' } });
    expect(image_ref).toBe(built.config.digest);
    expect(registry.requests.some((r) => r.path === '/token')).toBe(true);
    expect(registry.requests.filter((r) => r.path.startsWith('/v2/team/') && r.authorized).length).toBeGreaterThan(0);
    // uid from the image's User.
    expect((await daemon.images('ImageStatus', { image: spec(ref), verbose: false })).image!.uid).toEqual({ value: '1234' });
  });

  it('reports a slow pull’s progress in ImageStatus and in its logs', async () => {
    registry = await new FakeRegistry({ slowBlobs: { chunks: 25, delayMs: 120 } }).listen();
    const noise = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 251));
    const built = image({ layers: [await layer([{ path: 'blob', type: 'file', content: noise }])], config: { Cmd: ['/x'] } });
    registry.add('slow/app', 'v1', built);
    const ref = `${registry.host}/slow/app:v1`;
    const pull = daemon.images('PullImage', { image: spec(ref) });
    let seen: { layers: number; bytesTotal: number; bytesDone: number } | undefined;
    while (!seen || seen.bytesDone === 0) {
      const { info } = await daemon.images('ImageStatus', { image: spec(ref), verbose: true });
      if (info.pullProgress) seen = JSON.parse(info.pullProgress);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(seen).toMatchObject({ layers: 1, bytesTotal: built.layers[0]!.size });
    await pull;
    expect((await daemon.images('ImageStatus', { image: spec(ref), verbose: true })).info.pullProgress).toBeUndefined();
    // The config is a blob too, so early lines may precede the layer; one must report it.
    const progress = daemon.logs
      .split('\n')
      .filter((l) => l.includes('"msg":"pulling"') && l.includes('slow/app'))
      .map((l) => JSON.parse(l) as { layers: number; bytesTotal: number; bytesDone: number; bytesPerSecond: number })
      .find((p) => p.layers === 1);
    expect(progress).toMatchObject({ layers: 1, bytesTotal: built.layers[0]!.size });
    expect(progress!.bytesDone).toBeGreaterThan(0);
    expect(progress!.bytesPerSecond).toBeGreaterThan(0);
  });

  it('follows redirects for blobs', async () => {
    registry = await new FakeRegistry({ redirectBlobs: true }).listen();
    const built = await smallImage('redirect');
    registry.add('cdn/app', 'v1', built);
    const { image_ref } = await daemon.images('PullImage', { image: spec(`${registry.host}/cdn/app:v1`) });
    expect(image_ref).toBe(built.config.digest);
    expect(registry.requests.some((r) => r.path.startsWith('/blobstore/'))).toBe(true);
  });

  it('refuses a corrupted blob and keeps nothing of the image', async () => {
    const built = image({
      layers: [
        await layer([{ path: 'good', type: 'file', content: 'this layer is fine' }]),
        await layer([{ path: 'bad', type: 'file', content: 'x'.repeat(5000) }]),
      ],
      config: { Cmd: ['/bin/true'] },
    });
    registry = await new FakeRegistry({ corrupt: new Set([built.layers[1]!.digest]) }).listen();
    registry.add('broken/app', 'v1', built);
    const before = { layers: await layerDirs(daemon), fs: await imageFs(daemon) };
    await expect(daemon.images('PullImage', { image: spec(`${registry.host}/broken/app:v1`) })).rejects.toMatchObject({
      details: expect.stringContaining(`verification failed for ${built.layers[1]!.digest}`),
    });
    expect(await layerDirs(daemon)).toEqual(before.layers);
    expect(await imageFs(daemon)).toEqual(before.fs);
    expect(await fs.readdir(path.join(daemon.dirs.root, 'images', 'tmp'))).toEqual([]);
    expect((await daemon.images('ListImages', {})).images.map((i) => i.id)).not.toContain(built.config.digest);
  });

  it.each([
    ['an entry climbing out with ..', [{ path: '../../escaped', type: 'raw' as const, content: 'x' }], /escapes the layer directory/],
    ['an absolute entry', [{ path: '/etc/escaped', type: 'raw' as const, content: 'x' }], /absolute path/],
    [
      'a write through a symlink',
      [
        { path: 'link', type: 'symlink' as const, linkname: '/tmp' },
        { path: 'link/escaped', type: 'raw' as const, content: 'x' },
      ],
      /not a directory/,
    ],
    ['a hard link to outside', [{ path: 'hard', type: 'raw' as const, rawType: 'link', linkname: '../../etc/passwd' }], /escapes the layer directory/],
  ])('refuses a layer with %s and keeps nothing', async (_what, entries, message) => {
    const built = image({ layers: [await layer(entries)], config: { Cmd: ['/bin/true'] } });
    registry = await new FakeRegistry().listen();
    registry.add('evil/app', 'v1', built);
    const before = await layerDirs(daemon);
    await expect(daemon.images('PullImage', { image: spec(`${registry.host}/evil/app:v1`) })).rejects.toMatchObject({
      details: expect.stringMatching(message),
    });
    expect(await layerDirs(daemon)).toEqual(before);
    expect(await fs.readdir(path.join(daemon.dirs.root, 'images', 'tmp'))).toEqual([]);
    await expect(fs.access('/tmp/escaped')).rejects.toBeDefined();
  });
});

describe('images as pod rootfs', () => {
  let daemon: TestDaemon | undefined;

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  it('pulls sandbox_image on the first pod and hides deleted files in the running rootfs', async () => {
    daemon = await startTestDaemon({ extraToml: `sandbox_image = "${testImage('whiteout')}"` });
    expect((await daemon.images('ListImages', {})).images).toEqual([]);
    const { pod_sandbox_id: id } = await daemon.runtime('RunPodSandbox', { config: podConfig('whiteouts') });
    const { image: pause } = await daemon.images('ImageStatus', { image: spec(testImage('whiteout')), verbose: false });
    expect(pause!.pinned).toBe(true);

    const { info } = await daemon.runtime('PodSandboxStatus', { pod_sandbox_id: id, verbose: true });
    const pid = JSON.parse(info.info!).pid as number;
    const ls = (dir: string) => listInMountNs(pid, dir);
    expect(await ls('/etc')).toEqual(['kept']);
    expect(await ls('/dir')).toEqual(['c']);
    expect(await ls('/')).not.toContain('gone');
    expect(await fs.readFile(`/proc/${pid}/root/etc/kept`, 'utf8')).toBe('kept\n');
  });
});

describe('zstd layers', () => {
  it('pulls an image whose layer is tar+zstd, verified, and runs a container from it', async () => {
    const daemon = await startTestDaemon();
    try {
      const ref = testImage('busybox-zstd');
      const { image_ref } = await daemon.images('PullImage', { image: spec(ref) });
      const { info } = await daemon.images('ImageStatus', { image: spec(ref), verbose: true });
      expect(JSON.parse(info.info!).layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
      const config = podConfig('zstd');
      const { pod_sandbox_id } = await daemon.runtime('RunPodSandbox', { config });
      const container = { metadata: { name: 'c', attempt: 0 }, image: { image: image_ref }, command: ['sleep', '3600'], linux: {} };
      const { container_id } = await daemon.runtime('CreateContainer', { pod_sandbox_id, config: container, sandbox_config: config });
      await daemon.runtime('StartContainer', { container_id });
      const { stdout } = await daemon.runtime('ExecSync', { container_id, cmd: ['cat', '/etc/compression'], timeout: 10 });
      expect(stdout.toString()).toBe('zstd\n');
      await daemon.runtime('StopPodSandbox', { pod_sandbox_id });
      await daemon.runtime('RemovePodSandbox', { pod_sandbox_id });
    } finally {
      await daemon.stop();
    }
  });
});

/** Entries of a directory as the process `pid` sees it (through /proc/<pid>/root). */
async function listInMountNs(pid: number, dir: string): Promise<string[]> {
  return (await fs.readdir(path.join(`/proc/${pid}/root`, dir))).filter((e) => !['dev', 'proc', 'sys'].includes(e)).sort();
}

describe('crictl against the image service', () => {
  it('pulls, lists, inspects, reports fs usage and removes', async () => {
    const crictl = await findExecutable('crictl');
    if (!crictl) {
      console.warn('crictl not installed; skipping the crictl compatibility check');
      return;
    }
    const daemon = await startTestDaemon({ network: 'none' });
    try {
      const run = (...args: string[]) => execa(crictl, ['-r', `unix://${daemon.socket}`, '-i', `unix://${daemon.socket}`, ...args]);
      const ref = testImage('busybox');
      expect((await run('pull', ref)).stdout).toMatch(/Image is up to date for sha256:/);
      expect((await run('images')).stdout).toMatch(new RegExp(`${LOCAL_REGISTRY}/tscri-test/busybox\\s+1.0\\s+[a-f0-9]{13}\\s+\\d`));
      expect(JSON.parse((await run('inspecti', ref)).stdout).status.repoTags).toEqual([ref]);
      expect(Number(JSON.parse((await run('imagefsinfo')).stdout).status.usedBytes.value)).toBeGreaterThan(1_000_000);
      await run('rmi', ref);
      expect((await run('images', '-q')).stdout.trim()).toBe('');
    } finally {
      await daemon.stop();
    }
  });
});
