import { promises as fs } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerArchive, ociArchive, ociArchiveFiles, tarFiles } from '../../hack/lib/archives.mjs';
import { image, layer, type BuiltImage, type Layer } from '../../hack/lib/images.mjs';
import { buildTestImages } from '../../hack/test-images.mjs';
import { TSCRI_BIN, podConfig, sleep, startTestDaemon, tempDir, type TestDaemon } from './harness.js';

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** busybox plus a layer of its own (/etc/origin), so each archive brings a layer to unpack. */
async function imageFrom(busyboxLayer: Layer, origin: string): Promise<BuiltImage> {
  const marker = await layer([{ path: 'etc', type: 'dir' }, { path: 'etc/origin', content: `${origin}\n` }]);
  return image({ layers: [busyboxLayer, marker], config: { Env: [PATH_ENV], Cmd: ['sh'], Labels: { origin } } });
}

describe('images from archives, without a registry', () => {
  let daemon: TestDaemon;
  let importDir: string;
  let work: string;
  let busyboxLayer: Layer;

  beforeAll(async () => {
    importDir = await tempDir('import-');
    work = await tempDir('archives-');
    daemon = await startTestDaemon({ extraToml: `[images]\nimport_dir = "${importDir}"\n` });
    const busybox = (await buildTestImages()).get('busybox:1.0') as BuiltImage;
    busyboxLayer = busybox.layers[0]!;
  });

  afterAll(async () => {
    await daemon?.stop();
    await fs.rm(importDir, { recursive: true, force: true });
    await fs.rm(work, { recursive: true, force: true });
  });

  const tscri = (args: string[], input?: Buffer) =>
    execa(process.execPath, [TSCRI_BIN, '-r', `unix://${daemon.socket}`, ...args], { reject: false, ...(input ? { input } : {}) });

  /** Run a container of `ref` in a new pod; what `cat /etc/origin` prints in it. */
  async function originIn(ref: string): Promise<string> {
    const config = podConfig(`load-${Math.random().toString(36).slice(2, 8)}`);
    const { pod_sandbox_id } = await daemon.runtime('RunPodSandbox', { config });
    try {
      const container = { metadata: { name: 'c', attempt: 0 }, image: { image: ref }, command: ['sleep', '3600'], linux: {} };
      const { container_id } = await daemon.runtime('CreateContainer', { pod_sandbox_id, config: container, sandbox_config: config });
      await daemon.runtime('StartContainer', { container_id });
      const { stdout } = await daemon.runtime('ExecSync', { container_id, cmd: ['cat', '/etc/origin'], timeout: 10 });
      return stdout.toString().trim();
    } finally {
      await daemon.runtime('StopPodSandbox', { pod_sandbox_id });
      await daemon.runtime('RemovePodSandbox', { pod_sandbox_id });
    }
  }

  /** Layers, blobs, records and scratch files of the store: what a refused archive must not add to. */
  async function storeContents(): Promise<string[]> {
    const base = path.join(daemon.dirs.root, 'images');
    const list = async (dir: string) => (await fs.readdir(path.join(base, dir)).catch(() => [] as string[])).map((n) => `${dir}/${n}`);
    return (await Promise.all(['layers', 'blobs/sha256', 'images', 'tmp'].map(list))).flat().sort();
  }

  it('loads a docker save archive with tscri load, keeps its RepoTags, and runs a container from it', async () => {
    const img = await imageFrom(busyboxLayer, 'docker');
    const file = path.join(work, 'docker.tar');
    await fs.writeFile(file, await dockerArchive([{ image: img, repoTags: ['loaded/docker:1.0'] }]));
    const result = await tscri(['load', file]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`Loaded image: docker.io/loaded/docker:1.0 (${img.config.digest})`);
    const { image: status } = await daemon.images('ImageStatus', { image: { image: 'loaded/docker:1.0' }, verbose: false });
    expect(status).toMatchObject({ id: img.config.digest, repo_tags: ['docker.io/loaded/docker:1.0'], repo_digests: [], pinned: false });
    expect(await originIn('loaded/docker:1.0')).toBe('docker');
  });

  it('loads a gzip-compressed OCI archive from standard input, with a repo digest from its index', async () => {
    const img = await imageFrom(busyboxLayer, 'oci');
    const archive = gzipSync(await ociArchive([{ image: img, refName: 'example.com/loaded/oci:2.0' }]));
    const result = await tscri(['load'], archive);
    expect(result.stdout).toBe(`Loaded image: example.com/loaded/oci:2.0 (${img.config.digest})`);
    const { image: status } = await daemon.images('ImageStatus', { image: { image: 'example.com/loaded/oci:2.0' }, verbose: false });
    expect(status!.repo_digests).toEqual([`example.com/loaded/oci@${img.manifest.digest}`]);
    expect(await originIn(img.config.digest)).toBe('oci');
  });

  it('refuses a corrupt archive and keeps nothing of it', async () => {
    const before = await storeContents();
    const img = await imageFrom(busyboxLayer, 'corrupt');
    const files = ociArchiveFiles([{ image: img, refName: 'example.com/loaded/corrupt:1.0' }]);
    const markerBlob = `blobs/sha256/${img.layers[1]!.digest.slice(7)}`;
    // The marker layer's bytes altered: its digest no longer matches.
    const tampered = files.map((f) => (f.name === markerBlob ? { ...f, bytes: Buffer.concat([f.bytes, Buffer.from('x')]) } : f));
    const bad = await tscri(['load', '-'], await tarFiles(tampered));
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/image archive: .*hashing to sha256:/);
    const escaping = await tscri(['load'], await tarFiles([...files, { name: '../../etc/evil', bytes: Buffer.from('x') }]));
    expect(escaping.exitCode).toBe(1);
    expect(escaping.stderr).toMatch(/points outside the archive/);
    expect((await daemon.images('ImageStatus', { image: { image: 'example.com/loaded/corrupt:1.0' }, verbose: false })).image).toBeNull();
    expect(await storeContents()).toEqual(before);
  });

  it('imports a tarball dropped into the import directory, pinned, and keeps it across a restart', async () => {
    const img = await imageFrom(busyboxLayer, 'imported');
    const archive = await dockerArchive([{ image: img, repoTags: ['imported/app:1.0'] }]);
    // Written in two goes, as a slow copy would: the directory waits for it to hold still.
    const file = path.join(importDir, 'app.tar');
    await fs.writeFile(file, archive.subarray(0, 4096));
    await sleep(300);
    await fs.appendFile(file, archive.subarray(4096));
    const status = async () => (await daemon.images('ImageStatus', { image: { image: 'imported/app:1.0' }, verbose: false })).image;
    const deadline = Date.now() + 20_000;
    while (!(await status()) && Date.now() < deadline) await sleep(200);
    expect(await status()).toMatchObject({ id: img.config.digest, pinned: true });

    // A broken file is logged and not retried while it stays as it is.
    await fs.writeFile(path.join(importDir, 'broken.tar'), Buffer.from('not an archive'));
    const logged = Date.now() + 10_000;
    while (!daemon.logs.includes('archive could not be imported') && Date.now() < logged) await sleep(200);
    expect(daemon.logs).toContain('archive could not be imported');

    await sleep(500); // the import's record of the broken file is written just after the log line
    await daemon.restart();
    expect(await status()).toMatchObject({ id: img.config.digest });
    expect(daemon.logs.split('archive could not be imported').length - 1).toBe(1);
    expect(await originIn('imported/app:1.0')).toBe('imported');
  });
});
