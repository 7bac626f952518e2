/**
 * A registry inside the test process, for what the real one cannot do on demand: basic auth,
 * a bearer-token service, corrupted blobs, blobs behind redirects, hostile layers, and
 * registries that lie about sizes, send without end or stall (`hostile()`). It speaks
 * just enough of the Distribution API v2 to be pulled from, serves images built with
 * hack/lib/images.mjs, and records every request so tests can assert who was asked what.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { blobsOf, image, layer, manifestsOf, type Blob, type Built, type BuiltImage, type LayerEntry } from '../../hack/lib/images.mjs';
import { buildTestImages, REPOSITORY_PREFIX } from '../../hack/test-images.mjs';

export interface Credentials {
  username: string;
  password: string;
}

export type FakeAuth =
  | 'none'
  | { basic: Credentials }
  /** Without username, the token service hands tokens to anyone (anonymous pulls). */
  | { token: Partial<Credentials> & { service: string } }
  // The first form of these options (still used by images.test.ts).
  | { kind: 'none' }
  | ({ kind: 'basic' } & Credentials)
  | ({ kind: 'token'; service: string } & Partial<Credentials>);

export interface FakeRegistryOptions {
  auth?: FakeAuth;
  /** Blobs served with wrong bytes of the right length: only a digest check can tell. */
  corrupt?: Set<string>;
  /** Answer blob GETs with a 307 to /blobstore/<digest>, which needs no auth (like a CDN). */
  redirectBlobs?: boolean;
  /** Send each blob body in `chunks` pieces `delayMs` apart (to watch a pull in progress). */
  slowBlobs?: { chunks: number; delayMs: number };
  /** `repository:tag` → what to serve there (more with add()). */
  images?: Record<string, Built>;
}

/**
 * Ways the registry can misbehave toward one repository (set with hostile()). Endless
 * bodies are written as fast as the client reads them, until it hangs up.
 */
export type Hostility =
  /** The manifest announced with `Content-Length: 10 GiB`, then filler. */
  | 'huge-manifest'
  /** The manifest as an endless chunked body (no Content-Length). */
  | 'endless-manifest'
  /** The manifest's headers and half its body, then silence. */
  | 'stalled-manifest'
  /** The manifest request is never answered: not even headers. */
  | 'silent-manifest'
  /** The manifest answered with a 500 whose chunked error body never ends. */
  | 'huge-error'
  /** The config's headers and half its body, then silence. */
  | 'stalled-config'
  /** The config, then endless filler, chunked: longer than its descriptor says. */
  | 'long-config'
  /** Every layer announced with a Content-Length 1 MiB above its descriptor's size. */
  | 'long-layer-header'
  /** Every layer, then endless filler, chunked: longer than its descriptor says. */
  | 'long-layer'
  /** Every layer cut short: its first half, chunked, then a clean end. */
  | 'short-layer'
  /** The token service answers a scope on this repository with an endless JSON body. */
  | 'huge-token';

/** What the huge manifest announces: far beyond any cap, far beyond the machine's memory. */
export const HUGE_CONTENT_LENGTH = 10 * 1024 ** 3;
const FILLER = Buffer.alloc(64 * 1024, 'x');

export interface RecordedRequest {
  method: string;
  path: string;
  /** The query string without `?` (the token service's service and scope). */
  query: string;
  /** An Authorization header was sent. */
  hasAuthorization: boolean;
  /** It was accepted (always true without auth). */
  authorized: boolean;
}

type Auth = { kind: 'none' } | ({ kind: 'basic' } & Credentials) | ({ kind: 'token'; service: string } & Partial<Credentials>);

function normalizeAuth(auth: FakeAuth | undefined): Auth {
  if (auth === undefined || auth === 'none') return { kind: 'none' };
  if ('kind' in auth) return auth;
  if ('basic' in auth) return { kind: 'basic', ...auth.basic };
  return { kind: 'token', ...auth.token };
}

const API_PATH = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;

export class FakeRegistry {
  readonly requests: RecordedRequest[] = [];
  private readonly auth: Auth;
  /** `repository:tag` and `repository@digest` → manifest. */
  private readonly manifests = new Map<string, Blob>();
  /** repository → digest → bytes; /blobstore/ looks in all of them. */
  private readonly blobs = new Map<string, Map<string, Buffer>>();
  /** Issued bearer token → the repositories it may pull. */
  private readonly tokens = new Map<string, Set<string>>();
  /** repository → the digests of its image configs. */
  private readonly configs = new Map<string, Set<string>>();
  /** repository → how it is mistreated. */
  private readonly hostilities = new Map<string, Hostility>();
  private readonly server = http.createServer((req, res) => this.handle(req, res));

