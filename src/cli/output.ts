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
 * Verbose `info` maps carry JSON strings; show them parsed, the way crictl's inspect
 * commands do.
 */
export function parsedInfo(info: Record<string, string> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(info ?? {})) {
    try {
      out[key] = JSON.parse(value);
    } catch {
      out[key] = value;
    }
  }
  return out;
}
