/**
 * Registry configuration as nodes have it: a hosts directory (config_path) with a CA, a
 * client certificate or skip_verify per registry, proxies from the environment, and a
 * node-wide auth file. Every registry here is a docker-registry on 127.0.0.1 serving the
 * run's test images; the proxy is the test's own and records what it carries.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { LOCAL_REGISTRY, testImage } from './images.js';
import { makePki, PROXIED_NAME, serveRegistry, startProxy, type ServedRegistry, type TestPki, type TestProxy } from './registry-servers.js';

/** The test busybox image, as served by the registry at `host`. */
const busyboxAt = (host: string) => testImage('busybox').replace(LOCAL_REGISTRY, host);

/** Write `<certs.d>/<host>/hosts.toml` (and copy the PKI files it may name beside it). */
async function hostsToml(certsDir: string, host: string, text: string, pki: TestPki): Promise<void> {
  const dir = path.join(certsDir, host);
  await fs.mkdir(dir, { recursive: true });
  for (const file of [pki.caPem, pki.clientCert, pki.clientKey]) await fs.copyFile(file, path.join(dir, path.basename(file)));
  await fs.writeFile(path.join(dir, 'hosts.toml'), text);
}

async function pull(daemon: TestDaemon, ref: string, auth?: { username: string; password: string }): Promise<string> {
  const { image_ref } = await daemon.images('PullImage', { image: { image: ref }, auth: auth ?? null });
  // Gone again, so the next pull fetches everything afresh.
  await daemon.images('RemoveImage', { image: { image: image_ref } });
  return image_ref;
}

