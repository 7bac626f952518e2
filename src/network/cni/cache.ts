/**
 * The attachment cache: what an ADD used (config, args, netns) and what it returned, one
 * file per (container, interface). DEL must replay exactly the ADD's inputs even after a
 * daemon restart or a change of the conf dir, and give plugins the ADD's result as
 * prevResult; this file is where those come from.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { InternalError } from '../../errors.js';
import { readJsonIfExists, syncDir, writeJsonAtomic } from '../../persistence/atomic.js';
import type { Attachment } from './types.js';
import { isRecord } from './config.js';

/** The attachment as the ADD was given it, with the network it ran and what it returned. */
export interface CacheEntry extends Attachment {
  version: 1;
  networkName: string;
  /** The conf file the network came from. */
  source: string;
  /** The complete conflist object the ADD ran with. */
  config: Record<string, unknown>;
  /** The final result exactly as the last plugin printed it; absent until the chain succeeded. */
  result?: unknown;
}

export class AttachmentCache {
  constructor(readonly dir: string) {}

  /** Keyed without the network name, so DEL finds the entry without knowing the network. */
  fileFor(containerId: string, ifName: string): string {
    for (const part of [containerId, ifName]) {
      if (part === '' || part.includes('/') || part === '.' || part === '..') {
        throw new InternalError(`cannot derive a CNI cache file name from "${containerId}" / "${ifName}"`);
      }
    }
    return path.join(this.dir, `${containerId}-${ifName}.json`);
  }

  async init(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  async write(entry: CacheEntry): Promise<void> {
    await writeJsonAtomic(this.fileFor(entry.containerId, entry.ifName), entry);
  }

  /** The entry, or undefined when there is none; a malformed entry is an error. */
  async read(containerId: string, ifName: string): Promise<CacheEntry | undefined> {
    const file = this.fileFor(containerId, ifName);
    let value: unknown;
    try {
      value = await readJsonIfExists<unknown>(file);
    } catch (err) {
      throw new InternalError(`unreadable CNI cache entry ${file}`, { cause: err });
    }
    if (value === undefined) return undefined;
    const problem = entryProblem(value, containerId, ifName);
    if (problem !== undefined) throw new InternalError(`malformed CNI cache entry ${file}: ${problem}`);
    return value as CacheEntry;
  }

  async remove(containerId: string, ifName: string): Promise<void> {
    await fs.rm(this.fileFor(containerId, ifName), { force: true });
    await syncDir(this.dir);
  }
}

function entryProblem(value: unknown, containerId: string, ifName: string): string | undefined {
  if (!isRecord(value)) return 'not a JSON object';
  if (value['version'] !== 1) return `unknown version ${JSON.stringify(value['version'])}`;
  if (value['containerId'] !== containerId || value['ifName'] !== ifName) return 'belongs to another attachment';
  for (const field of ['netnsPath', 'networkName', 'source']) {
    if (typeof value[field] !== 'string') return `"${field}" is not a string`;
  }
  if (!isRecord(value['config'])) return '"config" is not an object';
  if (!isRecord(value['capabilityArgs'])) return '"capabilityArgs" is not an object';
  const args = value['args'];
  const isPair = (pair: unknown): boolean =>
    Array.isArray(pair) && pair.length === 2 && pair.every((part) => typeof part === 'string');
  if (!Array.isArray(args) || !args.every(isPair)) return '"args" is not a list of key/value pairs';
  return undefined;
}
