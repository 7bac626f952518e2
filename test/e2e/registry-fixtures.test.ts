/**
 * The registry fixtures themselves: the local registry holds the test images with the digests
 * computed here, and the fake registry's auth, corruption and hostile layers behave as the
 * image tests rely on. No daemon involved.
 */
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { MANIFEST_ACCEPT, MEDIA_TYPES, sha256 } from '../../hack/lib/images.mjs';
import { ESCAPE_TARGET, FakeRegistry, hostileImage } from './fake-registry.js';
import { expectedTestImage, LOCAL_REGISTRY, registryDigest, testImage } from './images.js';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
}

async function getOk(url: string, headers: Record<string, string> = {}): Promise<{ bytes: Buffer; response: Response }> {
  const response = await fetch(url, { headers });
  expect(response.status, `GET ${url}`).toBe(200);
  return { bytes: Buffer.from(await response.arrayBuffer()), response };
}

const local = (repository: string, kind: 'manifests' | 'blobs', reference: string) => `http://${LOCAL_REGISTRY}/v2/${repository}/${kind}/${reference}`;

/** The entry names of a tar. */
async function tarNames(tar: Buffer): Promise<string[]> {
  const names: string[] = [];
  const reader = extract();
  reader.on('entry', (header, stream, next) => {
    names.push(header.name);
    stream.on('end', next).resume();
  });
  const done = new Promise<void>((resolve, reject) => reader.on('finish', () => resolve()).on('error', reject));
  reader.end(tar);
  await done;
  return names;
}

describe('the local registry', () => {
  it('serves busybox with the digests computed locally, and its blobs verify', async () => {
    const expected = await expectedTestImage('busybox');
    expect(await registryDigest(testImage('busybox'))).toBe(expected.digest);

    const { bytes: manifestBytes, response } = await getOk(local(expected.repository, 'manifests', '1.0'), { accept: MANIFEST_ACCEPT });
    expect(response.headers.get('content-type')).toBe(MEDIA_TYPES.ociManifest);
    expect(sha256(manifestBytes)).toBe(expected.digest);
    const manifest = JSON.parse(manifestBytes.toString()) as { config: Descriptor; layers: Descriptor[] };
    expect(manifest.config.digest).toBe(expected.configDigest);

    const { bytes: configBytes } = await getOk(local(expected.repository, 'blobs', manifest.config.digest));
    expect(sha256(configBytes)).toBe(manifest.config.digest);
    const config = JSON.parse(configBytes.toString()) as { rootfs: { diff_ids: string[] }; config: { Cmd: string[] } };
    expect(config.config.Cmd).toEqual(['sh']);

    const [layerDescriptor] = manifest.layers;
    const { bytes: layerBytes } = await getOk(local(expected.repository, 'blobs', layerDescriptor!.digest));
    expect(layerBytes.length).toBe(layerDescriptor!.size);
    expect(sha256(layerBytes)).toBe(layerDescriptor!.digest);
    const tar = gunzipSync(layerBytes);
    expect(sha256(tar)).toBe(config.rootfs.diff_ids[0]);
    expect(await tarNames(tar)).toEqual(expect.arrayContaining(['bin/busybox', 'bin/sh', 'etc/passwd', 'tmp/']));
  });

  it.each([
    ['multiarch', MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest],
    ['multiarch-docker', MEDIA_TYPES.dockerList, MEDIA_TYPES.dockerManifest],
  ])('lists the three platforms of %s', async (name, indexType, childType) => {
    const expected = await expectedTestImage(name);
    const { bytes, response } = await getOk(local(expected.repository, 'manifests', '1.0'), { accept: MANIFEST_ACCEPT });
    expect(response.headers.get('content-type')).toBe(indexType);
    expect(response.headers.get('docker-content-digest')).toBe(expected.digest);
    const { manifests } = JSON.parse(bytes.toString()) as { manifests: Descriptor[] };
    expect(manifests.map((m) => m.platform)).toEqual([
      { os: 'linux', architecture: 'arm64' },
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
    ]);
    expect(new Set(manifests.map((m) => m.mediaType))).toEqual(new Set([childType]));
    expect(manifests.map((m) => m.digest)).toEqual(expected.manifests!.map((m) => m.digest));
  });
});

