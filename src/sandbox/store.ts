import type { Logger } from 'pino';
import { IdIndex } from '../persistence/id-index.js';
import type { RecordStore, SetAsideRecord } from '../persistence/records.js';
import { criStateOf, type CriSandboxState, type Sandbox, type SandboxRecord } from './sandbox.js';

/**
 * The sandboxes of this daemon: in memory (found by id or unique prefix) and their records
 * on disk, kept together. A sandbox enters through `add`, which writes its record before it
 * is indexed; its record changes only through `update` (the change, then its write) and what
 * is only observed through `observe`; it leaves through `remove`. Callers outside the
 * sandbox service get read-only views.
 */
export class SandboxStore {
  private readonly index = new IdIndex<Sandbox>('sandbox');

  constructor(private readonly records: RecordStore<SandboxRecord>) {}

  /** Read every record from disk and index it; bad ones are set aside (see RecordStore.loadAll). */
  async load(log: Logger): Promise<readonly Sandbox[]> {
    const loaded = await this.records.loadAll(log);
    return loaded.map((record) => {
      const sandbox: Sandbox = { record };
      this.index.set(record.id, sandbox);
      return sandbox;
    });
  }

  /** Write the new record durably, then index it. */
  async add(record: SandboxRecord): Promise<Readonly<Sandbox>> {
    await this.records.save(record);
    const sandbox: Sandbox = { record };
    this.index.set(record.id, sandbox);
    return sandbox;
  }

  /** The sandbox whose id is, or uniquely starts with, `idOrPrefix`; NotFound otherwise. */
  get(idOrPrefix: string): Readonly<Sandbox> {
    return this.index.get(idOrPrefix);
  }

  /** Like get, but undefined when nothing matches. */
  find(idOrPrefix: string): Readonly<Sandbox> | undefined {
    return this.index.find(idOrPrefix);
  }

  /** The sandboxes matching every field the filter gives. */
  list(filter: SandboxListFilter = {}): Readonly<Sandbox>[] {
    const found = filter.id ? this.index.find(filter.id) : undefined;
    const candidates = filter.id ? (found ? [found] : []) : this.index.values();
    const wanted = Object.entries(filter.labels ?? {});
    const matches = (s: Sandbox): boolean =>
      (!filter.state || criStateOf(s) === filter.state) && wanted.every(([key, value]) => s.record.config.labels[key] === value);
    return candidates.filter(matches);
  }

  /**
   * Change a sandbox's record and write it. The change stands in memory even when the write
   * fails (the next write catches the disk up). `lifecycle` writes skip fsync (see
   * RecordStore.save). Undefined when the id is gone.
   */
  async update(id: string, change: (record: SandboxRecord) => void, kind: 'durable' | 'lifecycle' = 'durable'): Promise<Readonly<Sandbox> | undefined> {
    const sandbox = this.exact(id);
    if (!sandbox) return undefined;
    change(sandbox.record);
    await this.records.save(sandbox.record, kind);
    return sandbox;
  }

  /** Note what is only observed, never written (the pause container's exit, events sent). */
  observe(id: string, change: (sandbox: Omit<Sandbox, 'record'>) => void): Readonly<Sandbox> | undefined {
    const sandbox = this.exact(id);
    if (sandbox) change(sandbox);
    return sandbox;
  }

  /** Delete the record and its directory, then forget the sandbox; false if it was not here. */
  async remove(id: string): Promise<boolean> {
    if (!this.exact(id)) return false;
    await this.records.remove(id);
    this.index.delete(id);
    return true;
  }

  /** The directory of the sandbox's record and shared files (hosts, resolv.conf, hostname). */
  dirOf(id: string): string {
    return this.records.dirOf(id);
  }

  /** Records found invalid at load and moved aside, for the operator. */
  get setAside(): readonly SetAsideRecord[] {
    return this.records.setAside;
  }

  private exact(id: string): Sandbox | undefined {
    const sandbox = id ? this.index.find(id) : undefined;
    return sandbox?.record.id === id ? sandbox : undefined;
  }
}

/**
 * What `list` filters on: `id` (a full id or a unique prefix of one), the CRI state, and
 * `labels` each listed sandbox carries with these values.
 */
export type SandboxListFilter = Partial<{ id: string; state: CriSandboxState; labels: Readonly<Record<string, string>> }>;