describe('registry configuration: hosts directory, proxies, auth file', () => {
  let base: string;
  let certsDir: string;
  let pki: TestPki;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    base = await tempDir('regcfg');
    certsDir = path.join(base, 'certs.d');
    await fs.mkdir(path.join(base, 'pki'));
    pki = await makePki(path.join(base, 'pki'));
  });

  afterAll(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  });

  async function registry(name: string, options: Parameters<typeof serveRegistry>[1]): Promise<ServedRegistry> {
    const served = await serveRegistry(path.join(base, name), options);
    stops.push(served.stop);
    return served;
  }

  async function daemonWith(extraToml: string, env?: Record<string, string>): Promise<TestDaemon> {
    const daemon = await startTestDaemon({ network: 'none', extraToml, env });
    stops.push(() => daemon.stop());
    return daemon;
  }

  describe('over TLS', () => {
    let tlsRegistry: ServedRegistry;
    let mtlsRegistry: ServedRegistry;
    let daemon: TestDaemon;

    beforeAll(async () => {
      tlsRegistry = await registry('tls', { tls: { cert: pki.serverCert, key: pki.serverKey } });
      mtlsRegistry = await registry('mtls', { tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caPem } });
      daemon = await daemonWith(`[registry]\nconfig_path = "${certsDir}"\n`);
    });

    it('pulls with the CA from hosts.toml, is refused without it, and pulls with skip_verify', async () => {
      const host = tlsRegistry.address;
      const ref = busyboxAt(host);
      await hostsToml(certsDir, host, `server = "https://${host}"\nca = "ca.pem"\n`, pki);
      expect(await pull(daemon, ref)).toMatch(/^sha256:/);

      // The file is read for every pull: without the CA the certificate is not trusted.
      await hostsToml(certsDir, host, `server = "https://${host}"\n`, pki);
      await expect(pull(daemon, ref)).rejects.toMatchObject({ code: grpcStatus.UNAVAILABLE, details: expect.stringMatching(/TLS: the registry's certificate is not trusted/) });

      await hostsToml(certsDir, host, `server = "https://${host}"\nskip_verify = true\n`, pki);
      expect(await pull(daemon, ref)).toMatch(/^sha256:/);
    });

    it('shows the client certificate hosts.toml names, and without one is refused', async () => {
      const host = mtlsRegistry.address;
      const ref = busyboxAt(host);
      await hostsToml(certsDir, host, `server = "https://${host}"\nca = "ca.pem"\n`, pki);
      await expect(pull(daemon, ref)).rejects.toMatchObject({ code: grpcStatus.UNAVAILABLE });

      await hostsToml(certsDir, host, `server = "https://${host}"\nca = "ca.pem"\nclient = ["client.cert", "client.key"]\n`, pki);
      expect(await pull(daemon, ref)).toMatch(/^sha256:/);
    });

    it('tries [host] entries first, and refuses a broken hosts.toml naming the file and key', async () => {
      const host = tlsRegistry.address;
      // A tag goes only to hosts that resolve; the dead first host is asked for nothing else that works.
      await hostsToml(certsDir, host, `server = "https://${host}"\nca = "ca.pem"\n[host."https://127.0.0.1:1"]\ncapabilities = ["pull", "resolve"]\n`, pki);
      expect(await pull(daemon, busyboxAt(host))).toMatch(/^sha256:/);
      expect(daemon.logs).toContain('https://127.0.0.1:1');

      await hostsToml(certsDir, host, `server = "https://${host}"\nskip_verify = "yes"\n`, pki);
      await expect(pull(daemon, busyboxAt(host))).rejects.toMatchObject({
        code: grpcStatus.FAILED_PRECONDITION,
        details: expect.stringContaining(`${path.join(certsDir, host, 'hosts.toml')}: skip_verify: must be true or false`),
      });
    });
  });

  describe('through a proxy', () => {
    let tlsRegistry: ServedRegistry;
    let proxy: TestProxy;
    const proxiedPort = () => LOCAL_REGISTRY.split(':')[1]!;

    beforeAll(async () => {
      tlsRegistry = await registry('tls-proxied', { tls: { cert: pki.serverCert, key: pki.serverKey } });
      proxy = await startProxy();
      stops.push(() => proxy.close());
      // The registries are reached by a name only the proxy resolves: a pull that works went through it.
      const tlsHost = `${PROXIED_NAME}:${tlsRegistry.address.split(':')[1]}`;
      await hostsToml(certsDir, tlsHost, `ca = "ca.pem"\n`, pki);
      await hostsToml(certsDir, `${PROXIED_NAME}:${proxiedPort()}`, `server = "http://${PROXIED_NAME}:${proxiedPort()}"\n`, pki);
    });

    it('tunnels https through HTTPS_PROXY and forwards http to HTTP_PROXY', async () => {
      const daemon = await daemonWith(`[registry]\nconfig_path = "${certsDir}"\n`, { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url, NO_PROXY: '' });
      const tlsHost = `${PROXIED_NAME}:${tlsRegistry.address.split(':')[1]}`;
      expect(await pull(daemon, busyboxAt(tlsHost))).toMatch(/^sha256:/);
      expect(proxy.requests).toContain(`CONNECT ${tlsHost}`);

      const httpHost = `${PROXIED_NAME}:${proxiedPort()}`;
      expect(await pull(daemon, busyboxAt(httpHost))).toMatch(/^sha256:/);
      expect(proxy.requests.some((r) => r.startsWith(`GET http://${httpHost}/v2/tscri-test/busybox/manifests/`))).toBe(true);

      // Loopback is never proxied.
      const before = proxy.requests.length;
      expect(await pull(daemon, testImage('busybox'))).toMatch(/^sha256:/);
      expect(proxy.requests.length).toBe(before);
    });

    it('goes direct for hosts NO_PROXY covers', async () => {
      const daemon = await daemonWith(`[registry]\nconfig_path = "${certsDir}"\n`, { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url, NO_PROXY: `localhost,.tscri-test.invalid` });
      const before = proxy.requests.length;
      // Direct, the name does not resolve.
      await expect(pull(daemon, busyboxAt(`${PROXIED_NAME}:${tlsRegistry.address.split(':')[1]}`))).rejects.toMatchObject({ code: grpcStatus.UNAVAILABLE });
      expect(proxy.requests.length).toBe(before);
    });
  });

  describe('with the node-wide auth file', () => {
    const user = { name: 'node-puller', password: 'pull-secret-1' };
    let authRegistry: ServedRegistry;
    let daemon: TestDaemon;
    let authFile: string;

    beforeAll(async () => {
      authRegistry = await registry('htpasswd', { user });
      authFile = path.join(base, 'auth.json');
      daemon = await daemonWith(`[registry]\nauth_file = "${authFile}"\n`);
    });

    it('uses it when the request brings no credentials, and the request credentials when it does', async () => {
      const ref = busyboxAt(authRegistry.address);
      await expect(pull(daemon, ref)).rejects.toMatchObject({ code: grpcStatus.FAILED_PRECONDITION });

      const auth = Buffer.from(`${user.name}:${user.password}`).toString('base64');
      await fs.writeFile(authFile, JSON.stringify({ auths: { [`http://${authRegistry.address}/v1/`]: { auth } } }), { mode: 0o600 });
      expect(await pull(daemon, ref)).toMatch(/^sha256:/);

      await expect(pull(daemon, ref, { username: user.name, password: 'wrong' })).rejects.toMatchObject({ code: grpcStatus.FAILED_PRECONDITION });
      expect(daemon.logs).not.toContain(user.password);
      expect(daemon.logs).not.toContain(auth);
    });
  });
});
