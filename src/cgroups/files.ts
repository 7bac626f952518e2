/**
 * Readers for cgroup and /proc files. A cgroup can vanish between two reads and a kernel may
 * lack a file (no swap accounting, no PSI, an older kernel), so every reader answers
 * `undefined` (or empty) for a file that is missing, unreadable or not what it should be,
 * and the caller decides what an absent value means.
 */
import { promises as fs } from 'node:fs';

/** A file's text, or undefined when it cannot be read. */
export async function readText(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** A file holding one non-negative integer. `max` (v2's "no limit") reads as undefined. */
export async function readNumber(file: string): Promise<number | undefined> {
  return parseCount((await readText(file))?.trim());
}

/** A "key value" per line file (memory.stat, cpu.stat, memory.events). */
export async function readKeyed(file: string): Promise<Record<string, number>> {
  return parseKeyed((await readText(file)) ?? '');
}

/** The non-empty lines of a file (cgroup.procs, tasks). */
export async function readLines(file: string): Promise<string[]> {
  return ((await readText(file)) ?? '').split('\n').filter((line) => line.trim() !== '');
}

export function parseKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [key, value, extra] = line.trim().split(/\s+/);
    const count = parseCount(value);
    if (key && count !== undefined && extra === undefined) out[key] = count;
  }
  return out;
}

/** A decimal count; anything else (empty, "max", negative, garbage) is undefined. */
export function parseCount(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}
