/**
 * Registries as they are met in the field, for the registry configuration tests: served over
 * TLS with a CA the test makes (and a client certificate required, if asked), or behind
 * htpasswd authentication, plus a recording HTTP proxy. Each registry is Debian's
 * docker-registry serving the storage of the run's own registry read-only, so it holds every
 * test image without a push.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { inject } from 'vitest';
import { freePort } from '../../hack/lib/registry.mjs';

/** A name no resolver knows: only the test proxy can reach it (it maps it to 127.0.0.1). */
export const PROXIED_NAME = 'registry.tscri-test.invalid';

export interface TestPki {
  dir: string;
  caPem: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A CA, a server certificate for 127.0.0.1, localhost and PROXIED_NAME, and a client certificate. */
export async function makePki(dir: string): Promise<TestPki> {
  const at = (name: string) => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const openssl = (...args: string[]) => execa('openssl', args, { cwd: dir });
  await openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=tscri test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const issue = async (name: string, extensions: string) => {
    await fs.writeFile(at(`${name}.ext`), extensions);
    await openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=tscri test ${name}`);
    await openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.cert`, '-days', '2', '-extfile', `${name}.ext`);
  };
  await issue('server', `subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:${PROXIED_NAME}\nextendedKeyUsage=serverAuth\n`);
  await issue('client', 'extendedKeyUsage=clientAuth\n');
  return { dir, caPem: at('ca.pem'), serverCert: at('server.cert'), serverKey: at('server.key'), clientCert: at('client.cert'), clientKey: at('client.key') };
}

export interface RegistryOptions {
  tls?: { cert: string; key: string; clientCa?: string };
  /** htpasswd authentication for this user and password (bcrypt, made with perl's crypt). */
  user?: { name: string; password: string };
}

export interface ServedRegistry {
  /** `127.0.0.1:<port>` */
  address: string;
  stop(): Promise<void>;
}

/** A docker-registry in `dir` serving the run's images, as `options` says. */
export async function serveRegistry(dir: string, options: RegistryOptions): Promise<ServedRegistry> {
  await fs.mkdir(dir, { recursive: true });
  const address = `127.0.0.1:${await freePort()}`;
  const lines = ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${path.join(inject('runDir'), 'registry', 'data')}`];
  lines.push('http:', `  addr: ${address}`, '  secret: tscri-test-registry');
  if (options.tls) {
    lines.push('  tls:', `    certificate: ${options.tls.cert}`, `    key: ${options.tls.key}`);
    if (options.tls.clientCa) lines.push('    clientcas:', `      - ${options.tls.clientCa}`);
  }
  if (options.user) {
    const htpasswd = path.join(dir, 'htpasswd');
    await fs.writeFile(htpasswd, `${options.user.name}:${await bcrypt(options.user.password)}\n`);
    lines.push('auth:', '  htpasswd:', '    realm: tscri-test', `    path: ${htpasswd}`);
  }
  const config = path.join(dir, 'config.yml');
  await fs.writeFile(config, `${lines.join('\n')}\n`);
  const log = await fs.open(path.join(dir, 'registry.log'), 'a');
  const child = spawn('docker-registry', ['serve', config], { detached: true, stdio: ['ignore', log.fd, log.fd] });
  await log.close();
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
  };
  const [host, port] = address.split(':') as [string, string];
  const deadline = Date.now() + 10_000;
  while (!(await listening(host, Number(port)))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`docker-registry did not listen on ${address}:\n${await fs.readFile(path.join(dir, 'registry.log'), 'utf8')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { address, stop };
}

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A bcrypt hash as htpasswd -B writes it, through libxcrypt (perl's crypt). */
async function bcrypt(password: string): Promise<string> {
  const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const salt = Array.from({ length: 22 }, () => alphabet[Math.floor(Math.random() * 64)]).join('');
  const { stdout } = await execa('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, `$2y$05$${salt}`]);
  if (!stdout.startsWith('$2y$05$')) throw new Error(`perl's crypt made no bcrypt hash: ${stdout}`);
  return stdout;
}

/** A forward and CONNECT proxy on 127.0.0.1 that records what it is asked for. */
export interface TestProxy {
  url: string;
  /** `CONNECT host:port` or `GET http://…`, in order. */
  requests: string[];
  close(): Promise<void>;
}

export async function startProxy(): Promise<TestProxy> {
  const requests: string[] = [];
  const target = (host: string) => (host === PROXIED_NAME ? '127.0.0.1' : host);
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/');
    const upstream = http.request(
      { host: target(url.hostname), port: url.port || 80, path: `${url.pathname}${url.search}`, method: req.method, headers: { ...req.headers, host: url.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.once('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    requests.push(`CONNECT ${req.url}`);
    const [host = '', port = '443'] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), target(host), () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.once('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
