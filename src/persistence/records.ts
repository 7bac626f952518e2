import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode, messageOf } from '../errors.js';
import { REMOVING_MARK, moveAside, readJsonIfExists, removeDirAtomic, writeJsonAtomic } from './atomic.js';
import { SchemaError, type Schema } from './schema.js';

/** Every persisted record carries a schema version, so a later tscri can migrate old ones. */
export interface VersionedRecord {
  version: number;
  id: string;
}

/** A record that failed its schema on load: moved aside, never acted on. */
export interface SetAsideRecord {
  kind: string;
  id: string;
  /** Where it was moved, for the operator to inspect. */
  movedTo: string;
  problem: string;
}

/**
 * Durable records, one directory per object: `<dir>/<id>/<fileName>`. The directory also
 * holds the object's other persistent files (hosts, resolv.conf …), so removing the record
 * removes everything the object owned on disk. Records are read back through a schema.
 */
export class RecordStore<T extends VersionedRecord> {
  /** Records found invalid by the last loadAll. */
  readonly setAside: SetAsideRecord[] = [];

  constructor(
    readonly dir: string,
    private readonly fileName: string,
    private readonly currentVersion: number,
    private readonly schema: Schema<T>,
    private readonly kind: string,
    /**
     * Finishes a removal a crash interrupted, given the object's id and its retired
     * directory (see retire); by default the directory is deleted.
     */
    private readonly finishRemoval: (id: string, retiredDir: string) => Promise<void> = (_id, dir) => fs.rm(dir, { recursive: true, force: true }),
  ) {}

  dirOf(id: string): string {
    return path.join(this.dir, id);
  }

  /**
   * Write the record (creating its directory). `lifecycle` marks a save of a state a power
   * loss ends anyway (a container created, started or exited, a pod ready: after a reboot
   * every container has ended and every pod is NOTREADY, whatever the record said), written
   * without fsync; what the first, durable save of the record named is still named.
   */
  async save(record: T, kind: 'durable' | 'lifecycle' = 'durable'): Promise<void> {
    await fs.mkdir(this.dirOf(record.id), { recursive: true, mode: 0o700 });
    await writeJsonAtomic(path.join(this.dirOf(record.id), this.fileName), record, { durable: kind === 'durable' });
  }

  async remove(id: string): Promise<void> {
    await removeDirAtomic(this.dirOf(id));
  }

  /**
   * Take the object's directory out of the store in one rename, leaving its contents to be
   * deleted by the caller: from here on the record no longer exists, and a restart finishes
   * the removal (finishRemoval). Returns the directory's new path; undefined if it had none.
   */
  async retire(id: string): Promise<string | undefined> {
    return moveAside(this.dirOf(id));
  }


  /**
   * Read every record. One that cannot be parsed, has an unknown version, or fails its schema
   * is reported and moved aside to `<root>/quarantine/`, never fatal and never acted on: one
   * bad file must not keep the daemon from starting, nor make it delete what a tampered path
   * names. Leftovers of interrupted removals (`*.removing-*`) are deleted.
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
      if (entry.includes(REMOVING_MARK)) {
        await this.finishRemoval(entry.slice(0, entry.indexOf(REMOVING_MARK)), path.join(this.dir, entry)).catch((err: unknown) =>
          log.error({ dir: entry, err }, `cannot finish removing a ${this.kind}; left for the next start`),
        );
        continue;
      }
      const dir = path.join(this.dir, entry);
      try {
        const value = await readJsonIfExists<unknown>(path.join(dir, this.fileName));
        if (value === undefined) {
          log.warn({ dir }, 'directory without a record; removing it');
          await fs.rm(dir, { recursive: true, force: true });
          continue;
        }
        records.push(this.check(value, entry));
      } catch (err) {
        await this.putAside(entry, messageOf(err), log);
      }
    }
    return records;
  }

  private check(value: unknown, entry: string): T {
    const version = (value as { version?: unknown } | null)?.version;
    if (version !== this.currentVersion) throw new SchemaError('version', `${String(version)} is not ${this.currentVersion}`);
    const record = this.schema(value, '');
    if (record.id !== entry) throw new SchemaError('id', `does not match its directory ${entry}`);
    return record;
  }

  private async putAside(entry: string, problem: string, log: Logger): Promise<void> {
    const quarantine = path.join(path.dirname(this.dir), 'quarantine');
    const movedTo = path.join(quarantine, `${this.kind}-${entry}-${Date.now()}`);
    try {
      await fs.mkdir(quarantine, { recursive: true, mode: 0o700 });
      await fs.rename(path.join(this.dir, entry), movedTo);
      this.setAside.push({ kind: this.kind, id: entry, movedTo, problem });
      log.error({ [this.kind]: entry, problem, movedTo }, `invalid ${this.kind} record set aside; what it describes is left for the operator`);
    } catch (err) {
      log.error({ [this.kind]: entry, problem, err }, `invalid ${this.kind} record could not be set aside; skipped`);
    }
  }
}
