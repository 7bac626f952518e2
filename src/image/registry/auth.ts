import type * as cri from '../../api/cri.js';
import { InvalidArgumentError } from '../../errors.js';

/** Credentials for one pull, from the request's AuthConfig. */
export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token, exchanged at the token realm. */
  identityToken?: string;
  /** A bearer token to use as it is. */
  registryToken?: string;
}

/** Credentials from a CRI AuthConfig, or undefined when it carries none. */
export function credentialsFrom(auth: cri.AuthConfig | null | undefined): Credentials | undefined {
  if (!auth) return undefined;
  let { username, password } = auth;
  if (auth.auth) {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new InvalidArgumentError('auth.auth must be base64 of "username:password"');
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const credentials: Credentials = {};
  if (username) credentials.username = username;
  if (password) credentials.password = password;
  if (auth.identity_token) credentials.identityToken = auth.identity_token;
  if (auth.registry_token) credentials.registryToken = auth.registry_token;
  return Object.keys(credentials).length > 0 ? credentials : undefined;
}

export function basicAuthorization(credentials: Credentials | undefined): string | undefined {
  if (!credentials?.username) return undefined;
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64')}`;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parse a WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"` or
 * `Basic realm="…"`. Several challenges may share one header.
 */
export function parseChallenges(header: string | null): Challenge[] {
  if (!header) return [];
  const challenges: Challenge[] = [];
  const pattern = /([A-Za-z]+)\s+((?:[a-zA-Z_]+=(?:"(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?\s*)*)/g;
  for (const match of header.matchAll(pattern)) {
    const params: Record<string, string> = {};
    for (const param of match[2]!.matchAll(/([a-zA-Z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
      params[param[1]!.toLowerCase()] = (param[2] ?? param[3] ?? '').replace(/\\(.)/g, '$1');
    }
    challenges.push({ scheme: match[1]!.toLowerCase(), params });
  }
  return challenges;
}
