/** Facts about processes for unit tests that start children (and their children). */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';

/**
 * Alive and not a zombie. On this VM pid 1 does not reap orphans, so a killed grandchild
 * stays a zombie and process.kill(pid, 0) alone would call it alive.
 */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** SIGKILL takes effect within moments, not synchronously: poll briefly. */
export async function expectAllDead(pids: number[]): Promise<void> {
  const deadline = Date.now() + 2000;
  while (pids.some(isRunning) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(pids.filter(isRunning)).toEqual([]);
}
