/**
 * Pressure stall information: `cpu.pressure`, `memory.pressure` and `io.pressure` of a cgroup in
 * a v2 hierarchy (the unified one, or v1's hybrid mount). Pure v1 has no per-cgroup PSI.
 */
import path from 'node:path';
import { readText } from './files.js';

/** One line of a pressure file; `totalUs` is the kernel's cumulative stall time in µs. */
export interface PsiLine {
  avg10: number;
  avg60: number;
  avg300: number;
  totalUs: number;
}

/** `some`: at least one task stalled; `full`: all non-idle tasks stalled at once. */
export interface Psi {
  some: PsiLine;
  full: PsiLine | undefined;
}

export interface PsiSet {
  cpu: Psi | undefined;
  memory: Psi | undefined;
  io: Psi | undefined;
}

export const NO_PSI: PsiSet = { cpu: undefined, memory: undefined, io: undefined };

/** The three pressure files of a cgroup; each missing one is undefined (PSI off, or v1). */
export async function readPsi(unifiedDir: string | undefined): Promise<PsiSet> {
  if (unifiedDir === undefined) return NO_PSI;
  const [cpu, memory, io] = await Promise.all(
    ['cpu', 'memory', 'io'].map(async (resource) => parsePsi((await readText(path.join(unifiedDir, `${resource}.pressure`))) ?? '')),
  );
  return { cpu, memory, io };
}

/**
 * `some avg10=0.12 avg60=0.05 avg300=0.01 total=12345` and an optional `full …` line. A file
 * whose `some` line does not parse (PSI disabled: reading fails with EOPNOTSUPP) is undefined.
 */
export function parsePsi(text: string): Psi | undefined {
  const lines = new Map<string, PsiLine>();
  for (const line of text.split('\n')) {
    const [kind, ...fields] = line.trim().split(/\s+/);
    const parsed = kind && parsePsiFields(fields);
    if (kind && parsed) lines.set(kind, parsed);
  }
  const some = lines.get('some');
  return some ? { some, full: lines.get('full') } : undefined;
}

function parsePsiFields(fields: string[]): PsiLine | undefined {
  const values = new Map(fields.map((field) => field.split('=') as [string, string]));
  const avg = (key: string): number | undefined => {
    const text = values.get(key);
    return text !== undefined && /^\d+(\.\d+)?$/.test(text) ? Number(text) : undefined;
  };
  const total = values.get('total');
  const [avg10, avg60, avg300] = [avg('avg10'), avg('avg60'), avg('avg300')];
  if (avg10 === undefined || avg60 === undefined || avg300 === undefined || total === undefined || !/^\d+$/.test(total)) return undefined;
  return { avg10, avg60, avg300, totalUs: Number(total) };
}
