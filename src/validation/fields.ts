/**
 * Checks for single fields of CRI requests. Every request is validated in one pass before
 * anything is made, and a bad field is answered with InvalidArgument naming the field by its
 * proto path (`config.dns_config.options[1]`) and quoting at most a few dozen characters of
 * what was sent: a client may send megabytes, and an error must not carry them back.
 */
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { shorten } from '../util/text.js';

/** Longest excerpt of a client's value quoted in an error message. */
const QUOTE_CHARS = 64;
/** Linux's PATH_MAX. */
export const MAX_PATH_BYTES = 4096;
export const INT64_MAX = 2n ** 63n - 1n;
export const INT64_MIN = -(2n ** 63n);
export const UINT32_MAX = 2 ** 32 - 1;

/** A value for an error message: cut to a few dozen characters, then JSON-quoted. */
export function quote(value: unknown, max = QUOTE_CHARS): string {
  return JSON.stringify(shorten(typeof value === 'string' ? value : String(value), max));
}

export function invalid(field: string, problem: string): InvalidArgumentError {
  return new InvalidArgumentError(`${field} ${problem}`);
}

export interface TextRules {
  required?: boolean;
  /** Longest accepted length in UTF-8 bytes. */
  maxBytes?: number;
  /** Refuse \n and \r: the value becomes a line of a file or a single token. */
  singleLine?: boolean;
  /** Refuse any whitespace: the value is one token of a line (a hostname, a DNS option). */
  noSpace?: boolean;
  /** A shape the value must have, and how to describe it. */
  pattern?: RegExp;
  patternHint?: string;
}

/** A string with no NUL (it ends up in a file, an argv or a path) and the given shape. */
export function checkText(field: string, value: unknown, rules: TextRules = {}): string {
  if (typeof value !== 'string') throw invalid(field, 'must be a string');
  if (value === '') {
    if (rules.required) throw invalid(field, 'is required');
    return value;
  }
  const bytes = Buffer.byteLength(value);
  if (rules.maxBytes !== undefined && bytes > rules.maxBytes) throw invalid(field, `is ${bytes} bytes long, more than ${rules.maxBytes}`);
  if (value.includes('\0')) throw invalid(field, `${quote(value)} contains a NUL byte`);
  if (rules.singleLine && /[\r\n]/.test(value)) throw invalid(field, `${quote(value)} contains a line break`);
  if (rules.noSpace && /\s/.test(value)) throw invalid(field, `${quote(value)} contains whitespace`);
  if (rules.pattern && !rules.pattern.test(value)) throw invalid(field, `${quote(value)} is not ${rules.patternHint ?? 'valid'}`);
  return value;
}

/** An absolute path without `..` components (the caller resolves it under what it belongs to). */
export function checkAbsolutePath(field: string, value: unknown, rules: { required?: boolean } = {}): string {
  const text = checkText(field, value, { required: rules.required, maxBytes: MAX_PATH_BYTES, singleLine: true });
  if (text === '') return text;
  if (!path.isAbsolute(text)) throw invalid(field, `${quote(text)} must be an absolute path`);
  if (text.split('/').includes('..')) throw invalid(field, `${quote(text)} must not contain ".."`);
  checkNameLengths(field, text);
  return text;
}

/** The kernel's NAME_MAX: no file name, so no path component, is longer. */
const MAX_NAME_BYTES = 255;

function checkNameLengths(field: string, text: string): void {
  const long = text.split('/').find((name) => Buffer.byteLength(name) > MAX_NAME_BYTES);
  if (long !== undefined) throw invalid(field, `has a component of ${Buffer.byteLength(long)} bytes, more than the ${MAX_NAME_BYTES} a file name can have`);
}

/** A relative path that stays below the directory it is joined to. */
export function checkRelativePath(field: string, value: unknown, rules: { required?: boolean } = {}): string {
  const text = checkText(field, value, { required: rules.required, maxBytes: MAX_PATH_BYTES, singleLine: true });
  if (text === '') return text;
  if (path.isAbsolute(text)) throw invalid(field, `${quote(text)} must be a relative path`);
  if (text.split('/').includes('..')) throw invalid(field, `${quote(text)} must not contain ".."`);
  checkNameLengths(field, text);
  return text;
}

/**
 * An enum field. grpc-js hands known values over by name and unknown numbers as numbers, so
 * a client sending 99 gets a clear answer here rather than a TypeError deep inside.
 */
export function checkEnum<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw invalid(field, `${quote(value)} is not one of ${allowed.join(', ')}`);
}

/** An int64 (a decimal string on the wire) within [min, max], kept exact as a bigint. */
export function checkInt64(field: string, value: unknown, min: bigint = INT64_MIN, max: bigint = INT64_MAX): bigint {
  let parsed: bigint;
  try {
    parsed = BigInt(typeof value === 'string' || typeof value === 'number' ? value : Number.NaN);
  } catch {
    throw invalid(field, `${quote(value)} is not an integer`);
  }
  if (parsed < min || parsed > max) throw invalid(field, `${parsed} is outside ${min}..${max}`);
  return parsed;
}

/**
 * An int64 that is used as a JavaScript number: refused beyond 2^53, where it would silently
 * lose precision (a memory limit of 2^62 + 1 must not become 2^62).
 */
export function checkSafeInt(field: string, value: unknown, min: number, max: number): number {
  const safeMin = BigInt(Math.max(min, Number.MIN_SAFE_INTEGER));
  const safeMax = BigInt(Math.min(max, Number.MAX_SAFE_INTEGER));
  return Number(checkInt64(field, value, safeMin, safeMax));
}

/** A uint32/int32 number field within [min, max]. */
export function checkNumber(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw invalid(field, `${quote(value)} is not an integer`);
  if (value < min || value > max) throw invalid(field, `${value} is outside ${min}..${max}`);
  return value;
}

/** A repeated field: at most `max` entries, each checked with its index in the field name. */
export function checkList<T>(field: string, list: readonly T[], max: number, check: (item: T, field: string) => void): void {
  if (list.length > max) throw invalid(field, `has ${list.length} entries, more than ${max}`);
  list.forEach((item, i) => check(item, `${field}[${i}]`));
}

/** Labels and annotations: bounded in count and size, keys non-empty, no NUL anywhere. */
export function checkStringMap(field: string, map: Readonly<Record<string, string>>, maxBytes = 256 * 1024): void {
  let total = 0;
  for (const [key, value] of Object.entries(map)) {
    checkText(`${field} key`, key, { required: true, maxBytes: 4096 });
    checkText(`${field}[${quote(key)}]`, value);
    total += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  if (total > maxBytes) throw invalid(field, `holds ${total} bytes, more than ${maxBytes}`);
}

/** An IPv4 or IPv6 address in its usual text form. */
export function isIpAddress(value: string): boolean {
  const v4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
  if (v4.test(value)) return true;
  if (!/^[0-9A-Fa-f:.]+$/.test(value) || !value.includes(':')) return false;
  try {
    return new URL(`http://[${value}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}
