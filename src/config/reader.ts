import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';

/** Typed access to one TOML table, with errors that name the offending key. */
export class Reader {
  constructor(
    private readonly value: unknown,
    readonly origin: string,
  ) {
    if (!isTable(value)) throw new InvalidArgumentError(`${origin}: expected a table`);
  }

  private get obj(): Record<string, unknown> {
    return this.value as Record<string, unknown>;
  }

  keys(): string[] {
    return Object.keys(this.obj);
  }

  invalid(key: string, why: string): InvalidArgumentError {
    return new InvalidArgumentError(`${this.origin}.${key}: ${why}`);
  }

  allowOnly(keys: string[]): void {
    for (const key of this.keys()) {
      if (!keys.includes(key)) throw this.invalid(key, `unknown key (expected one of: ${keys.join(', ')})`);
    }
  }

  string(key: string): string | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw this.invalid(key, 'must be a string');
    return v;
  }

  boolean(key: string): boolean | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw this.invalid(key, 'must be true or false');
    return v;
  }

  integer(key: string): number | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw this.invalid(key, 'must be an integer');
    return n;
  }

  absolutePath(key: string): string | undefined {
    const v = this.string(key);
    if (v !== undefined && !path.isAbsolute(v)) throw this.invalid(key, `must be an absolute path, got "${v}"`);
    return v === undefined ? undefined : path.normalize(v);
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T | undefined {
    const v = this.string(key);
    if (v !== undefined && !allowed.includes(v as T)) throw this.invalid(key, `must be one of ${allowed.join(', ')}`);
    return v as T | undefined;
  }

  stringArray(key: string): string[] | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((item) => typeof item === 'string')) {
      throw this.invalid(key, 'must be an array of strings');
    }
    return v as string[];
  }

  table(key: string): Reader | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (!isTable(v)) throw this.invalid(key, 'must be a table');
    return new Reader(v, `${this.origin}.${key}`);
  }
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}