  constructor(private readonly options: FakeRegistryOptions = {}) {
    this.auth = normalizeAuth(options.auth);
    for (const [repositoryTag, item] of Object.entries(options.images ?? {})) {
      const colon = repositoryTag.lastIndexOf(':');
      this.add(repositoryTag.slice(0, colon), repositoryTag.slice(colon + 1), item);
    }
  }

  /** A registry already listening. */
  static async start(options: FakeRegistryOptions = {}): Promise<FakeRegistry> {
    return new FakeRegistry(options).listen();
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  /** `127.0.0.1:<port>`, the registry part of image references. */
  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Serve `item` as repository:tag, and each of its manifests by digest. */
  add(repository: string, tag: string, item: Built): this {
    const blobs = this.blobs.get(repository) ?? new Map<string, Buffer>();
    this.blobs.set(repository, blobs);
    for (const b of blobsOf(item)) blobs.set(b.digest, b.bytes);
    for (const m of manifestsOf(item)) this.manifests.set(`${repository}@${m.digest}`, m);
    this.manifests.set(`${repository}:${tag}`, item.manifest);
    const configs = this.configs.get(repository) ?? new Set<string>();
    this.configs.set(repository, configs);
    for (const img of item.kind === 'index' ? item.images : [item]) configs.add(img.config.digest);
    return this;
  }

  /** Mistreat `repository` from now on; undefined makes it behave again. */
  hostile(repository: string, hostility: Hostility | undefined): this {
    if (hostility) this.hostilities.set(repository, hostility);
    else this.hostilities.delete(repository);
    return this;
  }

  /** How many GETs asked for `repository`'s manifests. */
  manifestRequests(repository: string): number {
    return this.requests.filter((r) => r.method === 'GET' && r.path.startsWith(`/v2/${repository}/manifests/`)).length;
  }

  /** Serve hack/test-images.mjs's catalogue, as the local registry does (tscri-test/<name>:<tag>). */
  async addTestImages(): Promise<this> {
    for (const [nameTag, item] of await buildTestImages()) {
      const [name = '', tag = ''] = nameTag.split(':');
      this.add(`${REPOSITORY_PREFIX}/${name}`, tag, item);
    }
    return this;
  }

  /** Responses still being sent: a client that hangs up ends them. */
  private open = 0;

  get openResponses(): number {
    return this.open;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.open++;
    res.once('close', () => this.open--);
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    const [, repository, kind, reference = ''] = API_PATH.exec(url.pathname) ?? [];
    const authorized = this.isAuthorized(req.headers.authorization, repository);
    this.requests.push({ method, path: url.pathname, query: url.search.slice(1), hasAuthorization: req.headers.authorization !== undefined, authorized });

    if (url.pathname === '/token') return this.issueToken(req, url, res);
    if (method !== 'GET' && method !== 'HEAD') return sendError(res, 405, 'UNSUPPORTED', `${method} is not supported here`);
    if (url.pathname.startsWith('/blobstore/')) return this.sendBlob(req, res, undefined, url.pathname.slice('/blobstore/'.length));
    if (!url.pathname.startsWith('/v2/')) return sendError(res, 404, 'NOT_FOUND', 'not a registry path');
    if (!authorized) return this.challenge(res, repository);
    if (url.pathname === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');

    if (repository === undefined) return sendError(res, 404, 'NOT_FOUND', 'unknown endpoint');
    if (method === 'GET' && this.misbehave(res, repository, kind === 'manifests' ? 'manifest' : 'blob', reference)) return;
    if (kind === 'manifests') return this.sendManifest(req, res, repository, reference);
    if (this.options.redirectBlobs && method === 'GET') {
      return void res.writeHead(307, { location: `${this.url}/blobstore/${reference}` }).end();
    }
    this.sendBlob(req, res, repository, reference);
  }

  /** Answer a GET the hostile way configured for its repository; false to answer it normally. */
  private misbehave(res: http.ServerResponse, repository: string, kind: 'manifest' | 'blob', reference: string): boolean {
    const hostility = this.hostilities.get(repository);
    if (!hostility) return false;
    if (kind === 'manifest') {
      const key = reference.startsWith('sha256:') ? `${repository}@${reference}` : `${repository}:${reference}`;
      return this.misbehaveManifest(res, hostility, this.manifests.get(key));
    }
    const bytes = this.blobs.get(repository)?.get(reference);
    if (!bytes) return false;
    const isConfig = this.configs.get(repository)?.has(reference) ?? false;
    return isConfig ? misbehaveConfig(res, hostility, bytes) : misbehaveLayer(res, hostility, bytes);
  }

  private misbehaveManifest(res: http.ServerResponse, hostility: Hostility, manifest: Blob | undefined): boolean {
    const type = { 'content-type': manifest?.mediaType ?? 'application/vnd.oci.image.manifest.v1+json' };
    switch (hostility) {
      case 'huge-manifest':
        res.writeHead(200, { ...type, 'content-length': HUGE_CONTENT_LENGTH });
        void pourEndlessly(res);
        return true;
      case 'endless-manifest':
        res.writeHead(200, type);
        void pourEndlessly(res, Buffer.from('{"schemaVersion":2,"layers":['));
        return true;
      case 'stalled-manifest':
        if (!manifest) return false;
        res.writeHead(200, { ...type, 'content-length': manifest.size });
        res.write(manifest.bytes.subarray(0, manifest.size >> 1));
        return true;
      case 'silent-manifest':
        return true;
      case 'huge-error':
        res.writeHead(500, { 'content-type': 'application/json' });
        void pourEndlessly(res, Buffer.from('{"errors":[{"code":"UNKNOWN","message":"'));
        return true;
      default:
        return false;
    }
  }

  private sendManifest(req: http.IncomingMessage, res: http.ServerResponse, repository: string, reference: string): void {
    const key = reference.startsWith('sha256:') ? `${repository}@${reference}` : `${repository}:${reference}`;
    const manifest = this.manifests.get(key);
    if (!manifest) return sendError(res, 404, 'MANIFEST_UNKNOWN', `manifest unknown: ${key}`);
    res.writeHead(200, { 'content-type': manifest.mediaType, 'content-length': manifest.size, 'docker-content-digest': manifest.digest });
    res.end(req.method === 'HEAD' ? undefined : manifest.bytes);
  }

  /** A blob of `repository`, or (for /blobstore/) of any repository. */
  private sendBlob(req: http.IncomingMessage, res: http.ServerResponse, repository: string | undefined, digest: string): void {
    const stores = repository === undefined ? [...this.blobs.values()] : [this.blobs.get(repository)];
    const bytes = stores.map((store) => store?.get(digest)).find((b) => b !== undefined);
    if (!bytes) return sendError(res, 404, 'BLOB_UNKNOWN', `blob unknown: ${digest}`);
    const body = this.options.corrupt?.has(digest) ? corrupted(bytes) : bytes;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, 'docker-content-digest': digest });
    if (req.method === 'HEAD') return void res.end();
    if (this.options.slowBlobs) return void sendSlowly(res, body, this.options.slowBlobs);
    res.end(body);
  }

