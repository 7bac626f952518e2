import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { RegistryMirror } from '../../config/config.js';
import { InternalError, NotFoundError, TscriError, UnavailableError, messageOf } from '../../errors.js';
import { after } from '../../util/timer.js';
import { TSCRI_VERSION } from '../../version.js';
import { apiHostOf, type ImageReference } from '../reference.js';
import { basicAuthorization, parseChallenges, type Challenge, type Credentials } from './auth.js';
import { BODY_LIMITS, BodyTooLargeError, announcedLength, bodyStream, discard, excerpt, limitText, readBody, type BodyLimit, type BodyOptions } from './body.js';
import { MANIFEST_ACCEPT, type Descriptor } from './manifest.js';
import { DigestMismatchError, VerifyingStream, sha256Digest } from './verify.js';

/** One place an image can be fetched from: a mirror or the registry itself. */
export interface Endpoint {
  /** Base URL without trailing slash; API paths start with /v2/. */
  url: string;
  isMirror: boolean;
}

/** How long to wait for a registry's response headers (bodies have an idle timeout instead). */
const RESPONSE_TIMEOUT_MS = 30_000;
/** A body that delivers nothing for this long is abandoned, unless the session is told otherwise. */
const DEFAULT_BODY_IDLE_MS = 60_000;
const USER_AGENT = `tscri/${TSCRI_VERSION}`;

export interface SessionOptions {
  /** Aborts every request and body of the session (a pull given up). */
  signal?: AbortSignal;
  /** A body that delivers nothing for this long is abandoned. */
  bodyIdleMs?: number;
  /** The setting bodyIdleMs comes from, named in the messages of stalled bodies. */
  bodyIdleSetting?: string;
  /** Called for every response and every chunk of every body: the session is making progress. */
  onActivity?: () => void;
}

