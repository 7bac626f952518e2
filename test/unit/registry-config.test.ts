import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseReference } from '../../src/image/reference.js';
import { authKey, AuthFile, parseAuthFile } from '../../src/image/registry/auth-file.js';
import { RegistrySession } from '../../src/image/registry/client.js';
import { endpointsFor, RegistryHosts } from '../../src/image/registry/endpoints.js';
import { loadHostsFor, tlsMaterialOf } from '../../src/image/registry/hosts-dir.js';
import { parseHostsFile } from '../../src/image/registry/hosts-file.js';
import { bypassesProxy, compileNoProxy, proxyEnvFrom, proxyFor } from '../../src/image/registry/proxy-env.js';
import { RegistryTransport } from '../../src/image/registry/transport.js';
import { sha256Digest } from '../../src/image/registry/verify.js';
import { silentLogger } from '../../src/log.js';

const FILE = '/etc/tscri/certs.d/registry.example/hosts.toml';
const DIR = path.dirname(FILE);
const parse = (text: string) => parseHostsFile(text, FILE, DIR);
const silent = { debug: () => {}, error: () => {}, info: () => {}, warn: () => {} } as never;

describe('reading a hosts.toml', () => {
  it('keeps [host] tables in file order, with their API roots, before the server', () => {
    const hosts = parse(`
server = "https://upstream.example:8443"
ca = "upstream-ca.pem"
[host."https://z-mirror.example"]
capabilities = ["pull"]
[host."a-mirror.example:5000/cache"]
capabilities = ["pull", "resolve"]
[host."http://raw.example/api/v2/"]
[host."https://odd.example/custom/root"]
override_path = true
`);
    expect(hosts.hosts.map((h) => [h.url, h.apiRoot, h.capabilities])).toEqual([
      ['https://z-mirror.example', 'https://z-mirror.example/v2', ['pull']],
      ['https://a-mirror.example:5000/cache', 'https://a-mirror.example:5000/cache/v2', ['pull', 'resolve']],
      ['http://raw.example/api/v2', 'http://raw.example/api/v2', ['pull', 'resolve', 'push']],
      ['https://odd.example/custom/root', 'https://odd.example/custom/root', ['pull', 'resolve', 'push']],
    ]);
    expect(hosts.server).toMatchObject({ url: 'https://upstream.example:8443', apiRoot: 'https://upstream.example:8443/v2', ca: [`${DIR}/upstream-ca.pem`] });
  });

  it('takes ca and client in every accepted shape, relative to the host directory', () => {
    const { hosts } = parse(`
[host."https://m1"]
ca = ["/etc/ssl/a.pem", "b.pem"]
client = "both.pem"
[host."https://m2"]
client = ["client.cert", "client.key"]
[host."https://m3"]
client = [["one.cert", "one.key"], ["two.pem", ""], "three.pem"]
skip_verify = true
header = { "X-Token" = "abc", "x-multi" = ["1", "2"] }
dial_timeout = "1m30s"
`);
    expect(hosts[0]).toMatchObject({ ca: ['/etc/ssl/a.pem', `${DIR}/b.pem`], client: [{ cert: `${DIR}/both.pem` }] });
    expect(hosts[1]!.client).toEqual([{ cert: `${DIR}/client.cert`, key: `${DIR}/client.key` }]);
    expect(hosts[2]).toMatchObject({
      client: [{ cert: `${DIR}/one.cert`, key: `${DIR}/one.key` }, { cert: `${DIR}/two.pem` }, { cert: `${DIR}/three.pem` }],
      skipVerify: true,
      headers: { 'x-token': ['abc'], 'x-multi': ['1', '2'] },
      dialTimeoutMs: 90_000,
    });
  });

  it.each([
    ['server = 5', /hosts\.toml: server: must be a non-empty string/],
    ['skip_verify = "yes"', /hosts\.toml: skip_verify: must be true or false/],
    ['[host."https://m"]\ncapabilities = ["pull", "fly"]', /host\."https:\/\/m"\.capabilities: unknown capability "fly"/],
    ['[host."https://m"]\nca = 3', /host\."https:\/\/m"\.ca: must be a string or a list/],
    ['[host."https://m"]\nclient = [["a"]]', /client\[0\]: must be a path or a \[cert, key\] pair/],
    ['[host."https://m"]\nheader = { "bad name" = "x" }', /header\."bad name": is not a valid header name/],
    ['[host."https://m"]\nheader = { "x" = "a\\nb" }', /must be one line/],
    ['[host."ftp://m"]', /must be http:\/\/ or https:\/\//],
    ['[host."https://user:pw@m"]', /no credentials/],
    ['mirrors = []', /mirrors: unknown key/],
    ['[host."https://m"]\nsurprise = 1', /host\."https:\/\/m"\.surprise: unknown key/],
    ['ca = "../../../etc/shadow"', /ca: "..\/..\/..\/etc\/shadow": a relative path must not climb out/],
    ['dial_timeout = "soon"', /dial_timeout: must be a duration/],
    ['server = [', /not valid TOML/],
  ])('refuses %j naming the file and the key', (text, message) => {
    expect(() => parse(text)).toThrow(message);
    expect(() => parse(text)).toThrow(FILE);
  });
});

describe('combining hosts.toml, mirrors and the server', () => {
  const mirrors = { 'registry.example': { endpoints: ['http://mirror.local:5000/'] } };

  it('puts hosts.toml hosts first, then the configured mirrors, then the server', () => {
    const hosts = parse('server = "https://upstream.example"\n[host."https://h1"]\ncapabilities = ["pull"]\n[host."https://push-only"]\ncapabilities = ["push"]\n');
    const endpoints = endpointsFor('registry.example', mirrors, hosts);
    expect(endpoints.map((e) => [e.url, e.isMirror, e.resolves])).toEqual([
      ['https://h1', true, false],
      ['http://mirror.local:5000', true, undefined],
      ['https://upstream.example', false, true],
    ]);
  });

  it('defaults the server to the registry, https unless loopback without TLS settings', () => {
    expect(endpointsFor('registry.example', {}, parse('')).at(-1)).toMatchObject({ url: 'https://registry.example', apiRoot: 'https://registry.example/v2' });
    expect(endpointsFor('docker.io', {}, parse('')).at(-1)!.url).toBe('https://registry-1.docker.io');
    expect(endpointsFor('127.0.0.1:5000', {}, parse('')).at(-1)!.url).toBe('http://127.0.0.1:5000');
    expect(endpointsFor('127.0.0.1:5000', {}, parse('ca = "ca.pem"')).at(-1)!.url).toBe('https://127.0.0.1:5000');
    expect(endpointsFor('127.0.0.1:5000', {}).map((e) => e.url)).toEqual(['http://127.0.0.1:5000']);
  });

  it('drops a server that cannot pull', () => {
    expect(endpointsFor('registry.example', mirrors, parse('capabilities = ["push"]')).map((e) => e.url)).toEqual(['http://mirror.local:5000']);
  });
});

describe('the hosts directory', () => {
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-certsd-'));
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('finds host_port_, then host:port, then _default; nothing when the directory is missing', async () => {
    await fs.mkdir(path.join(root, 'reg.example:5000'));
    await fs.writeFile(path.join(root, 'reg.example:5000', 'hosts.toml'), 'server = "https://colon"\n');
    await fs.mkdir(path.join(root, '_default'));
    await fs.writeFile(path.join(root, '_default', 'hosts.toml'), 'server = "https://fallback"\n');
    expect((await loadHostsFor(root, 'reg.example:5000'))!.server.url).toBe('https://colon');
    await fs.mkdir(path.join(root, 'reg.example_5000_'));
    await fs.writeFile(path.join(root, 'reg.example_5000_', 'hosts.toml'), 'server = "https://underscore"\n');
    expect((await loadHostsFor(root, 'reg.example:5000'))!.server.url).toBe('https://underscore');
    expect((await loadHostsFor(root, 'other.example'))!.server.url).toBe('https://fallback');
    expect(await loadHostsFor(path.join(root, 'missing'), 'reg.example')).toBeUndefined();
    expect(await loadHostsFor('', 'reg.example')).toBeUndefined();
  });

  it('reads Docker certificate files when there is no hosts.toml', async () => {
    const dir = path.join(root, 'reg.example');
    await fs.mkdir(dir);
    for (const name of ['ca.crt', 'client.cert', 'client.key']) await fs.writeFile(path.join(dir, name), `-----BEGIN ${name}-----\n`);
    const hosts = (await loadHostsFor(root, 'reg.example'))!;
    expect(hosts.server).toMatchObject({ ca: [`${dir}/ca.crt`], client: [{ cert: `${dir}/client.cert`, key: `${dir}/client.key` }] });
    const tls = (await tlsMaterialOf(hosts.server, root, hosts.file))!;
    expect(tls).toMatchObject({ ca: ['-----BEGIN ca.crt-----\n'], certs: [{ cert: '-----BEGIN client.cert-----\n', key: '-----BEGIN client.key-----\n' }], skipVerify: false });
  });

  it('refuses a hosts.toml or a certificate that is a symlink out of the directory, or too large', async () => {
    const dir = path.join(root, 'reg.example');
    await fs.mkdir(dir);
    const outside = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-outside-'));
    try {
      await fs.writeFile(path.join(outside, 'secret.pem'), '-----BEGIN SECRET-----\n');
      await fs.symlink(path.join(outside, 'secret.pem'), path.join(dir, 'ca.pem'));
      await fs.writeFile(path.join(dir, 'hosts.toml'), 'ca = "ca.pem"\n');
      const hosts = (await loadHostsFor(root, 'reg.example'))!;
      await expect(tlsMaterialOf(hosts.server, root, hosts.file)).rejects.toThrow(/hosts\.toml: ca: .*symlink/);
      await fs.rm(path.join(dir, 'hosts.toml'));
      await fs.symlink(path.join(outside, 'secret.pem'), path.join(dir, 'hosts.toml'));
      await expect(loadHostsFor(root, 'reg.example')).rejects.toThrow(/hosts\.toml.*symlink/);
      await fs.rm(path.join(dir, 'hosts.toml'));
      await fs.writeFile(path.join(dir, 'hosts.toml'), `# ${'x'.repeat(70_000)}\n`);
      await expect(loadHostsFor(root, 'reg.example')).rejects.toThrow(/more than 65536/);
    } finally {
      await fs.rm(outside, { recursive: true, force: true });
    }
  });

  it('gives each endpoint its TLS material and its auth-file credentials', async () => {
    const dir = path.join(root, 'reg.example');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n');
    await fs.writeFile(path.join(dir, 'hosts.toml'), 'ca = "ca.pem"\n[host."https://mirror.example"]\nskip_verify = true\n');
    const authFile = path.join(root, 'auth.json');
    const auth = (user: string) => ({ auth: Buffer.from(`${user}:pw`).toString('base64') });
    await fs.writeFile(authFile, JSON.stringify({ auths: { 'https://reg.example/v1/': auth('server'), 'mirror.example': auth('mirror') } }));
    const hosts = new RegistryHosts(() => ({ mirrors: {}, configPath: root, authFile }));
    const endpoints = await hosts.endpointsFor('reg.example', silent);
    expect(endpoints.map((e) => [e.url, e.tls?.skipVerify, e.tls?.ca.length, e.credentials?.username])).toEqual([
      ['https://mirror.example', true, 0, 'mirror'],
      ['https://reg.example', false, 1, 'server'],
    ]);
    await fs.writeFile(path.join(dir, 'hosts.toml'), 'skip_verify = 1\n');
    await expect(hosts.endpointsFor('reg.example', silent)).rejects.toMatchObject({ code: 'FailedPrecondition', message: expect.stringContaining('skip_verify') });
  });
});

describe('NO_PROXY and the proxy variables', () => {
  const env = proxyEnvFrom({ HTTPS_PROXY: 'proxy.corp:3128', http_proxy: 'http://user:pw@proxy.corp:8080', NO_PROXY: 'internal.example, .svc, 10.0.0.0/8, 192.168.1.5, reg.example:5000, [fd00::1]:443' });
  const via = (url: string) => proxyFor(new URL(url), env);

  it('chooses the proxy by scheme, upper case first, adding http:// when missing', () => {
    expect(via('https://quay.io/v2/')).toBe('http://proxy.corp:3128/');
    expect(via('http://quay.io/v2/')).toBe('http://user:pw@proxy.corp:8080/');
    expect(proxyEnvFrom({ HTTPS_PROXY: 'http://upper:1', https_proxy: 'http://lower:1' }).https).toBe('http://upper:1/');
    const socks = proxyEnvFrom({ HTTPS_PROXY: 'socks5://s:1' });
    expect(socks.https).toBeUndefined();
    expect(socks.problems).toEqual([expect.stringContaining('socks5')]);
  });

  it('matches domains, subdomains, IPs, CIDRs and ports, and never proxies loopback', () => {
    expect(via('https://internal.example/')).toBeUndefined();
    expect(via('https://a.internal.example/')).toBeUndefined();
    expect(via('https://notinternal.example/')).toBeDefined();
    expect(via('https://svc/')).toBeDefined();
    expect(via('https://x.svc/')).toBeUndefined();
    expect(via('https://10.2.3.4/')).toBeUndefined();
    expect(via('https://11.2.3.4/')).toBeDefined();
    expect(via('https://192.168.1.5:8443/')).toBeUndefined();
    expect(via('https://reg.example:5000/')).toBeUndefined();
    expect(via('https://reg.example/')).toBeDefined();
    expect(via('https://[fd00::1]/')).toBeUndefined();
    expect(via('https://[fd00::1]:444/')).toBeDefined();
    for (const url of ['https://localhost:5000/', 'https://127.0.0.1:5000/', 'http://127.9.9.9/', 'https://[::1]/']) expect(via(url)).toBeUndefined();
  });

  it('treats * as everything and *.domain as its subdomains', () => {
    expect(bypassesProxy('anything.example', '443', compileNoProxy('*'))).toBe(true);
    expect(bypassesProxy('a.corp.example', '443', compileNoProxy('*.corp.example'))).toBe(true);
    expect(bypassesProxy('corp.example', '443', compileNoProxy('*.corp.example'))).toBe(false);
    expect(bypassesProxy('corp.example', '443', compileNoProxy(''))).toBe(false);
  });

  it('gives one dispatcher per TLS and proxy combination, none when neither applies', async () => {
    const transport = new RegistryTransport(env);
    const tls = { ca: [], certs: [], skipVerify: true };
    expect(transport.dispatcherFor('https://127.0.0.1:5000/v2/', undefined)).toBeUndefined();
    const direct = transport.dispatcherFor('https://127.0.0.1:5000/v2/', tls);
    expect(direct).toBeDefined();
    expect(transport.dispatcherFor('https://127.0.0.1:5000/v2/x', { ...tls })).toBe(direct);
    const proxied = transport.dispatcherFor('https://quay.io/v2/', undefined);
    expect(proxied).toBeDefined();
    expect(proxied).not.toBe(direct);
    await transport.close();
  });
});

describe('the auth file', () => {
  const b64 = (text: string) => Buffer.from(text).toString('base64');

  it('reads auth, username and password, and tokens, under normalised keys', () => {
    const entries = parseAuthFile(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hub:secret:with:colons') },
          'Registry.Example:5000': { username: 'u', password: 'p', email: 'ignored@example' },
          'https://token.example/v2/': { identitytoken: 'refresh' },
          'empty.example': {},
        },
        credsStore: 'desktop',
      }),
      '/etc/auth.json',
    );
    expect(entries.get('docker.io')).toEqual({ username: 'hub', password: 'secret:with:colons' });
    expect(entries.get(authKey('registry.example:5000'))).toEqual({ username: 'u', password: 'p' });
    expect(entries.get(authKey('token.example'))).toEqual({ identityToken: 'refresh' });
    expect(entries.has('empty.example')).toBe(false);
    for (const alias of ['index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/', 'docker.io']) expect(authKey(alias)).toBe('docker.io');
  });

  it.each([
    ['{', /not valid JSON/],
    ['[]', /must be a JSON object/],
    ['{"auths": []}', /"auths" must be an object/],
    ['{"auths": {"r.example": "x"}}', /auths\."r\.example": must be an object/],
    ['{"auths": {"r.example": {"auth": 5}}}', /"auth" must be a string/],
    [`{"auths": {"r.example": {"auth": "${b64('nocolon-secret')}"}}}`, /base64 of "username:password"/],
  ])('refuses %s without quoting a secret', (text, message) => {
    expect(() => parseAuthFile(text, '/etc/auth.json')).toThrow(message);
    try {
      parseAuthFile(text, '/etc/auth.json');
    } catch (err) {
      expect((err as Error).message).not.toContain('secret');
      expect((err as Error).message).toContain('/etc/auth.json');
    }
  });

  it('reads the file again when it changes, and treats a missing file as empty', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-auth-'));
    try {
      const file = new AuthFile(path.join(dir, 'auth.json'));
      expect((await file.entries()).size).toBe(0);
      await fs.writeFile(file.file, JSON.stringify({ auths: { 'a.example': { username: 'a', password: '1' } } }));
      expect((await file.entries()).get('a.example')).toEqual({ username: 'a', password: '1' });
      await fs.writeFile(file.file, JSON.stringify({ auths: { 'b.example': { username: 'bb', password: '22' } } }));
      expect([...(await file.entries()).keys()]).toEqual(['b.example']);
      await fs.writeFile(file.file, 'x'.repeat(1024 * 1024 + 1));
      await expect(file.entries()).rejects.toThrow(/more than 1048576/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a session over configured endpoints', () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });

  /** A registry that serves `blob` by digest, the manifest by tag only if `tags`, and records requests. */
  async function serve(blob: Buffer, options: { tags: boolean; user?: string }): Promise<{ url: string; seen: string[] }> {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.url} ${req.headers['x-node'] ?? ''} ${req.headers.authorization ?? ''}`.trim());
      if (options.user && req.headers.authorization !== `Basic ${Buffer.from(options.user).toString('base64')}`) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' }).end();
      } else if (req.url?.includes('/blobs/')) res.writeHead(200, { 'content-length': blob.length }).end(blob);
      else if (options.tags && req.url?.endsWith('/manifests/1.0')) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(404).end();
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
  }

  it('resolves tags only where allowed, takes content from digest-only hosts first, and sends their headers and credentials', async () => {
    const blob = Buffer.from('layer bytes');
    const descriptor = { digest: sha256Digest(blob), size: blob.length };
    const digestOnly = await serve(blob, { tags: true, user: 'mirror:pw' });
    const server = await serve(blob, { tags: true });
    const session = new RegistrySession(
      parseReference('registry.example/app:1.0'),
      [
        { url: digestOnly.url, isMirror: true, resolves: false, headers: { 'x-node': ['n1'] }, credentials: { username: 'mirror', password: 'pw' } },
        { url: server.url, isMirror: false },
      ],
      { username: 'request', password: 'secret' },
      silentLogger(),
    );
    await session.manifest('1.0');
    expect(digestOnly.seen).toEqual([]);
    expect(session.endpoint?.url).toBe(server.url);
    expect((await session.blobBytes(descriptor)).equals(blob)).toBe(true);
    expect(digestOnly.seen).toEqual([`/v2/app/blobs/${descriptor.digest} n1`, `/v2/app/blobs/${descriptor.digest} n1 Basic ${Buffer.from('mirror:pw').toString('base64')}`]);
    expect(server.seen).toEqual(['/v2/app/manifests/1.0']);
  });

  it('fails plainly when no host may resolve a tag', async () => {
    const session = new RegistrySession(parseReference('registry.example/app:1.0'), [{ url: 'http://127.0.0.1:1', isMirror: true, resolves: false }], undefined, silentLogger());
    await expect(session.manifest('1.0')).rejects.toMatchObject({ code: 'FailedPrecondition', message: expect.stringContaining('no configured host may resolve a tag') });
  });
});
