import type { Logger } from 'pino';
import { IdIndex } from '../persistence/id-index.js';
import type { RecordStore, SetAsideRecord } from '../persistence/records.js';
import { criStateOf, type ContainerRecord, type CriContainerState } from './container.js';

/** Which containers `list` returns; every field given must match. */
export interface ContainerListFilter {
  /** A full id or a unique prefix of one. */
  id?: string;
  /** A full sandbox id (callers resolve prefixes through the sandbox service). */
  sandboxId?: string;
  state?: CriContainerState;
  /** Labels every listed container carries with these values. */
  labels?: Readonly<Record<string, string>>;
}

/**
 * The containers of this daemon: records in memory (found by id or unique prefix) and on
 * disk, kept together. A record enters through `add`, which writes it before it is indexed,
 * changes only through `update` (the change, then its write), and leaves through `remove`
 * or `retire`. Callers get read-only views: nothing outside the store mutates a record.
 */
export class ContainerStore {
  private readonly index = new IdIndex<ContainerRecord>('container');

  constructor(private readonly records: RecordStore<ContainerRecord>) {}

  /** Read every record from disk and index it; bad ones are set aside (see RecordStore.loadAll). */
  async load(log: Logger): Promise<readonly ContainerRecord[]> {
    const loaded = await this.records.loadAll(log);
    for (const record of loaded) this.index.set(record.id, record);
    return loaded;
  }

  /** Write the new record durably, then index it. */
  async add(record: ContainerRecord): Promise<void> {
    await this.records.save(record);
    this.index.set(record.id, record);
  }

  /** The record whose id is, or uniquely starts with, `idOrPrefix`; NotFound otherwise. */
  get(idOrPrefix: string): Readonly<ContainerRecord> {
    return this.index.get(idOrPrefix);
  }

  /** Like get, but undefined when nothing matches. */
  find(idOrPrefix: string): Readonly<ContainerRecord> | undefined {
    return this.index.find(idOrPrefix);
  }

  list(filter: ContainerListFilter = {}): Readonly<ContainerRecord>[] {
    let records: ContainerRecord[];
    if (filter.id) {
      const match = this.index.find(filter.id);
      records = match ? [match] : [];
    } else {
      records = this.index.values();
    }
    const labels = Object.entries(filter.labels ?? {});
    return records.filter(
      (r) =>
        (filter.sandboxId === undefined || r.sandboxId === filter.sandboxId) &&
        (filter.state === undefined || criStateOf(r) === filter.state) &&
        labels.every(([k, v]) => r.config.labels[k] === v),
    );
  }

  /**
   * Change a record and write it. The change stands in memory even when the write fails:
   * what it records (a start, an exit) has happened, and the next write catches the disk up.
   * `lifecycle` writes skip fsync (see RecordStore.save). Undefined when the id is gone.
   */
  async update(id: string, change: (record: ContainerRecord) => void, kind: 'durable' | 'lifecycle' = 'durable'): Promise<Readonly<ContainerRecord> | undefined> {
    const record = this.index.find(id);
    if (!record || record.id !== id) return undefined;
    change(record);
    await this.records.save(record, kind);
    return record;
  }

  /** Delete the record and its directory, then forget it. */
  async remove(id: string): Promise<void> {
    await this.records.remove(id);
    this.index.delete(id);
  }

  /**
   * Take the record's directory out of the store in one rename and forget the record: from
   * here on the container no longer exists. The retired directory is the caller's to delete.
   */
  async retire(id: string): Promise<string | undefined> {
    const retired = await this.records.retire(id);
    this.index.delete(id);
    return retired;
  }

  /** Records found invalid at load and moved aside, for the operator. */
  get setAside(): readonly SetAsideRecord[] {
    return this.records.setAside;
  }
}
