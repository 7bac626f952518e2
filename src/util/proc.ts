import { promises as fs } from 'node:fs';

/**
 * The process table as /proc tells it. Node has no getpgid or pidfd: a process is known by its
 * /proc/<pid>/stat line, and for good by its pid with its start time (pids are reused).
 */

/** One line of the process table, as /proc/<pid>/stat tells it. */
export interface ProcessEntry {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  comm: string;
  /** R, S, D, Z (zombie: gone, only not yet reaped) … */
  state: string;
  /** Clock ticks after boot: with the pid, what identifies a process for good (pids are reused). */
  startTime: string;
}

/** Parse /proc/<pid>/stat: "pid (comm) state ppid pgrp session … starttime(22) …". */
export function parseStat(text: string): ProcessEntry | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  // comm may hold spaces and parentheses; everything after the last ')' is plain fields, from field 3.
  const fields = text.slice(close + 2).split(' ');
  const entry = {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: fields[0] ?? '',
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    sid: Number(fields[3]),
    startTime: fields[19] ?? '',
  };
  const numbers = [entry.pid, entry.ppid, entry.pgid, entry.sid];
  return numbers.every(Number.isInteger) && entry.startTime !== '' ? entry : undefined;
}

/** A process's entry; undefined when it is gone (or its stat cannot be read). */
export async function readProcess(pid: number): Promise<ProcessEntry | undefined> {
  try {
    return parseStat(await fs.readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Every process that is not a zombie. */
export async function processTable(): Promise<ProcessEntry[]> {
  const pids = (await fs.readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
  const entries = await Promise.all(pids.map(readProcess));
  return entries.filter((e): e is ProcessEntry => e !== undefined && e.state !== 'Z');
}