/** A response to one request, with the URL it came from and what to call once its body is done. */
interface Answer {
  response: Response;
  url: string;
  done: () => void;
}

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
  /** Requests whose response or body is still awaited, for a watchdog to name. */
  private readonly waiting = new Map<symbol, string>();
  private readonly signal: AbortSignal | undefined;

  constructor(
    private readonly ref: ImageReference,
    private readonly endpoints: Endpoint[],
    private readonly credentials: Credentials | undefined,
    private readonly log: Logger,
    private readonly options: SessionOptions = {},
  ) {
    this.signal = options.signal;
  }

  /** The endpoint that served the first manifest. */
  get endpoint(): Endpoint | undefined {
    return this.current;
  }

  /** The URLs whose response or body the session is waiting for now. */
  waitingOn(): string[] {
    return [...new Set(this.waiting.values())];
  }

  /**
   * Fetch a manifest by tag or digest, trying each endpoint in order. A digest's descriptor,
   * when known (from an index), is checked against the manifest limit before asking.
   */
  async manifest(tagOrDigest: string, descriptor?: Descriptor): Promise<FetchedManifest> {
    if (descriptor) refuseOversizedDescriptor(`manifest ${descriptor.digest}`, descriptor.size, BODY_LIMITS.manifest);
    return this.tryEndpoints(`manifest ${tagOrDigest}`, async (endpoint) => {
      const answer = await this.request(endpoint, `manifests/${tagOrDigest}`, { accept: MANIFEST_ACCEPT });
      const bytes = await readBody(answer.response, BODY_LIMITS.manifest, this.bodyOptions(`manifest ${tagOrDigest}`, answer));
      const digest = sha256Digest(bytes);
      if (tagOrDigest.includes(':') && tagOrDigest !== digest) {
        throw new InternalError(`manifest ${tagOrDigest} from ${endpoint.url} hashes to ${digest}`);
      }
      return { bytes, mediaType: excerpt(answer.response.headers.get('content-type') ?? ''), digest };
    });
  }

  /**
   * Open a blob's body as a stream. A Content-Length other than the descriptor's size is
   * refused before reading; verifying the bytes is the caller's, while it consumes them.
   */
  async blob(descriptor: Pick<Descriptor, 'digest' | 'size'>): Promise<Readable> {
    const { digest, size } = descriptor;
    return this.tryEndpoints(`blob ${digest}`, async (endpoint) => {
      const answer = await this.request(endpoint, `blobs/${digest}`, {});
      const announced = announcedLength(answer.response);
      if (announced !== undefined && announced !== size) {
        await discard(answer.response);
        answer.done();
        throw new DigestMismatchError(digest, '', `${excerpt(answer.url)} announces Content-Length ${announced} but the descriptor says ${size} bytes`);
      }
      if (!answer.response.body) {
        answer.done();
        throw new InternalError(`empty body for blob ${digest}`);
      }
      return bodyStream(answer.response, this.bodyOptions(`blob ${digest}`, answer));
    });
  }

  /**
   * Read an image config whole: never more than its descriptor says (at most the config
   * limit), verified against its digest and size while it arrives.
   */
  async blobBytes(descriptor: Pick<Descriptor, 'digest' | 'size'>): Promise<Buffer> {
    refuseOversizedDescriptor(`config ${descriptor.digest}`, descriptor.size, BODY_LIMITS.config);
    const chunks: Buffer[] = [];
    const collect = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    });
    await pipeline(await this.blob(descriptor), new VerifyingStream(descriptor.digest, descriptor.size), collect);
    return Buffer.concat(chunks);
  }

  /**
   * Run `attempt` against the endpoint that already answered (if any) and then the others in
   * order; the first success wins. Every endpoint failing with one code (all NotFound, all
   * too large, …) is an error of that code; failing in different ways is Unavailable.
   */
  private async tryEndpoints<T>(what: string, attempt: (endpoint: Endpoint) => Promise<T>): Promise<T> {
    const order = this.current ? [this.current, ...this.endpoints.filter((e) => e !== this.current)] : this.endpoints;
    const failures: Array<{ endpoint: Endpoint; err: unknown }> = [];
    for (const endpoint of order) {
      try {
        const result = await attempt(endpoint);
        this.current ??= endpoint;
        return result;
      } catch (err) {
        if (this.signal?.aborted) throw this.signal.reason;
        failures.push({ endpoint, err });
        this.log.info({ endpoint: endpoint.url, err: messageOf(err) }, `${what}: endpoint failed, trying the next`);
      }
    }
    const reasons = failures.map((f) => `${f.endpoint.url}: ${messageOf(f.err)}`).join('; ');
    const message = `cannot fetch ${what} of ${this.ref.domain}/${this.ref.path}: ${reasons}`;
    const first = failures[0]?.err;
    const allAlike = first instanceof TscriError && failures.every((f) => f.err instanceof TscriError && f.err.code === first.code);
    throw allAlike ? new TscriError(first.code, message, { hint: first.hint }) : new UnavailableError(message);
  }

  /** GET /v2/<path>/<suffix>, answering an authentication challenge once. */
  private async request(endpoint: Endpoint, suffix: string, headers: { accept?: string }): Promise<Answer> {
    const url = `${endpoint.url}/v2/${this.ref.path}/${suffix}`;
    const done = this.waitFor(url);
    try {
      const response = await this.authorizedGet(endpoint, url, headers);
      if (response.ok) return { response, url, done };
      throw await this.refusal(response, suffix, url);
    } catch (err) {
      done();
      throw err;
    }
  }

  private async authorizedGet(endpoint: Endpoint, url: string, headers: { accept?: string }): Promise<Response> {
    const base: Record<string, string> = { 'user-agent': USER_AGENT };
    if (headers.accept) base.accept = headers.accept;
    const cached = this.tokens.get(endpoint.url);
    const response = await this.fetch(url, cached ? { ...base, authorization: cached } : base);
    if (response.status !== 401) return response;
    await discard(response);
    const authorization = await this.authorize(endpoint, parseChallenges(response.headers.get('www-authenticate')));
    if (!authorization) return response;
    this.tokens.set(endpoint.url, authorization);
    return this.fetch(url, { ...base, authorization });
  }

  /** The error for a response that is not a success, with what the registry said (in short). */
  private async refusal(response: Response, suffix: string, url: string): Promise<TscriError> {
    const said = await errorBodyOf(response, this.bodyOptions(`error body`, { url, done: () => undefined }));
    const detail = `${response.status} ${excerpt(response.statusText)}${said}`;
    if (response.status === 404) return new NotFoundError(`${suffix}: ${detail}`);
    if (response.status === 401 || response.status === 403) return new TscriError('FailedPrecondition', `${suffix}: ${detail}: access denied`);
    return new UnavailableError(`${suffix}: ${detail}`);
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
    const { url, headers, body } = tokenRequest(realm, challenge, scope, credentials);
    const done = this.waitFor(url);
    try {
      const response = await this.fetch(url, headers, body);
      if (!response.ok) {
        await discard(response);
        throw new TscriError('FailedPrecondition', `token request to ${excerpt(realm)} failed: ${response.status} ${excerpt(response.statusText)}`);
      }
      const bytes = await readBody(response, BODY_LIMITS.token, this.bodyOptions('token response', { url, done }));
      return tokenOf(bytes, realm);
    } finally {
      done();
    }
  }

  /** fetch with a deadline on the response headers; the session's signal covers the body too. */
  private async fetch(url: string, headers: Record<string, string>, body?: string): Promise<Response> {
    const headersDeadline = new AbortController();
    const timer = after(RESPONSE_TIMEOUT_MS, () =>
      headersDeadline.abort(new UnavailableError(`${excerpt(url)}: no response within ${RESPONSE_TIMEOUT_MS / 1000} s`)),
    );
    const signal = this.signal ? AbortSignal.any([headersDeadline.signal, this.signal]) : headersDeadline.signal;
    try {
      const response = await fetch(url, { method: body === undefined ? 'GET' : 'POST', headers, body, redirect: 'follow', signal });
      this.options.onActivity?.();
      return response;
    } catch (err) {
      // Our own deadline and the session's abort carry their message as the reason.
      if (signal.aborted && signal.reason instanceof TscriError) throw signal.reason;
      const cause = (err as { cause?: unknown }).cause;
      throw new UnavailableError(`${excerpt(url)}: ${messageOf(cause ?? err)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private bodyOptions(what: string, answer: Pick<Answer, 'url' | 'done'>): BodyOptions {
    return {
      what,
      url: answer.url,
      idleMs: this.options.bodyIdleMs ?? DEFAULT_BODY_IDLE_MS,
      idleSetting: this.options.bodyIdleSetting,
      onData: () => this.options.onActivity?.(),
      onEnd: answer.done,
      signal: this.signal,
    };
  }

  /** Note `url` as awaited until the returned function is called. */
  private waitFor(url: string): () => void {
    const mark = Symbol(url);
    this.waiting.set(mark, url);
    return () => this.waiting.delete(mark);
  }
}

/** A descriptor naming more than `limit` is refused before anything is asked for. */
function refuseOversizedDescriptor(what: string, size: number, limit: BodyLimit): void {
  if (size > limit.bytes) {
    throw new BodyTooLargeError(`${what}: its descriptor says ${size} bytes, above ${limitText(limit)}`);
  }
}

/** The GET (or, with an identity token, the POST) that asks a token service for a pull token. */
function tokenRequest(
  realm: string,
  challenge: Challenge,
  scope: string,
  credentials: Credentials | undefined,
): { url: string; headers: Record<string, string>; body?: string } {
  if (credentials?.identityToken) {
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: credentials.identityToken,
      service: challenge.params.service ?? '',
      scope,
      client_id: 'tscri',
    });
    return { url: realm, headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': USER_AGENT }, body: form.toString() };
  }
  const url = urlOf(realm);
  if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
  url.searchParams.set('scope', scope);
  const headers: Record<string, string> = { 'user-agent': USER_AGENT };
  const basic = basicAuthorization(credentials);
  if (basic) headers.authorization = basic;
  return { url: url.toString(), headers };
}

function urlOf(realm: string): URL {
  try {
    return new URL(realm);
  } catch {
    throw new InternalError(`bearer challenge realm "${excerpt(realm)}" is not a URL`);
  }
}

function tokenOf(bytes: Buffer, realm: string): string {
  let body: { token?: unknown; access_token?: unknown };
  try {
    body = JSON.parse(bytes.toString('utf8')) as typeof body;
  } catch {
    throw new InternalError(`token response from ${excerpt(realm)} is not JSON: ${excerpt(bytes.toString('utf8', 0, 400))}`);
  }
  const token = body?.token ?? body?.access_token;
  if (typeof token !== 'string' || !token) throw new InternalError(`token response from ${excerpt(realm)} has no token`);
  return token;
}

/**
 * What an error body says, in short: the registry's `errors` array, read up to the error-body
 * limit. A body past the limit, stalled or unreadable says nothing; the status still counts.
 */
async function errorBodyOf(response: Response, options: BodyOptions): Promise<string> {
  try {
    return registryErrors((await readBody(response, BODY_LIMITS.errorBody, options)).toString('utf8'));
  } catch (err) {
    if (err instanceof BodyTooLargeError) return ` (error body over ${limitText(BODY_LIMITS.errorBody)}, not shown)`;
    if (options.signal?.aborted) throw options.signal.reason;
    return '';
  }
}

/** The `errors` array of a registry error body, as a short text. */
function registryErrors(body: string): string {
  try {
    const parsed = JSON.parse(body) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const errors = Array.isArray(parsed?.errors)
      ? parsed.errors.map((e) => [e?.code, e?.message].filter((part) => typeof part === 'string' && part).join(': ')).filter(Boolean)
      : [];
    return errors.length > 0 ? ` (${excerpt(errors.join('; '))})` : '';
  } catch {
    return '';
  }
}
