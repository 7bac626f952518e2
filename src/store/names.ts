import { AlreadyExistsError } from '../errors.js';

/**
 * Unique names (a pod's `<name>_<namespace>_<uid>_<attempt>`, a container's likewise): the
 * same metadata twice is refused while the first owner exists.
 */
export class NameRegistry {
  private readonly owners = new Map<string, string>();

  constructor(private readonly kind: string) {}

  reserve(name: string, id: string): void {
    const owner = this.owners.get(name);
    if (owner !== undefined && owner !== id) {
      throw new AlreadyExistsError(`${this.kind} name "${name}" is reserved for ${owner}`);
    }
    this.owners.set(name, id);
  }

  release(name: string, id: string): void {
    if (this.owners.get(name) === id) this.owners.delete(name);
  }

  ownerOf(name: string): string | undefined {
    return this.owners.get(name);
  }
}
