import { randomBytes } from 'node:crypto';

interface Entry<T> {
  request: T;
  expires: number;
}

/**
 * Streaming requests waiting for their client, by single-use token. An Exec/Attach/PortForward
 * RPC stores the request and returns a URL with the token; the client has `ttlMs` to connect,
 * and a token works once. Bounded, so a client that never connects cannot grow it forever.
 */
export class RequestCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly ttlMs = 60_000,
    private readonly maxEntries = 1000,
  ) {}

  insert(request: T): string {
    this.evictExpired();
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    const token = randomBytes(18).toString('base64url');
    this.entries.set(token, { request, expires: Date.now() + this.ttlMs });
    return token;
  }

  /** The request for `token`, removing it; undefined if unknown, used or expired. */
  consume(token: string): T | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    this.entries.delete(token);
    return entry.expires >= Date.now() ? entry.request : undefined;
  }

  private evictExpired(): void {
    const now = Date.now();
    for (const [token, entry] of this.entries) {
      if (entry.expires < now) this.entries.delete(token);
    }
  }
}
