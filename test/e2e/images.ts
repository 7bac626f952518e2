/** The test images of hack/test-images.mjs, as references the daemon pulls. */
export const LOCAL_REGISTRY = '127.0.0.1:5000';

/** `127.0.0.1:5000/tscri-test/<name>:<tag>`. */
export function testImage(name: string, tag = '1.0'): string {
  return `${LOCAL_REGISTRY}/tscri-test/${name}:${tag}`;
}

/** A mirror config that sends `host` to the local registry (the origin itself stays unreachable). */
export function mirrorToml(host: string): string {
  return `[registry.mirrors."${host}"]\nendpoints = ["http://${LOCAL_REGISTRY}"]\n`;
}
