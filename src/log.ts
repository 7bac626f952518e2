import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogFormat, LogLevel } from './config/config.js';
import { shorten } from './util/text.js';

export type { Logger };

/**
 * The daemon's root logger on stderr, written synchronously so that the last lines before a
 * crash are not lost in a buffer. Operations log through children that carry
 * `podSandboxId` / `containerId` (and the pod's name and namespace), so every line of one
 * operation can be found by id or by pod.
 *
 * Every line passes through `rewriteLine` on its way out: pino appends a child's bindings
 * and a call's fields after its parent's without looking (a documented trade-off for speed),
 * so a key bound twice would appear twice, which many collectors reject. Parsing the line
 * keeps the most specific value of each key, and the same step renders the text format.
 */
export function createLogger(level: LogLevel, format: LogFormat = 'json', out: DestinationStream = pino.destination({ dest: 2, sync: true })): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
    },
    { write: (line: string) => out.write(rewriteLine(line, format)) },
  );
}

/** The longest message and stack an error's log entry keeps (of it and of each cause). */
const MAX_ERROR_MESSAGE_CHARS = 4096;
const MAX_ERROR_STACK_CHARS = 16 * 1024;

type SerializedError = ReturnType<typeof pino.stdSerializers.errWithCause>;

/**
 * An `err` field as `{type, message, stack, cause: {…}}` plus the error's own fields (a
 * TscriError's `code` and `hint`, an errno's `code`), each cause in full rather than folded
 * into the message as pino's default does. Messages and stacks are shortened: errors quote
 * what clients and registries sent, which must not make a line of megabytes.
 */
function serializeError(err: unknown): unknown {
  const entry = pino.stdSerializers.errWithCause(err as Error);
  return entry === err ? err : bounded(entry); // the same value back: not an error
}

function bounded(entry: SerializedError): SerializedError {
  if (typeof entry.message === 'string') entry.message = shorten(entry.message, MAX_ERROR_MESSAGE_CHARS);
  if (typeof entry.stack === 'string') entry.stack = shorten(entry.stack, MAX_ERROR_STACK_CHARS);
  const cause = (entry as { cause?: unknown }).cause;
  if (typeof cause === 'object' && cause !== null) bounded(cause as SerializedError);
  return entry;
}

/** A logger that drops everything, for tests and tools that need none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Fields the text format shows in its fixed columns, or (pid) not at all. */
const TEXT_FIXED = new Set(['time', 'level', 'msg', 'pid']);

/**
 * One pino line as it is written: JSON with each key once (the last value, which is the
 * child's or the call's own, wins), or a readable `time LEVEL msg key=value…` line.
 */
export function rewriteLine(line: string, format: LogFormat): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line; // not ours to judge: pass it on as it came
  }
  return format === 'text' ? `${textLine(entry)}\n` : `${JSON.stringify(entry)}\n`;
}

function textLine(entry: Record<string, unknown>): string {
  const head = [String(entry.time ?? ''), String(entry.level ?? '').toUpperCase().padEnd(5), String(entry.msg ?? '').replace(/\n/g, '\\n')];
  const fields = Object.entries(entry)
    .filter(([key, value]) => !TEXT_FIXED.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${textValue(value)}`);
  return [...head, ...fields].join(' ').trimEnd();
}

/** Bare when unambiguous; quoted (JSON) when a space, quote or `=` would blur the line. */
function textValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}
