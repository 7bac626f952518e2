import { Readable, Transform, type TransformCallback } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Logger } from 'pino';
import type { RegistryMirror } from '../../config/config.js';
import { InternalError, NotFoundError, TscriError, UnavailableError, messageOf } from '../../errors.js';
import { TSCRI_VERSION } from '../../version.js';
import { apiHostOf, type ImageReference } from '../reference.js';
import { basicAuthorization, parseChallenges, type Challenge, type Credentials } from './auth.js';
import { MANIFEST_ACCEPT } from './manifest.js';
import { sha256Digest } from './verify.js';

/** One place an image can be fetched from: a mirror or the registry itself. */
export interface Endpoint {
  /** Base URL without trailing slash; API paths start with /v2/. */
  url: string;
  isMirror: boolean;
}

/** How long to wait for a registry's response headers (bodies stream without a deadline). */
const RESPONSE_TIMEOUT_MS = 30_000;
/** A body that delivers nothing for this long is abandoned. */
const BODY_IDLE_TIMEOUT_MS = 60_000;
const USER_AGENT = `tscri/${TSCRI_VERSION}`;

/**
 * Where to fetch an image from: the configured mirrors of its registry in order, then the
 * registry itself. The registry is reached over https, except loopback registries, which
 * (as Docker treats them) are plain http; mirrors use the scheme they are configured with.
 */
export function endpointsFor(domain: string, mirrors: Record<string, RegistryMirror>): Endpoint[] {
  const configured = (mirrors[domain]?.endpoints ?? []).map((url) => ({ url: url.replace(/\/+$/, ''), isMirror: true }));
  const host = apiHostOf(domain);
  return [...configured, { url: `${isLoopback(host) ? 'http' : 'https'}://${host}`, isMirror: false }];
}

function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/**
 * One pull's conversation with a registry: the endpoint that answered, the credentials, and
 * the bearer tokens obtained on the way. Credentials from the request go only to the
 * registry itself (and its token service), never to a mirror.
 */
export class RegistrySession {
  private current: Endpoint | undefined;
  private readonly tokens = new Map<string, string>();

  constructor(
    private readonly ref: ImageReference,
    private readonly endpoints: Endpoint[],
    private readonly credentials: Credentials | undefined,
    private readonly log: Logger,
    private readonly signal?: AbortSignal,
  ) {}

  /** The endpoint that served the first manifest. */
  get endpoint(): Endpoint | undefined {
    return this.current;
  }

  /** Fetch a manifest by tag or digest, trying each endpoint in order. */
  async manifest(tagOrDigest: string): Promise<FetchedManifest> {
    return this.tryEndpoints(`manifest ${tagOrDigest}`, async (endpoint) => {
      const response = await this.request(endpoint, `manifests/${tagOrDigest}`, { accept: MANIFEST_ACCEPT });
      const bytes = Buffer.from(await response.arrayBuffer());
      const digest = sha256Digest(bytes);
      if (tagOrDigest.includes(':') && tagOrDigest !== digest) {
        throw new InternalError(`manifest ${tagOrDigest} from ${endpoint.url} hashes to ${digest}`);
      }
      return { bytes, mediaType: response.headers.get('content-type') ?? '', digest };
    });
  }

