import { InvalidArgumentError } from '../errors.js';
import { messageToJson } from './proto-json.js';

/** Print rows as left-aligned columns separated by three spaces, like crictl's tables. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  process.stdout.write([line(header), ...rows.map(line)].join('\n') + '\n');
}

/** Print a CRI message as indented protojson-style JSON. */
export function printMessage(typeName: string, message: unknown): void {
  printJson(messageToJson(typeName, message));
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/**
 * Decimal units with `precision` significant digits, as docker and crictl print sizes
 * (three for images, four for stats).
 */
export function humanSize(bytes: number, precision = 3): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${Number(value.toPrecision(precision))}${units[unit]}`;
}

/** `--seconds` of a stats command as milliseconds: a positive number, as crictl takes it. */
export function sampleMs(seconds: string): number {
  const value = Number(seconds);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(`invalid --seconds "${seconds}": expected a positive number of seconds`);
  return value * 1000;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** "3 minutes ago" from a CRI nanosecond timestamp. */
export function ago(nanos: string | number): string {
  const seconds = Math.max(0, Math.floor((Date.now() - Number(BigInt(nanos) / 1_000_000n)) / 1000));
  return `${humanDuration(seconds)} ago`;
}

function humanDuration(seconds: number): string {
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.round(seconds / 60);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(seconds / 3600);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  const days = Math.round(hours / 24);
  if (days < 14) return `${days} days`;
  return `${Math.round(days / 7)} weeks`;
}

/** Ids are shown as 13 characters unless --no-trunc, as crictl does. */
export function shortId(id: string, noTrunc: boolean): string {
  return noTrunc ? id : id.slice(0, 13);
}

/**
 * Verbose `info` maps carry JSON strings; show them parsed (the others as plain text), the
 * way crictl's inspect commands do.
 */
export function parsedInfo(info: Record<string, string> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(info ?? {})) {
    out[key] = /^\s*[[{]/.test(value) ? parseOr(value) : value.replace(/^"|"$/g, '');
  }
  return out;
}

function parseOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * What `inspect`, `inspectp` and `inspecti` print for one object, laid out as crictl lays it
 * out: `status` beside each key of the verbose info (parsed), every object's keys sorted.
 */
export function inspectView(status: Record<string, unknown>, info: Record<string, string> | undefined): Record<string, unknown> {
  return sortedKeys({ ...parsedInfo(info), status }) as Record<string, unknown>;
}

/** One object printed as itself, several as an array, as crictl prints them. */
export function printInspected(views: Record<string, unknown>[]): void {
  if (views.length > 0) printJson(views.length === 1 ? views[0] : views);
}

/** The view of each name in turn (undefined: printed otherwise), then all of them as `printInspected` prints them. */
export async function inspectEach(names: string[], viewOf: (name: string) => Promise<Record<string, unknown> | undefined>): Promise<void> {
  const views: Record<string, unknown>[] = [];
  for (const name of names) {
    const view = await viewOf(name);
    if (view) views.push(view);
  }
  printInspected(views);
}

/** Run `fn` on each id in turn, one line printed after each (the id, unless `line` says otherwise). */
export async function eachInTurn(ids: string[], fn: (id: string) => Promise<unknown>, line = (id: string): string => id): Promise<void> {
  for (const id of ids) {
    await fn(id);
    process.stdout.write(`${line(id)}\n`);
  }
}

function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(entries.map(([k, v]) => [k, sortedKeys(v)]));
}

/**
 * A CRI nanosecond timestamp as RFC 3339 in UTC with as many fractional digits as it needs;
 * 0 (never) is the zero time crictl prints, 0001-01-01T00:00:00Z.
 */
export function rfc3339(nanos: string | number | bigint): string {
  const value = BigInt(nanos);
  if (value <= 0n) return '0001-01-01T00:00:00Z';
  const seconds = value / 1_000_000_000n;
  const fraction = (value % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${whole}${fraction ? `.${fraction}` : ''}Z`;
}

/** One CPU sample: cumulative core-nanoseconds used, and when (nanoseconds) it was read. */
export interface CpuSample {
  usageCoreNanoSeconds: string | number | bigint;
  timestamp: string | number | bigint;
}

/**
 * CPU % between two samples, as crictl computes it: core time used over wall time elapsed,
 * so a container busy on two cores shows 200.00. A container that used nothing, or two
 * samples taken at the same instant, show 0.00.
 */
export function cpuPercent(before: CpuSample | undefined, after: CpuSample | undefined): string {
  if (!before || !after) return '0.00';
  const used = Number(BigInt(after.usageCoreNanoSeconds) - BigInt(before.usageCoreNanoSeconds));
  const elapsed = Number(BigInt(after.timestamp) - BigInt(before.timestamp));
  if (BigInt(after.usageCoreNanoSeconds) === 0n || elapsed <= 0 || used < 0) return '0.00';
  return ((used / elapsed) * 100).toFixed(2);
}
