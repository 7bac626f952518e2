/**
 * CDI names: a spec's kind (`vendor/class`), a device's name, the fully qualified
 * `vendor/class=name` a container asks for, and spec versions. Each check returns the
 * problem as text (undefined when fine) so the caller words the error for its context: a
 * bad spec file is logged, a bad request is InvalidArgument.
 */

/** First a letter, last a letter or digit; letters, digits, `_`, `-`, `.` between. */
const VENDOR_OR_CLASS = /^[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
/** Like a class, but it may start with a digit and hold `:` (PCI addresses, UUIDs). */
const DEVICE_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$/;
/** The CDI spec bounds the vendor as a DNS subdomain and the class as a DNS label. */
const MAX_VENDOR_CHARS = 253;
const MAX_CLASS_CHARS = 63;
const MAX_DEVICE_NAME_CHARS = 253;

export interface QualifiedName {
  vendor: string;
  class: string;
  name: string;
}

export function kindProblem(kind: string): string | undefined {
  const slash = kind.indexOf('/');
  if (slash <= 0 || slash === kind.length - 1) return 'must be "vendor/class"';
  return vendorProblem(kind.slice(0, slash)) ?? classProblem(kind.slice(slash + 1));
}

function vendorProblem(vendor: string): string | undefined {
  if (vendor.length > MAX_VENDOR_CHARS) return `has a vendor longer than ${MAX_VENDOR_CHARS} characters`;
  if (!VENDOR_OR_CLASS.test(vendor)) return 'has an invalid vendor (letters, digits, "_", "-", "." starting with a letter and ending with a letter or digit)';
  return undefined;
}

function classProblem(cls: string): string | undefined {
  if (cls.length > MAX_CLASS_CHARS) return `has a class longer than ${MAX_CLASS_CHARS} characters`;
  if (!VENDOR_OR_CLASS.test(cls)) return 'has an invalid class (letters, digits, "_", "-", "." starting with a letter and ending with a letter or digit)';
  return undefined;
}

export function deviceNameProblem(name: string): string | undefined {
  if (name.length > MAX_DEVICE_NAME_CHARS) return `is longer than ${MAX_DEVICE_NAME_CHARS} characters`;
  if (!DEVICE_NAME.test(name)) return 'is not a valid device name (letters, digits, "_", "-", ".", ":" starting and ending with a letter or digit)';
  return undefined;
}

/** `vendor/class=name` split into its parts, or the problem with it. */
export function parseQualifiedName(text: string): QualifiedName | { problem: string } {
  const eq = text.indexOf('=');
  if (eq < 0) return { problem: 'is not a qualified CDI device name ("vendor.com/class=name")' };
  const kind = text.slice(0, eq);
  const name = text.slice(eq + 1);
  const problem = kindProblem(kind) ?? (name === '' ? 'has an empty device name' : deviceNameProblem(name));
  if (problem) return { problem };
  const slash = kind.indexOf('/');
  return { vendor: kind.slice(0, slash), class: kind.slice(slash + 1), name };
}

/** Every cdiVersion a spec may declare, oldest first. */
export const KNOWN_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.4.0', '0.5.0', '0.6.0', '0.7.0', '0.8.0', '1.0.0', '1.1.0'] as const;
export type CdiVersion = (typeof KNOWN_VERSIONS)[number];
export const CURRENT_VERSION: CdiVersion = '1.1.0';

/** A declared version (a leading "v" is tolerated) as one of the known ones, or undefined. */
export function knownVersion(declared: string): CdiVersion | undefined {
  const bare = declared.startsWith('v') ? declared.slice(1) : declared;
  return KNOWN_VERSIONS.find((v) => v === bare);
}

/** Negative, zero or positive as `a` is older than, equal to or newer than `b`. */
export function compareVersions(a: CdiVersion, b: CdiVersion): number {
  return KNOWN_VERSIONS.indexOf(a) - KNOWN_VERSIONS.indexOf(b);
}
