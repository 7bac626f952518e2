import type { Command } from 'commander';
import { collect } from './context.js';

/** The options `ps` and `pods` share. */
export interface ListOptions {
  label: string[];
  quiet?: boolean;
  output: string;
  latest?: boolean;
  last?: string;
  trunc: boolean;
}

/** Add the options of ListOptions to a listing command; `what` names what it lists ("container", "pod"). */
export function withListOptions(command: Command, what: string): Command {
  return command
    .option('--label <key=value>', 'filter by label (repeatable)', collect, [])
    .option('-q, --quiet', `only print ${what} ids`)
    .option('-o, --output <format>', 'json or table', 'table')
    .option('-l, --latest', `only the most recently created ${what}`)
    .option('-n, --last <n>', `only the n most recently created ${what}s`)
    .option('--no-trunc', 'show full ids');
}

/** Newest first, cut to the one of --latest or the n of --last. */
export function newestFirst<T extends { created_at: string }>(items: T[], opts: Pick<ListOptions, 'latest' | 'last'>): T[] {
  const sorted = [...items].sort((a, b) => (BigInt(b.created_at) > BigInt(a.created_at) ? 1 : -1));
  const limit = opts.latest ? 1 : opts.last ? Number(opts.last) : 0;
  return limit > 0 ? sorted.slice(0, limit) : sorted;
}