  /** Open a blob's body as a stream (verification is the caller's, while it consumes it). */
  async blob(digest: string): Promise<Readable> {
    return this.tryEndpoints(`blob ${digest}`, async (endpoint) => {
      const response = await this.request(endpoint, `blobs/${digest}`, {});
      if (!response.body) throw new InternalError(`empty body for blob ${digest}`);
      return withIdleTimeout(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), BODY_IDLE_TIMEOUT_MS);
    });
  }

  /** Read a small blob (config) whole. */
  async blobBytes(digest: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.blob(digest)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /**
   * Run `attempt` against the endpoint that already answered (if any) and then the others in
   * order; the first success wins. All failing: NotFound if every endpoint said 404.
   */
  private async tryEndpoints<T>(what: string, attempt: (endpoint: Endpoint) => Promise<T>): Promise<T> {
    const order = this.current ? [this.current, ...this.endpoints.filter((e) => e !== this.current)] : this.endpoints;
    const failures: string[] = [];
    let allNotFound = true;
    for (const endpoint of order) {
      try {
        const result = await attempt(endpoint);
        this.current ??= endpoint;
        return result;
      } catch (err) {
        if (this.signal?.aborted) throw err;
        allNotFound &&= err instanceof NotFoundError;
        failures.push(`${endpoint.url}: ${messageOf(err)}`);
        this.log.info({ endpoint: endpoint.url, err: messageOf(err) }, `${what}: endpoint failed, trying the next`);
      }
    }
    const message = `cannot fetch ${what} of ${this.ref.domain}/${this.ref.path}: ${failures.join('; ')}`;
    throw allNotFound ? new NotFoundError(message) : new UnavailableError(message);
  }

  /** GET /v2/<path>/<suffix>, answering an authentication challenge once. */
  private async request(endpoint: Endpoint, suffix: string, headers: { accept?: string }): Promise<Response> {
    const url = `${endpoint.url}/v2/${this.ref.path}/${suffix}`;
    const base: Record<string, string> = { 'user-agent': USER_AGENT };
    if (headers.accept) base.accept = headers.accept;
    const cached = this.tokens.get(endpoint.url);
    let response = await this.fetch(url, cached ? { ...base, authorization: cached } : base);
    if (response.status === 401) {
      await response.body?.cancel();
      const authorization = await this.authorize(endpoint, parseChallenges(response.headers.get('www-authenticate')));
      if (authorization) {
        this.tokens.set(endpoint.url, authorization);
        response = await this.fetch(url, { ...base, authorization });
      }
    }
    if (response.ok) return response;
    const body = await response.text().catch(() => '');
    const detail = `${response.status} ${response.statusText}${registryErrors(body)}`;
    if (response.status === 404) throw new NotFoundError(`${suffix}: ${detail}`);
    if (response.status === 401 || response.status === 403) throw new TscriError('FailedPrecondition', `${suffix}: ${detail}: access denied`);
    throw new UnavailableError(`${suffix}: ${detail}`);
  }

  /** The Authorization header answering a challenge, or undefined if it cannot be answered. */
  private async authorize(endpoint: Endpoint, challenges: Challenge[]): Promise<string | undefined> {
    const credentials = endpoint.isMirror ? undefined : this.credentials;
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      if (credentials?.registryToken) return `Bearer ${credentials.registryToken}`;
      return `Bearer ${await this.fetchToken(bearer, credentials)}`;
    }
    if (challenges.some((c) => c.scheme === 'basic')) return basicAuthorization(credentials);
    return undefined;
  }

  /** The token flow: ask the challenge's realm for a pull token for this repository. */
  private async fetchToken(challenge: Challenge, credentials: Credentials | undefined): Promise<string> {
    const realm = challenge.params.realm;
    if (!realm) throw new InternalError('bearer challenge without a realm');
    const scope = challenge.params.scope || `repository:${this.ref.path}:pull`;
    let response: Response;
    if (credentials?.identityToken) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: credentials.identityToken,
        service: challenge.params.service ?? '',
        scope,
        client_id: 'tscri',
      });
      response = await this.fetch(realm, { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': USER_AGENT }, form.toString());
    } else {
      const url = new URL(realm);
      if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
      url.searchParams.set('scope', scope);
      const headers: Record<string, string> = { 'user-agent': USER_AGENT };
      const basic = basicAuthorization(credentials);
      if (basic) headers.authorization = basic;
      response = await this.fetch(url.toString(), headers);
    }
    if (!response.ok) {
      throw new TscriError('FailedPrecondition', `token request to ${realm} failed: ${response.status} ${response.statusText}`);
    }
    const body = (await response.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new InternalError(`token response from ${realm} has no token`);
    return token;
  }

  /** fetch with a deadline on the response headers only, and the pull's abort signal. */
  private async fetch(url: string, headers: Record<string, string>, body?: string): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`no response within ${RESPONSE_TIMEOUT_MS} ms`)), RESPONSE_TIMEOUT_MS);
    const onAbort = (): void => controller.abort(this.signal?.reason);
    this.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await fetch(url, { method: body === undefined ? 'GET' : 'POST', headers, body, redirect: 'follow', signal: controller.signal });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      throw new UnavailableError(`${url}: ${messageOf(cause ?? err)}`);
    } finally {
      clearTimeout(timer);
      this.signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** The `errors` array of a registry error body, as text. */
function registryErrors(body: string): string {
  try {
    const parsed = JSON.parse(body) as { errors?: Array<{ code?: string; message?: string }> };
    const errors = parsed.errors?.map((e) => [e.code, e.message].filter(Boolean).join(': ')).filter(Boolean);
    return errors && errors.length > 0 ? ` (${errors.join('; ')})` : '';
  } catch {
    return '';
  }
}

/**
 * The stream piped through a guard that fails it after `ms` without data, so a stalled
 * connection cannot hang a pull. Errors and early destruction travel both ways.
 */
function withIdleTimeout(source: Readable, ms: number): Readable {
  const guard = new IdleGuard(ms);
  source.on('error', (err) => guard.destroy(err));
  guard.on('close', () => source.destroy());
  return source.pipe(guard);
}

class IdleGuard extends Transform {
  private timer: NodeJS.Timeout;

  constructor(private readonly ms: number) {
    super();
    this.timer = this.arm();
  }

  private arm(): NodeJS.Timeout {
    return setTimeout(() => this.destroy(new UnavailableError(`no data for ${this.ms} ms`)), this.ms);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    clearTimeout(this.timer);
    this.timer = this.arm();
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    clearTimeout(this.timer);
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.timer);
    callback(err);
  }
}
