/**
 * Naming rules of layer entries: where an entry lands inside the layer directory, which names
 * are overlay markers, and the error for a layer that breaks the rules.
 *
 * All paths here are relative to the layer root, '/'-separated, without `.` or `..`
 * components; the root itself is ''.
 */
import path from 'node:path';
import { TscriError } from '../../errors.js';
import type { UnsafeLayerErrorShape } from './unpack-types.js';

/** A layer entry that would write outside its directory, or that cannot be represented. */
export class UnsafeLayerError extends TscriError implements UnsafeLayerErrorShape {
  constructor(
    readonly entry: string,
    readonly reason: string,
  ) {
    super('Internal', `layer entry "${entry}" rejected: ${reason}`);
  }
}

export const LAYER_ROOT = '';

const WHITEOUT_PREFIX = '.wh.';
/** Names starting like this are aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`), not deletions. */
const AUFS_META_PREFIX = '.wh..wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

/**
 * `name` (an entry name or a hard-link target) as a path inside the layer. Absolute names and
 * names whose `..` climb above the root are refused rather than clamped to the root the way
 * containerd does: such a layer is broken or hostile, and relocating its entries would unpack
 * something other than what it says.
 *
 * @param entry the entry being unpacked, to name in the error
 * @param role what `name` is when it is not the entry's own name, for the error
 */
export function layerPath(name: string, entry: string, role?: string): string {
  const subject = role === undefined ? '' : `${role} "${name}" `;
  // umoci (and so images built with it) names the root entry "/": it is the layer directory
  // itself, not a path outside it. Any other absolute name is refused.
  if (role === undefined && /^\/+$/.test(name)) return LAYER_ROOT;
  if (name.startsWith('/')) throw new UnsafeLayerError(entry, `${subject}is an absolute path`);
  // normalize also drops `./` prefixes and folds `a/../b`, which is harmless: the folded path
  // is never walked on disk, so a symlink at `a` cannot redirect it.
  const clean = path.posix.normalize(name).replace(/\/+$/, '');
  if (clean === '.' || clean === '') return LAYER_ROOT;
  if (climbsAboveRoot(clean)) throw new UnsafeLayerError(entry, `${subject}escapes the layer directory`);
  return clean;
}

/** The directory holding `rel` ('' for top-level entries). */
export function parentOf(rel: string): string {
  const parent = path.posix.dirname(rel);
  return parent === '.' ? LAYER_ROOT : parent;
}

export function joinLayerPath(dir: string, name: string): string {
  return dir === LAYER_ROOT ? name : `${dir}/${name}`;
}

/** The strict ancestors of `rel`, outermost first, without the root: `a/b/c` → `a`, `a/b`. */
export function ancestorsOf(rel: string): string[] {
  const parts = rel.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/** True when `inner` is `outer` itself or lies below it. */
export function isWithin(inner: string, outer: string): boolean {
  return outer === LAYER_ROOT || inner === outer || inner.startsWith(`${outer}/`);
}

/**
 * True when a relative symlink target, resolved lexically from the link's directory, climbs
 * above the layer root. Absolute targets never do: the container resolves them in its own root.
 */
export function symlinkEscapes(linkRel: string, target: string): boolean {
  if (target.startsWith('/')) return false;
  return climbsAboveRoot(path.posix.join(parentOf(linkRel), target));
}

function climbsAboveRoot(normalized: string): boolean {
  return normalized === '..' || normalized.startsWith('../');
}

/** What an OCI whiteout name asks for (see the OCI image-spec, "Whiteouts"). */
export type WhiteoutMarker =
  /** `dir/.wh.name`: `dir/name` of lower layers is deleted. */
  | { kind: 'whiteout'; dir: string; hidden: string }
  /** `dir/.wh..wh..opq`: nothing of `dir` in lower layers shows through. */
  | { kind: 'opaque'; dir: string }
  /** Other `.wh..wh.*` names and what lies below them: aufs internals, meaningless to overlay. */
  | { kind: 'aufs-internal' };

/** The marker `rel` names, or undefined for an ordinary entry. */
export function whiteoutMarkerOf(rel: string, entry: string): WhiteoutMarker | undefined {
  const base = path.posix.basename(rel);
  const dir = parentOf(rel);
  // Entries below an aufs metadata directory (`.wh..wh.plnk/1234.5678`) are aufs internals too.
  if (dir.split('/').some((part) => part.startsWith(AUFS_META_PREFIX))) return { kind: 'aufs-internal' };
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  if (base === OPAQUE_MARKER) return { kind: 'opaque', dir };
  if (base.startsWith(AUFS_META_PREFIX)) return { kind: 'aufs-internal' };
  const hidden = base.slice(WHITEOUT_PREFIX.length);
  // `.wh.` alone, `.wh..` or `.wh...` would whiteout the directory itself or its parent.
  if (hidden === '' || hidden === '.' || hidden === '..') {
    throw new UnsafeLayerError(entry, 'whiteout does not name a file');
  }
  return { kind: 'whiteout', dir, hidden: joinLayerPath(dir, hidden) };
}
