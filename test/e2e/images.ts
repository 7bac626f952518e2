/**
 * The test images of hack/test-images.mjs as the e2e tests see them: references into the
 * run's own registry (started and filled by global-setup.ts) and the digests they must pull to.
 */
import { inject } from 'vitest';
import { remoteDigest } from '../../hack/lib/images.mjs';
import { describeTestImages, REPOSITORY_PREFIX, TEST_IMAGE_NAMES, type TestImageInfo } from '../../hack/test-images.mjs';
import { nameTag } from './catalogue-guard.js';

export type { TestImageInfo };

/** `127.0.0.1:<port>` of the registry this run started; nothing else is ever pulled from. */
export const LOCAL_REGISTRY = inject('registry');

/** `testImage('busybox')` → `127.0.0.1:<port>/tscri-test/busybox:1.0`; only catalogue images. */
export function testImage(name: string, tag?: string): string {
  const key = nameTag(name, tag);
  if (!TEST_IMAGE_NAMES.includes(key)) throw new Error(`no test image ${key} in hack/test-images.mjs (it has ${TEST_IMAGE_NAMES.join(', ')})`);
  return `${LOCAL_REGISTRY}/${REPOSITORY_PREFIX}/${key}`;
}

/** A reference into the run's registry that the catalogue deliberately lacks, for NotFound tests. */
export function absentTestImage(name: string): string {
  const key = nameTag(name);
  if (TEST_IMAGE_NAMES.includes(key)) throw new Error(`test image ${key} exists in hack/test-images.mjs; pick a name it lacks`);
  return `${LOCAL_REGISTRY}/${REPOSITORY_PREFIX}/${key}`;
}

/**
 * What `testImage(name, tag)` must pull to: manifest (or index) digest, config digest (the
 * image id on linux/amd64), layers. Recomputed from the deterministic definitions, so it
 * needs no registry.
 */
export async function expectedTestImage(name: string, tag?: string): Promise<TestImageInfo> {
  const key = nameTag(name, tag);
  const info = (await describeTestImages(LOCAL_REGISTRY))[key];
  if (!info) throw new Error(`no test image ${key} in hack/test-images.mjs`);
  return info;
}

/** The manifest digest a reference (`host/repo:tag`) resolves to in its registry, over HTTP. */
export async function registryDigest(reference: string): Promise<string | undefined> {
  const match = /^([^/]+)\/(.+):([^:/]+)$/.exec(reference);
  if (!match) throw new Error(`${reference}: expected host/repository:tag`);
  const [, host = '', repository = '', tag = ''] = match;
  return remoteDigest(host, repository, tag);
}

/** A config fragment that sends pulls for `host` to the run's registry (the origin stays unreachable). */
export function mirrorToml(host: string): string {
  return `[registry.mirrors."${host}"]\nendpoints = ["http://${LOCAL_REGISTRY}"]\n`;
}
