/**
 * The image service's steps against a registry in the test process (test/e2e/fake-registry.ts
 * on 127.0.0.1) and a store in a temporary directory: a pull stores blobs and unpacked layers
 * and then records the image; tags move between images; removal keeps what an image or a
 * container still uses; a pull that fails leaves neither record nor content.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { image, layer } from '../../hack/lib/images.mjs';
import { defaultConfig } from '../../src/config/config.js';
import { ImageService } from '../../src/image/service.js';
import { silentLogger } from '../../src/log.js';
import { FakeRegistry } from '../e2e/fake-registry.js';

const log = silentLogger();

/** An image of one layer holding `marker` (with `content`), over a shared base layer when `base` is given. */
async function imageWith(content: string, base?: Awaited<ReturnType<typeof layer>>) {
  const own = await layer([{ path: 'marker', content }]);
  return image({ layers: base ? [base, own] : [own], config: { Cmd: ['/bin/true'] } });
}

/** The names in `dir`, or none when it is not there. */
async function entries(dir: string): Promise<string[]> {
  return (await fs.readdir(dir).catch(() => [] as string[])).sort();
}

describe('the image service', () => {
  let root: string;
  let registry: FakeRegistry;
  let service: ImageService;

  const ref = (repositoryTag: string): string => `${registry.host}/${repositoryTag}`;
  const pull = (repositoryTag: string): Promise<string> => service.pull({ image: ref(repositoryTag) } as never, null, log);
  const remove = (text: string): Promise<void> => service.remove({ image: text } as never, log);
  const stored = async () => ({ blobs: await entries(service.layout.blobsDir), layers: await entries(service.layout.layersDir) });

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-images-'));
    registry = await FakeRegistry.start();
    const config = defaultConfig();
    config.root = root;
    config.registry = { ...config.registry, configPath: '' };
    service = new ImageService(config, log);
    await service.open();
  });

  afterEach(async () => {
    await registry.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('pulls into the store and records the image by its tag and its digest', async () => {
    const app = await imageWith('one\n');
    registry.add('team/app', 'v1', app);
    const id = await pull('team/app:v1');

    expect(id).toBe(app.config.digest);
    const record = service.get(ref('team/app:v1'));
    expect(record).toMatchObject({ id, repoTags: [ref('team/app:v1')], repoDigests: [`${ref('team/app')}@${app.manifest.digest}`], pinned: false });
    expect(service.get(id.slice('sha256:'.length, 'sha256:'.length + 12)).id).toBe(id);
    expect(service.get(`${ref('team/app')}@${app.manifest.digest}`).id).toBe(id);
    const [layerDir] = service.layerDirs(record);
    expect(await fs.readFile(path.join(layerDir!, 'marker'), 'utf8')).toBe('one\n');
    expect((await stored()).blobs).toEqual(expect.arrayContaining([app.config.digest.slice(7), app.manifest.digest.slice(7)]));
    const usage = (await service.fsInfo()).image_filesystems?.[0];
    expect(Number(usage?.used_bytes?.value)).toBeGreaterThan(0);
  });

  it('shares one fetch between concurrent pulls of one reference', async () => {
    registry.add('team/app', 'v1', await imageWith('shared\n'));
    const [first, second] = await Promise.all([pull('team/app:v1'), pull('team/app:v1')]);
    expect(second).toBe(first);
    expect(registry.manifestRequests('team/app')).toBe(1);
  });

  it('moves a tag pulled again to the image it names now; the image that had it stays under its id', async () => {
    const before = await imageWith('before\n');
    const after = await imageWith('after\n');
    registry.add('team/app', 'v1', before);
    const oldId = await pull('team/app:v1');
    registry.add('team/app', 'v1', after);
    const newId = await pull('team/app:v1');

    expect(newId).not.toBe(oldId);
    expect(service.get(ref('team/app:v1')).id).toBe(newId);
    expect(service.get(oldId).repoTags).toEqual([]);
    expect(service.list(null).map((image) => image.id).sort()).toEqual([newId, oldId].sort());
  });

  it('removes a tag alone while the image has others, and the image with its content once none is left', async () => {
    registry.add('team/app', 'v1', await imageWith('tags\n')).add('team/app', 'latest', await imageWith('tags\n'));
    const id = await pull('team/app:v1');
    expect(await pull('team/app:latest')).toBe(id);

    await remove(ref('team/app:v1'));
    expect(service.get(id).repoTags).toEqual([ref('team/app:latest')]);
    expect(service.resolve(ref('team/app:v1'))).toBeUndefined();

    await remove(ref('team/app:latest'));
    expect(service.resolve(id)).toBeUndefined();
    expect(await stored()).toEqual({ blobs: [], layers: [] });
    await expect(remove(ref('team/app:latest'))).resolves.toBeUndefined(); // already gone: not an error
  });

  it('keeps the layers a container stands on after its image is removed, until the container lets go', async () => {
    const app = await imageWith('held\n');
    registry.add('team/app', 'v1', app);
    const id = await pull('team/app:v1');
    const record = service.get(id);
    const diffIds = record.layers.map((l) => l.diffId);
    service.retainLayers('container-1', diffIds);

    await remove(id);
    expect(service.resolve(id)).toBeUndefined();
    expect((await stored()).layers).toEqual(diffIds.map((d) => d.slice(7)));
    expect((await stored()).blobs).toEqual([]);

    await service.releaseLayers('container-1', log);
    expect((await stored()).layers).toEqual([]);
  });

  it('keeps a layer two images share when one of them is removed', async () => {
    const base = await layer([{ path: 'base', content: 'common\n' }]);
    registry.add('team/a', 'v1', await imageWith('a\n', base)).add('team/b', 'v1', await imageWith('b\n', base));
    const a = await pull('team/a:v1');
    const b = await pull('team/b:v1');
    expect((await stored()).layers).toHaveLength(3);

    await remove(a);
    expect((await stored()).layers.sort()).toEqual(service.get(b).layers.map((l) => l.diffId.slice(7)).sort());
  });

  it('leaves no record, blob or layer behind when a pull fails', async () => {
    const base = await layer([{ path: 'base', content: 'fine\n' }]);
    const broken = await layer([{ path: 'marker', content: 'corrupted on the way\n' }]);
    const app = image({ layers: [base, broken], config: {} });
    await registry.close();
    registry = await FakeRegistry.start({ corrupt: new Set([broken.digest]) });
    registry.add('team/app', 'v1', app);

    await expect(pull('team/app:v1')).rejects.toThrow(/verification failed|digest/i);
    expect(service.list(null)).toEqual([]);
    expect(service.resolve(ref('team/app:v1'))).toBeUndefined();
    expect(await stored()).toEqual({ blobs: [], layers: [] });
    expect(await entries(service.layout.tmpDir)).toEqual([]);
  });

  it('answers NotFound for an image the registry does not have, and keeps nothing', async () => {
    await expect(pull('team/missing:v1')).rejects.toMatchObject({ code: 'NotFound' });
    expect(service.list(null)).toEqual([]);
    expect(await stored()).toEqual({ blobs: [], layers: [] });
  });
});
