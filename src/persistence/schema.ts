/**
 * Schemas for what the daemon reads back from disk. A record is checked field by field as it
 * is loaded, so a truncated, hand-edited or tampered file is refused with the path of the
 * first bad field instead of being acted on (a netns path taken from a record is deleted at
 * teardown; it had better be one tscri made).
 *
 * A schema is a function from unknown to T that throws a SchemaError naming the field.
 */

export class SchemaError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field || 'record'}: ${problem}`);
  }
}

export type Schema<T> = (value: unknown, field: string) => T;

export type Infer<S> = S extends Schema<infer T> ? T : never;

const describe = (value: unknown): string => (value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value);

export const string =
  (pattern?: RegExp, hint?: string): Schema<string> =>
  (value, field) => {
    if (typeof value !== 'string') throw new SchemaError(field, `expected a string, found ${describe(value)}`);
    if (pattern && !pattern.test(value)) throw new SchemaError(field, `is not ${hint ?? `of the form ${pattern}`}`);
    return value;
  };

export const integer =
  (min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): Schema<number> =>
  (value, field) => {
    if (typeof value !== 'number' || !Number.isInteger(value)) throw new SchemaError(field, `expected an integer, found ${describe(value)}`);
    if (value < min || value > max) throw new SchemaError(field, `${value} is outside ${min}..${max}`);
    return value;
  };

/** A non-negative decimal in a string, as int64 nanosecond timestamps are kept. */
export const decimal: Schema<string> = string(/^\d{1,20}$/, 'a decimal number');

export const boolean: Schema<boolean> = (value, field) => {
  if (typeof value !== 'boolean') throw new SchemaError(field, `expected true or false, found ${describe(value)}`);
  return value;
};

export const literal =
  <T extends string | number>(...allowed: T[]): Schema<T> =>
  (value, field) => {
    if (!allowed.includes(value as T)) throw new SchemaError(field, `expected one of ${allowed.join(', ')}`);
    return value as T;
  };

export const optional =
  <T>(schema: Schema<T>): Schema<T | undefined> =>
  (value, field) =>
    value === undefined ? undefined : schema(value, field);

export const nullable =
  <T>(schema: Schema<T>): Schema<T | null> =>
  (value, field) =>
    value === null || value === undefined ? null : schema(value, field);

export const array =
  <T>(item: Schema<T>, max = 100_000): Schema<T[]> =>
  (value, field) => {
    if (!Array.isArray(value)) throw new SchemaError(field, `expected an array, found ${describe(value)}`);
    if (value.length > max) throw new SchemaError(field, `has ${value.length} entries, more than ${max}`);
    return value.map((v, i) => item(v, `${field}[${i}]`));
  };

/** A map from string keys to values of one schema. */
export const dictionary =
  <T>(item: Schema<T>): Schema<Record<string, T>> =>
  (value, field) => {
    if (!isPlainObject(value)) throw new SchemaError(field, `expected an object, found ${describe(value)}`);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, item(v, `${field}[${JSON.stringify(k)}]`)]));
  };

/** Any JSON object, kept as it is (for content the daemon only passes on, like a CNI result). */
export const anyObject: Schema<Record<string, unknown>> = (value, field) => {
  if (!isPlainObject(value)) throw new SchemaError(field, `expected an object, found ${describe(value)}`);
  return value;
};

/**
 * An object with the given fields (each checked), keeping fields the schema does not name:
 * records carry the CRI config they were made from, which is only passed on.
 */
export const object =
  <S extends Record<string, Schema<unknown>>>(shape: S): Schema<{ [K in keyof S]: Infer<S[K]> }> =>
  (value, field) => {
    if (!isPlainObject(value)) throw new SchemaError(field, `expected an object, found ${describe(value)}`);
    const out: Record<string, unknown> = { ...value };
    for (const [key, schema] of Object.entries(shape)) {
      const checked = schema(value[key], field ? `${field}.${key}` : key);
      if (checked === undefined) delete out[key];
      else out[key] = checked;
    }
    return out as { [K in keyof S]: Infer<S[K]> };
  };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A 64-hex-digit id as tscri makes them. */
export const OBJECT_ID = /^[0-9a-f]{64}$/;
/** An absolute path without `..` components. */
export const ABSOLUTE_PATH = /^\/(?!.*(^|\/)\.\.(\/|$)).*$/;
