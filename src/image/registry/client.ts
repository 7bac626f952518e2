import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { InternalError, NotFoundError, TscriError, UnavailableError, messageOf } from '../../errors.js';
import { after } from '../../util/timer.js';
import { TSCRI_VERSION } from '../../version.js';
import type { ImageReference } from '../reference.js';
import { basicAuthorization, parseChallenges, type Challenge, type Credentials } from './auth.js';
import { BODY_LIMITS, BodyTooLargeError, announcedLength, bodyStream, discard, excerpt, limitText, readBody, type BodyLimit, type BodyOptions } from './body.js';
import { MANIFEST_ACCEPT, type Descriptor } from './manifest.js';
import type { Endpoint } from './endpoints.js';
import type { TlsMaterial, Transport } from './transport.js';
import { DigestMismatchError, VerifyingStream, sha256Digest } from './verify.js';

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
  /** Chooses each request's connection (TLS settings, proxy); fetch's default without it. */
  transport?: Transport;
}

/** A response to one request, with the URL it came from and what to call once its body is done. */
interface Answer {
  response: Response;
  url: string;
  done: () => void;
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
    const byDigest = tagOrDigest.includes(':');
    return this.tryEndpoints(`manifest ${tagOrDigest}`, byDigest, async (endpoint) => {
      const answer = await this.request(endpoint, `manifests/${tagOrDigest}`, { accept: MANIFEST_ACCEPT });
      const bytes = await readBody(answer.response, BODY_LIMITS.manifest, this.bodyOptions(`manifest ${tagOrDigest}`, answer));
      const digest = sha256Digest(bytes);
      if (byDigest && tagOrDigest !== digest) {
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
    return this.tryEndpoints(`blob ${digest}`, true, async (endpoint) => {
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
   * Run `attempt` against the endpoints in the order `orderFor` gives; the first success wins.
   * Every endpoint failing with one code (all NotFound, all too large, …) is an error of that
   * code; failing in different ways is Unavailable.
   */
  private async tryEndpoints<T>(what: string, byDigest: boolean, attempt: (endpoint: Endpoint) => Promise<T>): Promise<T> {
    const order = this.orderFor(byDigest);
    if (order.length === 0) {
      throw new TscriError('FailedPrecondition', `cannot fetch ${what} of ${this.ref.domain}/${this.ref.path}: no configured host may ${byDigest ? 'pull' : 'resolve a tag'}`, {
        hint: 'check the capabilities in the registry\'s hosts.toml',
      });
    }
    const failures: Array<{ endpoint: Endpoint; err: unknown }> = [];
    for (const endpoint of order) {
      try {
        const result = await attempt(endpoint);
        this.current ??= endpoint;
        return result;
      } catch (err) {
        if (this.signal?.aborted) throw this.signal.reason;
        failures.push({ endpoint, err });
        this.log.info({ endpoint: endpoint.url, err }, `${what}: endpoint failed, trying the next`);
      }
    }
    const reasons = failures.map((f) => `${f.endpoint.url}: ${messageOf(f.err)}`).join('; ');
    const message = `cannot fetch ${what} of ${this.ref.domain}/${this.ref.path}: ${reasons}`;
    const first = failures[0]?.err;
    const allAlike = first instanceof TscriError && failures.every((f) => f.err instanceof TscriError && f.err.code === first.code);
    throw allAlike ? new TscriError(first.code, message, { hint: first.hint }) : new UnavailableError(message);
  }

  /**
   * The endpoint that already answered first, then the others in order. A tag goes only to
   * hosts that may resolve; content by digest goes first to the digest-only hosts placed
   * before the one that answered, since serving content is what they are there for.
   */
  private orderFor(byDigest: boolean): Endpoint[] {
    const eligible = byDigest ? this.endpoints : this.endpoints.filter((e) => e.resolves !== false);
    const current = this.current;
    if (!current || !eligible.includes(current)) return eligible;
    const before = eligible.slice(0, eligible.indexOf(current));
    const digestOnly = byDigest ? before.filter((e) => e.resolves === false) : [];
    return [...digestOnly, current, ...eligible.filter((e) => e !== current && !digestOnly.includes(e))];
  }

  /** GET <api root>/<path>/<suffix>, answering an authentication challenge once. */
  private async request(endpoint: Endpoint, suffix: string, headers: { accept?: string }): Promise<Answer> {
    const url = `${endpoint.apiRoot ?? `${endpoint.url}/v2`}/${this.ref.path}/${suffix}`;
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
    const base: HeaderList = [...configuredHeaders(endpoint), ['user-agent', USER_AGENT]];
    if (headers.accept) base.push(['accept', headers.accept]);
    const cached = this.tokens.get(endpoint.url);
    const response = await this.fetch(url, cached ? [...base, ['authorization', cached]] : base, endpoint.tls);
    if (response.status !== 401) return response;
    await discard(response);
    const authorization = await this.authorize(endpoint, parseChallenges(response.headers.get('www-authenticate')));
    if (!authorization) return response;
    this.tokens.set(endpoint.url, authorization);
    return this.fetch(url, [...base, ['authorization', authorization]], endpoint.tls);
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
    // The request's credentials win; the auth file's are for when it brings none, and for
    // hosts other than the server, which never see the request's.
    const credentials = (endpoint.isMirror ? undefined : this.credentials) ?? endpoint.credentials;
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      if (credentials?.registryToken) return `Bearer ${credentials.registryToken}`;
      return `Bearer ${await this.fetchToken(bearer, credentials, endpoint)}`;
    }
    if (challenges.some((c) => c.scheme === 'basic')) return basicAuthorization(credentials);
    return undefined;
  }

  /** The token flow: ask the challenge's realm for a pull token for this repository. */
  private async fetchToken(challenge: Challenge, credentials: Credentials | undefined, endpoint: Endpoint): Promise<string> {
    const realm = challenge.params.realm;
    if (!realm) throw new InternalError('bearer challenge without a realm');
    const scope = challenge.params.scope || `repository:${this.ref.path}:pull`;
    const { url, headers, body } = tokenRequest(realm, challenge, scope, credentials);
    const done = this.waitFor(url);
    try {
      // The token service is the endpoint's: its headers and TLS settings go along.
      const response = await this.fetch(url, [...configuredHeaders(endpoint), ...Object.entries(headers)], endpoint.tls, body);
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
  private async fetch(url: string, headers: HeaderList, tls: TlsMaterial | undefined, body?: string): Promise<Response> {
    const headersDeadline = new AbortController();
    const timer = after(RESPONSE_TIMEOUT_MS, () =>
      headersDeadline.abort(new UnavailableError(`${excerpt(url)}: no response within ${RESPONSE_TIMEOUT_MS / 1000} s`)),
    );
    const signal = this.signal ? AbortSignal.any([headersDeadline.signal, this.signal]) : headersDeadline.signal;
    try {
      const dispatcher = this.options.transport?.dispatcherFor(url, tls);
      const init = { method: body === undefined ? 'GET' : 'POST', headers, body, redirect: 'follow', signal } as const;
      // undici's dispatcher option, which Node's fetch takes but its RequestInit type omits.
      const response = await fetch(url, dispatcher ? ({ ...init, dispatcher } as RequestInit) : init);
      this.options.onActivity?.();
      return response;
    } catch (err) {
      // Our own deadline and the session's abort carry their message as the reason.
      if (signal.aborted && signal.reason instanceof TscriError) throw signal.reason;
      throw connectionError(url, (err as { cause?: unknown }).cause ?? err);
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

type HeaderList = Array<[string, string]>;

/** hosts.toml's headers for an endpoint, each value its own header line. */
function configuredHeaders(endpoint: Endpoint): HeaderList {
  return Object.entries(endpoint.headers ?? {}).flatMap(([name, values]) => values.map((value): [string, string] => [name, value]));
}

/** Node's codes for a server certificate that cannot be verified. */
const CERTIFICATE_CODES = /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID|CERT_UNTRUSTED)$/;

/** Unavailable, saying what failed; a certificate the node does not trust says how to fix it. */
function connectionError(url: string, cause: unknown): UnavailableError {
  const code = (cause as { code?: unknown })?.code;
  const detail = `${messageOf(cause)}${typeof code === 'string' && !messageOf(cause).includes(code) ? ` (${code})` : ''}`;
  if (typeof code === 'string' && CERTIFICATE_CODES.test(code)) {
    return new UnavailableError(`${excerpt(url)}: TLS: the registry's certificate is not trusted: ${detail}`, {
      hint: "give the registry's CA as `ca` in its hosts.toml under [registry] config_path (or, for tests only, skip_verify = true)",
    });
  }
  return new UnavailableError(`${excerpt(url)}: ${detail}`);
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