  private isAuthorized(header: string | undefined, repository: string | undefined): boolean {
    switch (this.auth.kind) {
      case 'none':
        return true;
      case 'basic':
        return header === basicAuthorization(this.auth);
      case 'token': {
        const scopes = header?.startsWith('Bearer ') ? this.tokens.get(header.slice('Bearer '.length)) : undefined;
        // /v2/ takes any valid token; a repository only one issued for it.
        return scopes !== undefined && (repository === undefined || scopes.has(repository));
      }
    }
  }

  private challenge(res: http.ServerResponse, repository: string | undefined): void {
    const header =
      this.auth.kind === 'token'
        ? `Bearer realm="${this.url}/token",service="${this.auth.service}"${repository ? `,scope="repository:${repository}:pull"` : ''}`
        : 'Basic realm="fake"';
    res.setHeader('www-authenticate', header);
    sendError(res, 401, 'UNAUTHORIZED', 'authentication required');
  }

  /**
   * The token service: the configured basic credentials (none for anonymous), the right
   * `service`, and at least one `repository:<name>:pull` scope; the token is good for those
   * repositories only.
   */
  private issueToken(req: http.IncomingMessage, url: URL, res: http.ServerResponse): void {
    if (this.auth.kind !== 'token') return sendError(res, 404, 'NOT_FOUND', 'no token service');
    const { username, password = '', service } = this.auth;
    if (username !== undefined && req.headers.authorization !== basicAuthorization({ username, password })) {
      return sendError(res, 401, 'UNAUTHORIZED', 'bad credentials for the token service');
    }
    if (url.searchParams.get('service') !== service) return sendError(res, 400, 'DENIED', `unknown service ${url.searchParams.get('service')}`);
    const repositories = url.searchParams
      .getAll('scope')
      .map((scope) => /^repository:(.+):([a-z,*]+)$/.exec(scope))
      .filter((m) => m?.[2]?.split(',').includes('pull'))
      .map((m) => m![1]!);
    if (repositories.length === 0) return sendError(res, 400, 'DENIED', 'no repository:<name>:pull scope');
    if (repositories.some((r) => this.hostilities.get(r) === 'huge-token')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      void pourEndlessly(res, Buffer.from('{"token":"'));
      return;
    }
    const token = randomBytes(16).toString('hex');
    this.tokens.set(token, new Set(repositories));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  }
}

