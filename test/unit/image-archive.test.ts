import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dockerArchiveFiles, ociArchiveFiles, tarFiles } from '../../hack/lib/archives.mjs';
import { image, layer } from '../../hack/lib/images.mjs';
import { dockerArchiveImages } from '../../src/image/archive/docker-archive.js';
import { ociArchiveImages } from '../../src/image/archive/oci-archive.js';
import { ArchiveError, archivePath, readArchive } from '../../src/image/archive/read.js';

async function smallImage() {
  return image({ layers: [await layer([{ path: 'etc', type: 'dir' }, { path: 'etc/marker', content: 'archive\n' }])], config: { Cmd: ['/bin/true'] } });
}

describe('image archives', () => {
  let scratch: string;
  beforeEach(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-archive-'));
  });
  afterEach(async () => {
    await fs.rm(scratch, { recursive: true, force: true });
  });

  const read = (bytes: Buffer) => readArchive(Readable.from([bytes]), scratch);

  it('reads a docker save archive, gzip-compressed or not, with its RepoTags as full names', async () => {
    const img = await smallImage();
    const files = dockerArchiveFiles([{ image: img, repoTags: ['busybox:1.0', 'example.com:5000/app/x:2'] }]);
    for (const bytes of [await tarFiles(files), gzipSync(await tarFiles(files))]) {
      const [found] = await dockerArchiveImages(await read(bytes));
      expect(found!.tags).toEqual(['docker.io/library/busybox:1.0', 'example.com:5000/app/x:2']);
      expect(found!.config.digest).toBe(img.config.digest);
      expect(found!.layers).toEqual([{ path: `${img.layers[0]!.diffId.slice(7)}/layer.tar` }]);
    }
  });

  it('reads an OCI archive, taking ref.name as a name only when it is one', async () => {
    const img = await smallImage();
    const archive = await read(await tarFiles(ociArchiveFiles([{ image: img, refName: 'example.com/app:1.0' }, { image: img, refName: '1.0' }])));
    const [named, bare] = await ociArchiveImages(archive);
    expect(named!.tags).toEqual(['example.com/app:1.0']);
    expect(named!.manifest!.digest).toBe(img.manifest.digest);
    expect(named!.layers[0]).toMatchObject({ digest: img.layers[0]!.digest, size: img.layers[0]!.size });
    expect(bare!.tags).toEqual([]);
  });

  it('refuses a blob whose content does not match its digest', async () => {
    const img = await smallImage();
    const files = ociArchiveFiles([{ image: img, refName: 'example.com/app:1.0' }]);
    const manifestName = `blobs/sha256/${img.manifest.digest.slice(7)}`;
    const tampered = files.map((f) => (f.name === manifestName ? { ...f, bytes: Buffer.from(f.bytes.toString().replace('"size"', ' "size"')) } : f));
    await expect(ociArchiveImages(await read(await tarFiles(tampered)))).rejects.toThrow(/hashing to/);
  });

  it('refuses entries that leave the archive, and links out of it', async () => {
    const bytes = Buffer.from('x');
    await expect(read(await tarFiles([{ name: '../escape', bytes }]))).rejects.toThrow(ArchiveError);
    await expect(read(await tarFiles([{ name: '/etc/passwd', bytes }]))).rejects.toThrow(/absolute path/);
    await expect(read(await tarFiles([{ name: 'a', type: 'symlink', linkname: '../../etc/shadow', bytes }]))).rejects.toThrow(/outside the archive/);
    expect(archivePath('./blobs//sha256/../sha256/x')).toBe('blobs/sha256/x');
    expect(await fs.readdir(scratch)).toEqual([]);
  });

  it('follows links inside the archive (old docker save shares layers so)', async () => {
    const archive = await read(await tarFiles([{ name: 'a/layer.tar', bytes: Buffer.from('t') }, { name: 'b/layer.tar', type: 'symlink', linkname: '../a/layer.tar', bytes: Buffer.alloc(0) }]));
    expect(archive.get('b/layer.tar')).toEqual(archive.get('a/layer.tar'));
  });
});
