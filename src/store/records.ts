import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode, messageOf } from '../errors.js';
import { readJsonIfExists, removeDirAtomic, writeJsonAtomic } from './atomic.js';

/** Every persisted record carries a schema version, so a later tscri can migrate old ones. */
export interface VersionedRecord {
  version: number;
  id: string;
}

/**
 * Durable records, one directory per object: `<dir>/<id>/<fileName>`. The directory also
 * holds the object's other persistent files (hosts, resolv.conf …), so removing the record
 * removes everything the object owned on disk.
 */
export class RecordStore<T extends VersionedRecord> {
  constructor(
    readonly dir: string,
    private readonly fileName: string,
    private readonly currentVersion: number,
  ) {}

  dirOf(id: string): string {
    return path.join(this.dir, id);
  }

  async save(record: T): Promise<void> {
    await fs.mkdir(this.dirOf(record.id), { recursive: true, mode: 0o700 });
    await writeJsonAtomic(path.join(this.dirOf(record.id), this.fileName), record);
  }

  async remove(id: string): Promise<void> {
    await removeDirAtomic(this.dirOf(id));
  }

  /**
   * Read every record. A record that cannot be read or has an unknown version is logged
   * and skipped, never fatal: one bad file must not keep the daemon from starting. Leftovers
   * of interrupted removals (`*.removing-*`) are deleted.
   */
  async loadAll(log: Logger): Promise<T[]> {
    let entries: string[];
    try {
      entries = await fs.readdir(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw err;
    }
    const records: T[] = [];
    for (const entry of entries) {
      if (entry.includes('.removing-')) {
        await fs.rm(path.join(this.dir, entry), { recursive: true, force: true });
        continue;
      }
      try {
        const record = await readJsonIfExists<T>(path.join(this.dir, entry, this.fileName));
        if (record === undefined) {
          log.warn({ dir: path.join(this.dir, entry) }, 'directory without a record; removing it');
          await fs.rm(path.join(this.dir, entry), { recursive: true, force: true });
        } else if (record.version !== this.currentVersion || record.id !== entry) {
          log.error({ dir: path.join(this.dir, entry), version: record.version }, 'record of unknown version or id; skipped');
        } else {
          records.push(record);
        }
      } catch (err) {
        log.error({ dir: path.join(this.dir, entry), err: messageOf(err) }, 'unreadable record; skipped');
      }
    }
    return records;
  }
}
