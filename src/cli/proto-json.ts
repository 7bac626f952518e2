import protobuf from 'protobufjs';
import { PROTO_PATH } from '../api/cri.js';
import { InvalidArgumentError } from '../errors.js';

let root: protobuf.Root | undefined;

function typeOf(name: string): protobuf.Type {
  root ??= new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true });
  return root.lookupType(`runtime.v1.${name}`);
}

/**
 * Turn a JSON config file (as crictl reads them: snake_case or camelCase field names, enums
 * by name or number) into a CRI message object. Unknown fields are an error naming their
 * path, so a typo does not silently drop a setting.
 */
export function messageFromJson(typeName: string, value: unknown): Record<string, unknown> {
  const type = typeOf(typeName);
  const normalized = normalizeKeys(type, value, typeName);
  const message = type.fromObject(normalized as Record<string, unknown>);
  return type.toObject(message, { longs: String, enums: String, defaults: false, bytes: String }) as Record<string, unknown>;
}

/** Render a CRI message object with protojson's lowerCamelCase field names (map keys untouched). */
export function messageToJson(typeName: string, value: unknown): unknown {
  return renameKeys(typeOf(typeName), value, (field) => camelCase(field.name));
}

function normalizeKeys(type: protobuf.Type, value: unknown, where: string): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError(`${where}: expected an object`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const field = type.fields[key] ?? type.fields[snakeCase(key)] ?? findByCamel(type, key);
    if (!field) throw new InvalidArgumentError(`${where}: unknown field "${key}"`);
    out[field.name] = convertField(field, item, `${where}.${key}`, (t, v, w) => normalizeKeys(t, v, w));
  }
  return out;
}

function renameKeys(type: protobuf.Type, value: unknown, nameOf: (field: protobuf.Field) => string): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const field = type.fields[key];
    if (!field) {
      out[key] = item;
      continue;
    }
    out[nameOf(field)] = convertField(field, item, key, (t, v) => renameKeys(t, v, nameOf));
  }
  return out;
}

/** Apply `convert` to the message values of a field: itself, each array item, or each map value. */
function convertField(
  field: protobuf.Field,
  value: unknown,
  where: string,
  convert: (type: protobuf.Type, value: unknown, where: string) => unknown,
): unknown {
  field.resolve();
  const nested = field.resolvedType;
  if (!(nested instanceof protobuf.Type) || value === null || value === undefined) return value;
  if (field instanceof protobuf.MapField) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, convert(nested, v, `${where}.${k}`)]));
  }
  if (field.repeated && Array.isArray(value)) return value.map((v, i) => convert(nested, v, `${where}[${i}]`));
  return convert(nested, value, where);
}

function findByCamel(type: protobuf.Type, key: string): protobuf.Field | undefined {
  return type.fieldsArray.find((field) => camelCase(field.name) === key);
}

function snakeCase(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

function camelCase(name: string): string {
  return name.replace(/_([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase());
}