function basicAuthorization({ username, password }: Credentials): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ errors: [{ code, message }] }));
}

async function sendSlowly(res: http.ServerResponse, body: Buffer, { chunks, delayMs }: { chunks: number; delayMs: number }): Promise<void> {
  const size = Math.ceil(body.length / Math.max(1, chunks));
  for (let at = 0; at < body.length && !res.destroyed; at += size) {
    res.write(body.subarray(at, at + size));
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
  res.end();
}

function misbehaveConfig(res: http.ServerResponse, hostility: Hostility, bytes: Buffer): boolean {
  const type = { 'content-type': 'application/octet-stream' };
  switch (hostility) {
    case 'stalled-config':
      res.writeHead(200, { ...type, 'content-length': bytes.length });
      res.write(bytes.subarray(0, bytes.length >> 1));
      return true;
    case 'long-config':
      res.writeHead(200, type);
      void pourEndlessly(res, bytes);
      return true;
    default:
      return false;
  }
}

function misbehaveLayer(res: http.ServerResponse, hostility: Hostility, bytes: Buffer): boolean {
  const type = { 'content-type': 'application/octet-stream' };
  switch (hostility) {
    case 'long-layer-header':
      res.writeHead(200, { ...type, 'content-length': bytes.length + 1024 * 1024 });
      void pourEndlessly(res, bytes);
      return true;
    case 'long-layer':
      res.writeHead(200, type);
      void pourEndlessly(res, bytes);
      return true;
    case 'short-layer':
      res.writeHead(200, type);
      res.end(bytes.subarray(0, bytes.length >> 1));
      return true;
    default:
      return false;
  }
}

/**
 * Write `first`, then filler for as long as the client keeps reading: the body of a registry
 * that never stops. Waits for 'drain' so the test process itself stays small.
 */
export async function pourEndlessly(res: http.ServerResponse, first?: Buffer): Promise<void> {
  if (first) res.write(first);
  while (!res.destroyed) {
    if (res.write(FILLER)) continue;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        res.off('drain', done).off('close', done);
        resolve();
      };
      res.on('drain', done).on('close', done);
    });
  }
}

/**
 * Same length, different bytes. For gzip the change is in the header's mtime field, so the
 * blob still decompresses to the very same tar: only the blob digest check can catch it.
 */
function corrupted(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  const isGzip = copy.length > 10 && copy[0] === 0x1f && copy[1] === 0x8b;
  const at = isGzip ? 4 : Math.floor(copy.length / 2);
  copy[at] = copy[at]! ^ 0xff;
  return copy;
}

/** Layers an unpacker must refuse, each after a harmless file so it has started writing. */
export type HostileLayer = 'dotdot' | 'symlink-parent' | 'absolute' | 'hardlink-out';

/** Where on the host the symlink-parent and absolute layers would write if followed. */
export const ESCAPE_TARGET = '/tmp/tscri-escape';

const HOSTILE_ENTRIES: Record<HostileLayer, LayerEntry[]> = {
  // Tar slip: a name that climbs out of the layer directory.
  dotdot: [{ path: '../../escape', type: 'raw', content: 'escaped\n' }],
  // A symlink to a host directory, then an entry under it: naive extraction writes through.
  'symlink-parent': [
    { path: 'link', type: 'symlink', linkname: '/tmp' },
    { path: 'link/tscri-escape', type: 'raw', content: 'escaped\n' },
  ],
  absolute: [{ path: ESCAPE_TARGET, type: 'raw', content: 'escaped\n' }],
  'hardlink-out': [{ path: 'passwd', type: 'raw', rawType: 'link', linkname: '../../../../../../../../etc/passwd' }],
};

/** A one-layer image whose layer is hostile in the given way (entries kept in order). */
export async function hostileImage(kind: HostileLayer): Promise<BuiltImage> {
  const entries: LayerEntry[] = [{ path: 'harmless', content: 'fine\n' }, ...HOSTILE_ENTRIES[kind]];
  return image({ layers: [await layer(entries, { order: 'given' })], config: { Cmd: ['/harmless'] } });
}
