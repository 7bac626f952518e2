import { readFileSync } from 'node:fs';

/** tscri's own version, from package.json. */
export const TSCRI_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export const RUNTIME_NAME = 'tscri';
/** The CRI API version tscri serves. */
export const RUNTIME_API_VERSION = 'v1';
/** The value VersionResponse.version has always carried for the kubelet runtime API. */
export const KUBE_RUNTIME_API_VERSION = '0.1.0';
