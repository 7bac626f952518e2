import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as cri from '../api/cri.js';
import { FailedPreconditionError, InvalidArgumentError, errnoCode } from '../errors.js';
import type { OciMount } from '../oci/spec-types.js';

/** A CRI mount ready for the OCI spec, plus what it demands of the rootfs propagation. */
export interface PreparedMount {
  mount: OciMount;
  propagation: cri.Mount['propagation'];
}

interface MountInfo {
  mountPoint: string;
  /** The optional fields: "shared:N", "master:N", … */
  optional: string[];
}

/**
 * Turn a container's CRI mounts into OCI bind mounts. The host path must exist; a symlink is
 * followed on the host (the container sees the real directory at the requested path).
 * Propagation into and out of the container needs the host side to allow it: rshared needs a
 * shared source mount, rslave a shared or slave one, as the kernel would otherwise silently
 * not propagate.
 */
export async function prepareMounts(
  mounts: cri.Mount[],
  imageSources: ReadonlyMap<number, string> = new Map(),
  readMountInfo = readSelfMountInfo,
): Promise<PreparedMount[]> {
  let mountInfo: MountInfo[] | undefined;
  const prepared: PreparedMount[] = [];
  for (const [index, mount] of mounts.entries()) {
    if (!mount.container_path || !path.isAbsolute(mount.container_path)) {
      throw new InvalidArgumentError(`mount container_path "${mount.container_path}" must be an absolute path`);
    }
    const imageSource = imageSources.get(index);
    if (imageSource !== undefined) {
      // An image volume is read-only, whatever the mount asks for, and private.
      prepared.push({
        mount: { destination: path.posix.normalize(mount.container_path), type: 'bind', source: imageSource, options: ['rbind', 'rprivate', 'ro'] },
        propagation: 'PROPAGATION_PRIVATE',
      });
      continue;
    }
    const source = await realHostPath(mount.host_path);
    if (mount.propagation !== 'PROPAGATION_PRIVATE') {
      mountInfo ??= await readMountInfo();
      checkPropagation(source, mount.propagation, mountInfo);
    }
    prepared.push({
      mount: {
        destination: path.posix.normalize(mount.container_path),
        type: 'bind',
        source,
        // `rro` makes every mount below the source read-only too (mount_setattr); plain `ro`
        // leaves submounts writable.
        options: ['rbind', propagationOption(mount.propagation), ...(mount.readonly ? ['ro'] : ['rw']), ...(mount.recursive_read_only ? ['rro'] : [])],
      },
      propagation: mount.propagation,
    });
  }
  return prepared;
}

async function realHostPath(hostPath: string): Promise<string> {
  if (!hostPath || !path.isAbsolute(hostPath)) throw new InvalidArgumentError(`mount host_path "${hostPath}" must be an absolute path`);
  try {
    return await fs.realpath(hostPath);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new InvalidArgumentError(`mount host_path "${hostPath}" does not exist`);
    throw err;
  }
}

function propagationOption(propagation: cri.Mount['propagation']): string {
  switch (propagation) {
    case 'PROPAGATION_BIDIRECTIONAL':
      return 'rshared';
    case 'PROPAGATION_HOST_TO_CONTAINER':
      return 'rslave';
    default:
      return 'rprivate';
  }
}

function checkPropagation(source: string, propagation: cri.Mount['propagation'], mountInfo: MountInfo[]): void {
  const owner = mountInfo
    .filter((m) => source === m.mountPoint || source.startsWith(m.mountPoint === '/' ? '/' : `${m.mountPoint}/`))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0];
  if (!owner) throw new FailedPreconditionError(`cannot find the mount holding ${source}`);
  const shared = owner.optional.some((o) => o.startsWith('shared:'));
  const slave = owner.optional.some((o) => o.startsWith('master:'));
  if (propagation === 'PROPAGATION_BIDIRECTIONAL' && !shared) {
    throw new FailedPreconditionError(`${source} is on mount ${owner.mountPoint}, which is not shared: rshared propagation is impossible`);
  }
  if (propagation === 'PROPAGATION_HOST_TO_CONTAINER' && !shared && !slave) {
    throw new FailedPreconditionError(`${source} is on mount ${owner.mountPoint}, which is neither shared nor slave: rslave propagation is impossible`);
  }
}

/** The rootfs propagation the mounts require: rshared beats rslave beats the default. */
export function rootfsPropagationFor(mounts: PreparedMount[]): string | undefined {
  if (mounts.some((m) => m.propagation === 'PROPAGATION_BIDIRECTIONAL')) return 'rshared';
  if (mounts.some((m) => m.propagation === 'PROPAGATION_HOST_TO_CONTAINER')) return 'rslave';
  return undefined;
}

async function readSelfMountInfo(): Promise<MountInfo[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(' ');
      const separator = fields.indexOf('-');
      return { mountPoint: unescape(fields[4] ?? ''), optional: fields.slice(6, separator) };
    });
}

function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}
