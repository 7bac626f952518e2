import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { quote } from '../validation/fields.js';

/**
 * Objects by id, where callers may name an object by any unique prefix of its id, as
 * crictl users do with the 13-character ids it prints.
 */
export class IdIndex<T> {
  private readonly items = new Map<string, T>();

  constructor(private readonly kind: string) {}

  set(id: string, item: T): void {
    this.items.set(id, item);
  }

  delete(id: string): void {
    this.items.delete(id);
  }

  values(): T[] {
    return [...this.items.values()];
  }

  get size(): number {
    return this.items.size;
  }

  /** The object whose id is, or uniquely starts with, `idOrPrefix`. */
  get(idOrPrefix: string): T {
    const found = this.find(idOrPrefix);
    if (found === undefined) throw new NotFoundError(`${this.kind} ${quote(idOrPrefix)} not found`);
    return found;
  }

  /** Like get, but undefined when nothing matches. */
  find(idOrPrefix: string): T | undefined {
    if (!idOrPrefix) throw new InvalidArgumentError(`${this.kind} id must not be empty`);
    const exact = this.items.get(idOrPrefix);
    if (exact !== undefined) return exact;
    let match: T | undefined;
    for (const [id, item] of this.items) {
      if (!id.startsWith(idOrPrefix)) continue;
      if (match !== undefined) throw new InvalidArgumentError(`${this.kind} id prefix ${quote(idOrPrefix)} is ambiguous`);
      match = item;
    }
    return match;
  }
}
