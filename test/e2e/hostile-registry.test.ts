/**
 * A registry that lies about sizes, sends without end or stalls must cost the daemon a bounded
 * amount of memory and time, and must not wedge later pulls: bodies are capped (manifests at
 * 4 MiB, a config at its descriptor's size, tokens at 1 MiB, error bodies at 64 KiB), every
 * body has an idle timeout, and a pull that makes no progress for
 * `registry.pull_progress_timeout_seconds` (2 s here) is abandoned for everyone waiting on it.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { image, layer, type BuiltImage } from '../../hack/lib/images.mjs';
import { FakeRegistry, HUGE_CONTENT_LENGTH, type Hostility } from './fake-registry.js';
import { startTestDaemon, type TestDaemon } from './harness.js';

const PROGRESS_TIMEOUT_S = 2;
/** A loose upper bound for anything a stall can cost: a few timeouts plus a daemon's slack. */
const STALL_BOUND_MS = 3 * PROGRESS_TIMEOUT_S * 1000 + 3000;
/** What refusing an oversized body may take: no timeout involved at all. */
const REFUSAL_BOUND_MS = 5000;
/** How much the daemon may grow while refusing a 10 GiB manifest or an endless one. */
const RSS_GROWTH_BOUND = 40 * 1024 * 1024;
/** The most of a registry's text an error message may carry, with tscri's own words around it. */
const MESSAGE_BOUND = 1000;

