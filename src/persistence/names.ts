import { AlreadyExistsError } from '../errors.js';
import { quote } from '../validation/fields.js';

/**
 * The parts of a reserved name joined with `_`, each with `%` and `_` percent-escaped first,
 * so different parts can never join to the same name (`web/team_a` + `x` against
 * `web` + `team_a/x` would both give `web/team_a_x` if joined as they are).
 */
export function joinNameParts(parts: readonly string[]): string {
  return parts.map((part) => part.replaceAll('%', '%25').replaceAll('_', '%5F')).join('_');
}

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
      throw new AlreadyExistsError(`${this.kind} name ${quote(name, 256)} is reserved for ${owner}`);
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
