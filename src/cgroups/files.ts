/**
 * Readers for cgroup and /proc files. A cgroup can vanish between two reads and a kernel may
 * lack a file (no swap accounting, no PSI, an older kernel), so every reader answers
 * `undefined` (or empty) for a file that is missing, unreadable or not what it should be,
 * and the caller decides what an absent value means.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/**
 * A file's text, or undefined when it cannot be read. Read synchronously (readSmallFile):
 * fs.promises.readFile makes a 64 KiB buffer and several thread-pool round trips per file,
 * which for a metrics call over hundreds of containers meant thousands at once (the daemon
 * grew by hundreds of MB); a cgroup file is read in microseconds.
 */
export async function readText(file: string): Promise<string | undefined> {
  return readSmallFile(file, 'utf8');
}

/** Reads are synchronous, so one buffer serves them all; it grows for a long file. */
let buffer = Buffer.allocUnsafe(16 * 1024);

/**
 * The whole text behind `fd`, read from offset 0; undefined when the read fails. A read that
 * leaves room in the buffer has reached the end: cgroupfs and procfs fill a read from their
 * seq_files until the buffer is full or the text ends, which saves the read that would return 0.
 */
export function readWhole(fd: number, encoding: 'latin1' | 'utf8' = 'latin1'): string | undefined {
  try {
    let length = 0;
    for (;;) {
      const room = buffer.length - length;
      const n = readSync(fd, buffer, length, room, length);
      length += n;
      if (n < room) break;
      const larger = Buffer.allocUnsafe(buffer.length * 2);
      buffer.copy(larger, 0, 0, length);
      buffer = larger;
    }
    // cgroup files are ASCII, which latin1 decodes as utf8 would, with less work.
    return buffer.toString(encoding, 0, length);
  } catch {
    return undefined;
  }
}

/**
 * A small pseudo-file's text (a cgroup or /proc file), or undefined when it cannot be read;
 * utf8 for files that may hold names (mountinfo, uevent).
 */
export function readSmallFile(file: string, encoding: 'latin1' | 'utf8' = 'latin1'): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    return readWhole(fd, encoding);
  } finally {
    closeQuietly(fd);
  }
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Nothing to do about a descriptor that will not close.
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