async function rssOf(daemon: TestDaemon): Promise<number> {
  const status = await fs.readFile(`/proc/${daemon.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

async function smallImage(marker: string, size = 200_000): Promise<BuiltImage> {
  const noise = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7919 + marker.length) % 251));
  return image({ layers: [await layer([{ path: 'data', type: 'file', content: noise }])], config: { Cmd: ['/data'], Labels: { marker } } });
}

describe('a hostile registry', () => {
  let daemon: TestDaemon;
  let registry: FakeRegistry;

  beforeAll(async () => {
    registry = await FakeRegistry.start();
    daemon = await startTestDaemon({ network: 'none', extraToml: `[registry]\npull_progress_timeout_seconds = ${PROGRESS_TIMEOUT_S}\n` });
  });

  afterAll(async () => {
    await registry?.close();
    await daemon?.stop();
  });

  /** Serve a fresh image at `repository:v1`, mistreated as `hostility`; its reference. */
  async function hostileRef(repository: string, hostility: Hostility, target: FakeRegistry = registry): Promise<string> {
    target.add(repository, 'v1', await smallImage(repository));
    target.hostile(repository, hostility);
    return `${target.host}/${repository}:v1`;
  }

  async function failedPull(ref: string): Promise<{ error: ServiceError; ms: number }> {
    const started = performance.now();
    try {
      await daemon.images('PullImage', { image: { image: ref } }, 60_000);
    } catch (error) {
      return { error: error as ServiceError, ms: performance.now() - started };
    }
    throw new Error(`pull of ${ref} succeeded`);
  }

  it('refuses a manifest announced as 10 GiB before reading it, and does not grow', async () => {
    const ref = await hostileRef('hostile/huge', 'huge-manifest');
    const before = await rssOf(daemon);
    const { error, ms } = await failedPull(ref);
    expect(error.code).toBe(grpcStatus.RESOURCE_EXHAUSTED);
    expect(error.details).toMatch(new RegExp(`manifest .*/v2/hostile/huge/manifests/v1 announces ${HUGE_CONTENT_LENGTH} bytes .*above the 4 MiB limit`));
    expect(ms).toBeLessThan(REFUSAL_BOUND_MS);
    expect((await rssOf(daemon)) - before).toBeLessThan(RSS_GROWTH_BOUND);
  });

  it('cuts an endless chunked manifest off as soon as it passes 4 MiB', async () => {
    const ref = await hostileRef('hostile/endless', 'endless-manifest');
    const before = await rssOf(daemon);
    const { error, ms } = await failedPull(ref);
    expect(error.code).toBe(grpcStatus.RESOURCE_EXHAUSTED);
    expect(error.details).toMatch(/manifest .*\/v2\/hostile\/endless\/manifests\/v1.*passed the 4 MiB limit/);
    expect(ms).toBeLessThan(REFUSAL_BOUND_MS);
    expect((await rssOf(daemon)) - before).toBeLessThan(RSS_GROWTH_BOUND);
  });

  it('abandons a stalled manifest for every pull that joined it, and the next pull starts afresh', async () => {
    const repository = 'hostile/stalled';
    const ref = await hostileRef(repository, 'stalled-manifest');
    const results = await Promise.all([failedPull(ref), failedPull(ref), failedPull(ref)]);
    for (const { error, ms } of results) {
      expect(error.code).toBe(grpcStatus.UNAVAILABLE);
      expect(error.details).toMatch(new RegExp(`no (data|progress) .*${PROGRESS_TIMEOUT_S} s.*/v2/${repository}/manifests/v1`));
      expect(ms).toBeLessThan(STALL_BOUND_MS);
    }
    // The three waited on one pull, which asked once.
    expect(registry.manifestRequests(repository)).toBe(1);

    registry.hostile(repository, undefined);
    const { image_ref } = await daemon.images('PullImage', { image: { image: ref } });
    expect(image_ref).toMatch(/^sha256:/);
    expect(registry.manifestRequests(repository)).toBe(2);
  });

  it('abandons a pull whose manifest request is never answered, long before the 30 s header timeout', async () => {
    const repository = 'hostile/silent';
    const ref = await hostileRef(repository, 'silent-manifest');
    const { error, ms } = await failedPull(ref);
    expect(error.code).toBe(grpcStatus.UNAVAILABLE);
    expect(error.details).toMatch(new RegExp(`made no progress for ${PROGRESS_TIMEOUT_S} s.*/v2/${repository}/manifests/v1`));
    expect(ms).toBeLessThan(STALL_BOUND_MS);

    registry.hostile(repository, undefined);
    await daemon.images('PullImage', { image: { image: ref } });
    expect(registry.manifestRequests(repository)).toBe(2);
  });

  it('abandons a stalled config, and keeps nothing of the image', async () => {
    const repository = 'hostile/stalled-config';
    const ref = await hostileRef(repository, 'stalled-config');
    const { error, ms } = await failedPull(ref);
    expect(error.code).toBe(grpcStatus.UNAVAILABLE);
    expect(error.details).toMatch(new RegExp(`no (data|progress) .*${PROGRESS_TIMEOUT_S} s.*/v2/${repository}/blobs/sha256:`));
    expect(ms).toBeLessThan(STALL_BOUND_MS);
    expect((await daemon.images('ListImages', {})).images.flatMap((i) => i.repo_tags)).not.toContain(ref);
  });

  it('refuses a config as soon as it runs past its descriptor’s size', async () => {
    const ref = await hostileRef('hostile/long-config', 'long-config');
    const before = await rssOf(daemon);
    const { error, ms } = await failedPull(ref);
    expect(error.code).toBe(grpcStatus.INTERNAL);
    expect(error.details).toMatch(/verification failed for sha256:[a-f0-9]{64}: more than the expected \d+ bytes/);
    expect(ms).toBeLessThan(REFUSAL_BOUND_MS);
    expect((await rssOf(daemon)) - before).toBeLessThan(RSS_GROWTH_BOUND);
  });

  it.each([
    ['a Content-Length above its descriptor’s size', 'long-layer-header', /announces Content-Length \d+ but the descriptor says \d+ bytes/],
    ['more bytes than its descriptor says', 'long-layer', /verification failed for sha256:[a-f0-9]{64}: more than the expected \d+ bytes/],
    ['fewer bytes than its descriptor says', 'short-layer', /verification failed for sha256:[a-f0-9]{64}: got \d+ bytes, expected \d+/],
  ] as const)('refuses a layer with %s', async (_what, hostility, message) => {
    const ref = await hostileRef(`hostile/${hostility}`, hostility);
    const { error, ms } = await failedPull(ref);
    expect(error.code).toBe(grpcStatus.INTERNAL);
    expect(error.details).toMatch(message);
    expect(ms).toBeLessThan(REFUSAL_BOUND_MS);
    expect(await fs.readdir(path.join(daemon.dirs.root, 'images', 'tmp'))).toEqual([]);
  });

  it('reads no more than a small part of an endless error body', async () => {
    const ref = await hostileRef('hostile/huge-error', 'huge-error');
    const { error, ms } = await failedPull(ref);
    expect(error.code).toBe(grpcStatus.UNAVAILABLE);
    expect(error.details).toMatch(/500 Internal Server Error/);
    expect(error.details.length).toBeLessThan(MESSAGE_BOUND);
    expect(ms).toBeLessThan(REFUSAL_BOUND_MS);
  });

  it('refuses a token response over 1 MiB', async () => {
    const tokens = await FakeRegistry.start({ auth: { token: { service: 'hostile-tokens' } } });
    try {
      const ref = await hostileRef('hostile/huge-token', 'huge-token', tokens);
      const { error, ms } = await failedPull(ref);
      expect(error.code).toBe(grpcStatus.RESOURCE_EXHAUSTED);
      expect(error.details).toMatch(/token response from .*\/token.*passed the 1 MiB limit/);
      expect(ms).toBeLessThan(REFUSAL_BOUND_MS);
    } finally {
      await tokens.close();
    }
  });

  it('keeps serving: a healthy image pulls, and nothing of the hostile ones is left', async () => {
    registry.add('healthy/app', 'v1', await smallImage('healthy'));
    const { image_ref } = await daemon.images('PullImage', { image: { image: `${registry.host}/healthy/app:v1` } });
    expect(image_ref).toMatch(/^sha256:/);
    expect((await daemon.runtime('Version', { version: 'v1' })).runtime_name).toBe('tscri');
    const tags = (await daemon.images('ListImages', {})).images.flatMap((i) => i.repo_tags);
    expect(tags.filter((t) => t.includes('/hostile/')).sort()).toEqual([`${registry.host}/hostile/silent:v1`, `${registry.host}/hostile/stalled:v1`]);
    expect(await fs.readdir(path.join(daemon.dirs.root, 'images', 'tmp'))).toEqual([]);
  });
});
