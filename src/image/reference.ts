import { InvalidArgumentError } from '../errors.js';
import { quote } from '../validation/fields.js';

/**
 * Image references in the grammar registries and kubelet use:
 *
 *   reference   := name [":" tag] ["@" digest]
 *   name        := [domain "/"] path
 *   domain      := host [":" port]          (first component with "." or ":", or "localhost")
 *   path        := component ["/" component]*,  component := [a-z0-9]+ ([._]|__|-+) [a-z0-9]+ …
 *   tag         := [\w][\w.-]{0,127}
 *   digest      := algorithm ":" hex
 *
 * Docker Hub names are normalised: `busybox` → `docker.io/library/busybox:latest`.
 */

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
const NAME_MAX_LENGTH = 255;

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

export interface ImageReference {
  /** Registry host, e.g. docker.io or 127.0.0.1:5000. */
  domain: string;
  /** Repository path inside the registry, e.g. library/busybox. */
  path: string;
  tag?: string;
  digest?: string;
}

/** Parse and normalise a reference; a missing tag and digest means `:latest`. */
export function parseReference(text: string): ImageReference {
  const input = text.trim();
  if (input === '') throw new InvalidArgumentError('image reference is empty');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(text, `${quote(digest)} is not a digest`);
    if (digest.startsWith('sha256:') && !SHA256_DIGEST.test(digest)) throw invalid(text, 'sha256 digests have 64 lowercase hex digits');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(text, `${quote(tag)} is not a valid tag`);
  }
  const { domain, path } = splitName(rest, text);
  if (!tag && !digest) tag = 'latest';
  return { domain, path, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

function splitName(name: string, original: string): { domain: string; path: string } {
  if (name === '') throw invalid(original, 'the name is empty');
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  let domain = DOCKER_HUB;
  let path = name;
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    domain = first;
    path = name.slice(slash + 1);
  }
  if (domain === 'index.docker.io') domain = DOCKER_HUB;
  if (!DOMAIN.test(domain)) throw invalid(original, `${quote(domain)} is not a valid registry host`);
  if (domain === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(original, `repository component ${quote(component)} must be lowercase letters, digits and separators`);
    }
  }
  if (domain.length + 1 + path.length > NAME_MAX_LENGTH) throw invalid(original, `the name is longer than ${NAME_MAX_LENGTH} characters`);
  return { domain, path };
}

function invalid(text: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid image reference ${quote(text)}: ${why}`);
}

/** `domain/path`, the repository's full name. */
export function repositoryOf(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The normalised string form: `domain/path[:tag][@digest]`. */
export function formatReference(ref: ImageReference): string {
  return `${repositoryOf(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** `domain/path:tag`, or undefined for a digest-only reference. */
export function tagReference(ref: ImageReference): string | undefined {
  return ref.tag ? `${repositoryOf(ref)}:${ref.tag}` : undefined;
}

/** `domain/path@digest` for a given manifest digest. */
export function digestReference(ref: ImageReference, digest: string): string {
  return `${repositoryOf(ref)}@${digest}`;
}

/** The host to contact for a domain: Docker Hub's API lives on another name. */
export function apiHostOf(domain: string): string {
  return domain === DOCKER_HUB ? DOCKER_HUB_API_HOST : domain;
}

/** True for `sha256:<64 hex>` or a bare 64-hex id: an image id rather than a name. */
export function isImageId(text: string): boolean {
  return SHA256_DIGEST.test(text) || /^[a-f0-9]{64}$/.test(text);
}
