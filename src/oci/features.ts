/**
 * What the OCI runtime and the kernel can really do, probed once at start, so that Status
 * tells the kubelet the truth (it enables features per handler from it) and requests that
 * need a missing feature are refused up front rather than half-applied.
 */
import os from 'node:os';
import { exec } from '../util/run.js';

export interface RuntimeFeatures {
  /** `rro` mounts: the runtime knows the option and the kernel has mount_setattr (5.12+). */
  recursiveReadOnlyMounts: boolean;
  /** idmapped mounts (runtime `linux.mountExtensions.idmap`), which pods in their own user namespace need. */
  idmappedMounts: boolean;
  /** User namespaces for pods: the runtime can make them and map their volumes. */
  userNamespaces: boolean;
  /** The runtime's own version, for messages. */
  runtimeVersion: string;
  /** Why a feature is off, by feature, for messages and verbose Status. */
  missing: Record<string, string>;
}

interface FeaturesJson {
  mountOptions?: unknown;
  linux?: { namespaces?: unknown; mountExtensions?: { idmap?: { enabled?: unknown } } };
  annotations?: Record<string, unknown>;
}

const PROBE_TIMEOUT_MS = 10_000;

/** `runc features` (runc 1.1+), read once; a runtime without it gets no optional feature. */
export async function probeRuntimeFeatures(runtimeBinary: string, kernelRelease = os.release()): Promise<RuntimeFeatures> {
  const result = await exec(runtimeBinary, ['features'], { timeoutMs: PROBE_TIMEOUT_MS }).catch(() => undefined);
  let parsed: FeaturesJson = {};
  if (result?.exitCode === 0) {
    try {
      parsed = JSON.parse(result.stdout) as FeaturesJson;
    } catch {
      parsed = {};
    }
  }
  return featuresFrom(parsed, kernelRelease);
}

/** The features a `runc features` document and a kernel release allow. */
export function featuresFrom(doc: FeaturesJson, kernelRelease: string): RuntimeFeatures {
  const missing: Record<string, string> = {};
  const version = typeof doc.annotations?.['org.opencontainers.runc.version'] === 'string' ? (doc.annotations['org.opencontainers.runc.version'] as string) : 'unknown';
  const options = Array.isArray(doc.mountOptions) ? (doc.mountOptions as unknown[]) : [];
  const kernelHasMountSetattr = kernelAtLeast(kernelRelease, 5, 12);
  const rro = options.includes('rro') && kernelHasMountSetattr;
  if (!options.includes('rro')) missing.recursiveReadOnlyMounts = `the OCI runtime (${version}) has no "rro" mount option`;
  else if (!kernelHasMountSetattr) missing.recursiveReadOnlyMounts = `kernel ${kernelRelease} lacks mount_setattr (5.12+)`;
  const idmap = doc.linux?.mountExtensions?.idmap?.enabled === true;
  const namespaces = Array.isArray(doc.linux?.namespaces) ? (doc.linux!.namespaces as unknown[]) : [];
  if (!idmap) missing.idmappedMounts = `the OCI runtime (${version}) cannot make idmapped mounts (runc 1.2 or later, or crun, can)`;
  const userns = idmap && namespaces.includes('user');
  if (!userns) missing.userNamespaces = missing.idmappedMounts ?? `the OCI runtime (${version}) cannot make user namespaces`;
  return { recursiveReadOnlyMounts: rro, idmappedMounts: idmap, userNamespaces: userns, runtimeVersion: version, missing };
}

function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const match = /^(\d+)\.(\d+)/.exec(release);
  if (!match) return false;
  const [have, haveMinor] = [Number(match[1]), Number(match[2])];
  return have > major || (have === major && haveMinor >= minor);
}
