/**
 * A registry in the test process, for what the real one cannot do on demand: basic auth, a
 * bearer-token service, corrupted blobs, blobs behind redirects. It serves images built with
 * hack/lib/oci.mjs and records every request.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { blobsOf, manifestsOf, type Built } from '../../hack/lib/oci.mjs';

export type FakeAuth = { kind: 'none' } | { kind: 'basic'; username: string; password: string } | { kind: 'token'; username?: string; password?: string; service: string };

export interface FakeRegistryOptions {
  auth?: FakeAuth;
  /** Blobs served with one byte flipped. */
  corrupt?: Set<string>;
  /** Answer blob GETs with a 307 to /blobstore/<digest> (no auth there, like a CDN). */
  redirectBlobs?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  authorized: boolean;
}

const TOKEN = 'tscri-test-token';

export class FakeRegistry {
  readonly requests: RecordedRequest[] = [];
  private readonly manifests = new Map<string, { bytes: Buffer; mediaType: string; digest: string }>();
  private readonly blobs = new Map<string, Buffer>();
  private readonly server = http.createServer((req, res) => this.handle(req, res));

  constructor(private readonly options: FakeRegistryOptions = {}) {}

  /** `127.0.0.1:<port>` once listening. */
  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Serve `item` as repository:tag (and each manifest by digest). */
  add(repository: string, tag: string, item: Built): void {
    for (const blob of blobsOf(item)) this.blobs.set(blob.digest, blob.bytes);
    for (const m of manifestsOf(item)) this.manifests.set(`${repository}@${m.digest}`, m);
    this.manifests.set(`${repository}:${tag}`, item.manifest);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', `http://${this.host}`);
    const authorized = this.isAuthorized(req.headers.authorization);
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, authorized });
    if (url.pathname === '/token') return this.token(req, url, res);
    if (url.pathname.startsWith('/blobstore/')) return this.sendBlob(url.pathname.slice('/blobstore/'.length), req, res);
    if (!url.pathname.startsWith('/v2/')) return void res.writeHead(404).end();
    if (!authorized) return this.challenge(url, res);
    if (url.pathname === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    const match = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!match) return void res.writeHead(404).end();
    const [, repository, kind, reference] = match as unknown as [string, string, string, string];
    if (kind === 'manifests') {
      const key = reference.includes(':') ? `${repository}@${reference}` : `${repository}:${reference}`;
      const manifest = this.manifests.get(key);
      if (!manifest) return notFound(res, 'MANIFEST_UNKNOWN');
      res.writeHead(200, { 'content-type': manifest.mediaType, 'docker-content-digest': manifest.digest, 'content-length': manifest.bytes.length });
      return void res.end(req.method === 'HEAD' ? undefined : manifest.bytes);
    }
    if (this.options.redirectBlobs) return void res.writeHead(307, { location: `/blobstore/${reference}` }).end();
    this.sendBlob(reference, req, res);
  }

  private sendBlob(digest: string, req: http.IncomingMessage, res: http.ServerResponse): void {
    const blob = this.blobs.get(digest);
    if (!blob) return notFound(res, 'BLOB_UNKNOWN');
    const body = this.options.corrupt?.has(digest) ? flipOneByte(blob) : blob;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, 'docker-content-digest': digest });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private isAuthorized(header: string | undefined): boolean {
    const auth = this.options.auth ?? { kind: 'none' };
    if (auth.kind === 'none') return true;
    if (auth.kind === 'basic') return header === basic(auth.username, auth.password);
    return header === `Bearer ${TOKEN}`;
  }

  private challenge(url: URL, res: http.ServerResponse): void {
    const auth = this.options.auth!;
    const repository = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(url.pathname)?.[1] ?? '';
    const header =
      auth.kind === 'basic'
        ? 'Basic realm="fake"'
        : `Bearer realm="http://${this.host}/token",service="${(auth as { service: string }).service}",scope="repository:${repository}:pull"`;
    res.writeHead(401, { 'www-authenticate': header, 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
  }

  /** The token service: checks the credentials and the service and scope asked for. */
  private token(req: http.IncomingMessage, url: URL, res: http.ServerResponse): void {
    const auth = this.options.auth;
    if (auth?.kind !== 'token') return void res.writeHead(404).end();
    const credentialsOk = auth.username === undefined || req.headers.authorization === basic(auth.username, auth.password ?? '');
    const scopeOk = /^repository:.+:pull$/.test(url.searchParams.get('scope') ?? '');
    if (!credentialsOk || url.searchParams.get('service') !== auth.service || !scopeOk) {
      return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"DENIED"}]}');
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: TOKEN, access_token: TOKEN, expires_in: 300 }));
  }
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

function notFound(res: http.ServerResponse, code: string): void {
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ errors: [{ code, message: 'not found' }] }));
}

/** Same length, different content: only a digest check can tell. */
function flipOneByte(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  const at = Math.floor(copy.length / 2);
  copy[at] = copy[at]! ^ 0xff;
  return copy;
}