describe('the fake registry', () => {
  let registry: FakeRegistry | undefined;

  afterEach(async () => {
    await registry?.close();
    registry = undefined;
  });

  it('refuses a blob without a token and serves it with one from its token service', async () => {
    const credentials = { username: 'bob', password: 'pw' };
    registry = await FakeRegistry.start({ auth: { token: { ...credentials, service: 'fake-service' } } });
    await registry.addTestImages();
    const pause = await expectedTestImage('pause');
    const blobUrl = `${registry.url}/v2/${pause.repository}/blobs/${pause.configDigest}`;

    const refused = await fetch(blobUrl);
    expect(refused.status).toBe(401);
    const challenge = refused.headers.get('www-authenticate')!;
    expect(challenge).toBe(`Bearer realm="${registry.url}/token",service="fake-service",scope="repository:${pause.repository}:pull"`);

    const tokenUrl = `${registry.url}/token?service=fake-service&scope=repository:${pause.repository}:pull`;
    expect((await fetch(tokenUrl)).status).toBe(401);
    const basic = `Basic ${Buffer.from('bob:pw').toString('base64')}`;
    const { bytes } = await getOk(tokenUrl, { authorization: basic });
    const { token, access_token: accessToken, expires_in: expiresIn } = JSON.parse(bytes.toString()) as Record<string, unknown>;
    expect(accessToken).toBe(token);
    expect(expiresIn).toBe(300);

    const { bytes: blob } = await getOk(blobUrl, { authorization: `Bearer ${String(token)}` });
    expect(sha256(blob)).toBe(pause.configDigest);
    // The token is for that repository only.
    const other = await fetch(`${registry.url}/v2/tscri-test/busybox/blobs/${pause.configDigest}`, { headers: { authorization: `Bearer ${String(token)}` } });
    expect(other.status).toBe(401);
    expect(registry.requests.map((r) => [r.path, r.hasAuthorization, r.authorized])).toEqual([
      [`/v2/${pause.repository}/blobs/${pause.configDigest}`, false, false],
      ['/token', false, false],
      ['/token', true, false],
      [`/v2/${pause.repository}/blobs/${pause.configDigest}`, true, true],
      [`/v2/tscri-test/busybox/blobs/${pause.configDigest}`, true, false],
    ]);
  });

  it('serves corrupted blobs with the right length and the wrong digest, still valid gzip', async () => {
    const busybox = await expectedTestImage('busybox');
    const layerDigest = busybox.layers![0]!;
    registry = await FakeRegistry.start({ corrupt: new Set([layerDigest]), redirectBlobs: true });
    await registry.addTestImages();

    const { bytes, response } = await getOk(`${registry.url}/v2/${busybox.repository}/blobs/${layerDigest}`);
    expect(response.redirected).toBe(true);
    expect(response.url).toBe(`${registry.url}/blobstore/${layerDigest}`);
    const { bytes: good } = await getOk(local(busybox.repository, 'blobs', layerDigest));
    expect(bytes.length).toBe(good.length);
    expect(sha256(bytes)).not.toBe(layerDigest);
    expect(gunzipSync(bytes).equals(gunzipSync(good))).toBe(true);
  });

  it('builds hostile layers with their names as written', async () => {
    const names = async (kind: Parameters<typeof hostileImage>[0]) => tarNames(gunzipSync((await hostileImage(kind)).layers[0]!.bytes));
    expect(await names('dotdot')).toEqual(['harmless', '../../escape']);
    expect(await names('symlink-parent')).toEqual(['harmless', 'link', 'link/tscri-escape']);
    expect(await names('absolute')).toEqual(['harmless', ESCAPE_TARGET]);
  });
});
