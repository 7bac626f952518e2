import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { credentialsFrom, parseChallenges } from '../../src/image/registry/auth.js';
import { endpointsFor } from '../../src/image/registry/endpoints.js';
import { compressionOf, MediaType, parseManifest, selectPlatform } from '../../src/image/registry/manifest.js';
import { sha256Digest, VerifyingStream } from '../../src/image/registry/verify.js';

const d = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

describe('manifests', () => {
  it('reads an OCI manifest and a Docker manifest list', () => {
    const manifest = parseManifest(
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: d(1), size: 10 }, layers: [{ mediaType: MediaType.ociLayerGzip, digest: d(2), size: 20 }] })),
      '',
    );
    expect(manifest).toMatchObject({ kind: 'image', config: { digest: d(1) }, layers: [{ digest: d(2), size: 20 }] });
    const list = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.dockerManifest, digest: d(3), size: 5, platform: { os: 'linux', architecture: 'amd64' } }] })), MediaType.dockerManifestList);
    expect(list.kind).toBe('index');
  });

  it('refuses schema 1 and garbage', () => {
    expect(() => parseManifest(Buffer.from('{"schemaVersion":1,"fsLayers":[]}'), '')).toThrow(/schema 1/);
    expect(() => parseManifest(Buffer.from('not json'), '')).toThrow(/not valid JSON/);
    expect(() => parseManifest(Buffer.from('{"schemaVersion":2,"config":{"digest":1},"layers":[]}'), '')).toThrow(/not a valid descriptor/);
  });

  it('selects the platform, preferring an exact variant', () => {
    const entry = (architecture: string, variant?: string) => ({ mediaType: MediaType.ociManifest, digest: d(architecture.length), size: 1, platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) } });
    const manifests = [entry('arm64'), entry('arm', 'v6'), entry('arm', 'v7'), entry('amd64')];
    expect(selectPlatform(manifests, { os: 'linux', architecture: 'amd64' }).platform!.architecture).toBe('amd64');
    expect(selectPlatform(manifests, { os: 'linux', architecture: 'arm', variant: 'v7' }).platform!.variant).toBe('v7');
    expect(() => selectPlatform(manifests, { os: 'linux', architecture: 's390x' })).toThrow(/no manifest for linux\/s390x.*it has: linux\/arm64/);
  });

  it('knows each layer compression', () => {
    expect(compressionOf(MediaType.ociLayerGzip)).toBe('gzip');
    expect(compressionOf(MediaType.dockerLayerGzip)).toBe('gzip');
    expect(compressionOf(MediaType.ociLayer)).toBe('none');
    expect(compressionOf(MediaType.ociLayerZstd)).toBe('zstd');
    expect(() => compressionOf('application/x-unknown')).toThrow(/unsupported layer media type/);
  });
});

describe('registry authentication', () => {
  it('parses bearer and basic challenges', () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
    ]);
    expect(parseChallenges('Basic realm="x"')).toEqual([{ scheme: 'basic', params: { realm: 'x' } }]);
    expect(parseChallenges(null)).toEqual([]);
  });

  it('takes credentials from username/password or the base64 auth string', () => {
    const empty = { username: '', password: '', auth: '', server_address: '', identity_token: '', registry_token: '' };
    expect(credentialsFrom({ ...empty, username: 'u', password: 'p' })).toEqual({ username: 'u', password: 'p' });
    expect(credentialsFrom({ ...empty, auth: Buffer.from('u:p:with:colons').toString('base64') })).toEqual({ username: 'u', password: 'p:with:colons' });
    expect(credentialsFrom({ ...empty, registry_token: 't' })).toEqual({ registryToken: 't' });
    expect(credentialsFrom(empty)).toBeUndefined();
    expect(() => credentialsFrom({ ...empty, auth: Buffer.from('nocolon').toString('base64') })).toThrow(/username:password/);
  });

  it('tries mirrors in order before the origin, https except for loopback', () => {
    const mirrors = { 'docker.io': { endpoints: ['http://127.0.0.1:5000/', 'https://mirror.example'] } };
    expect(endpointsFor('docker.io', mirrors).map((e) => [e.url, e.isMirror])).toEqual([
      ['http://127.0.0.1:5000', true],
      ['https://mirror.example', true],
      ['https://registry-1.docker.io', false],
    ]);
    expect(endpointsFor('127.0.0.1:5000', {})[0]!.url).toBe('http://127.0.0.1:5000');
    expect(endpointsFor('localhost:5000', {})[0]!.url).toBe('http://localhost:5000');
    expect(endpointsFor('quay.io', {})[0]!.url).toBe('https://quay.io');
  });
});

describe('verifying content while it streams', () => {
  const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
  const content = Buffer.from('layer content');

  it('passes content that matches its digest and size', async () => {
    await pipeline(Readable.from([content]), new VerifyingStream(sha256Digest(content), content.length), sink());
  });

  it('fails on a different digest, a short body or a long one', async () => {
    await expect(pipeline(Readable.from([content]), new VerifyingStream(sha256Digest('other'), content.length), sink())).rejects.toThrow(/hashes to/);
    await expect(pipeline(Readable.from([content]), new VerifyingStream(sha256Digest(content), content.length + 1), sink())).rejects.toThrow(/got 13 bytes, expected 14/);
    await expect(pipeline(Readable.from([content, content]), new VerifyingStream(sha256Digest(content), content.length), sink())).rejects.toThrow(/more than the expected/);
  });
});
