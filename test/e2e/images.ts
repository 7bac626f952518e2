/**
 * The test images of hack/test-images.mjs as the e2e tests see them: references into the local
 * registry (started and filled by global-setup.ts) and the digests they must pull to.
 */
import { remoteDigest } from '../../hack/lib/images.mjs';
import { describeTestImages, REPOSITORY_PREFIX, type TestImageInfo } from '../../hack/test-images.mjs';

export type { TestImageInfo };

export const LOCAL_REGISTRY = '127.0.0.1:5000';

/** `busybox` → `busybox:1.0`; `user:uid` and (`user`, `uid`) stay as given. */
function nameTag(name: string, tag?: string): string {
  if (tag !== undefined) return `${name}:${tag}`;
  return name.includes(':') ? name : `${name}:1.0`;
}

/** `testImage('busybox')` → `127.0.0.1:5000/tscri-test/busybox:1.0`. */
export function testImage(name: string, tag?: string): string {
  return `${LOCAL_REGISTRY}/${REPOSITORY_PREFIX}/${nameTag(name, tag)}`;
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

/** A config fragment that sends pulls for `host` to the local registry (the origin stays unreachable). */
export function mirrorToml(host: string): string {
  return `[registry.mirrors."${host}"]\nendpoints = ["http://${LOCAL_REGISTRY}"]\n`;
}
