/**
 * Before any test runs, every test image a test file names must be one hack/test-images.mjs
 * builds: a test that pulls an image no run pushes can only pass on a machine whose registry
 * kept it from earlier work. The check reads the test files' text, so it needs no registry.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** `busybox` → `busybox:1.0`; `user:uid` and (`user`, `uid`) stay as given. */
export function nameTag(name: string, tag?: string): string {
  if (tag !== undefined) return `${name}:${tag}`;
  return name.includes(':') ? name : `${name}:1.0`;
}

export interface CatalogueProblem {
  file: string;
  line: number;
  message: string;
}

/** A reference spelled out: `…/tscri-test/name:tag`. */
const SPELLED_OUT = /tscri-test\/([a-z0-9][a-z0-9._-]*):([A-Za-z0-9_][A-Za-z0-9._-]*)/g;
const CALL = /\b(testImage|absentTestImage)\(/g;

/** One argument of a call: a plain string literal's value, or the text of any other expression. */
type Argument = { literal: string } | { expression: string };

/**
 * The arguments of the call whose `(` ends just before `start`: literals without
 * interpolation are read as values, anything else is kept as text (nested parentheses and
 * strings skipped over).
 */
export function callArguments(text: string, start: number): Argument[] {
  const args: Argument[] = [];
  let current = '';
  let depth = 0;
  const finish = () => {
    const trimmed = current.trim();
    if (trimmed === '') return;
    const literal = /^(['"`])([^'"`\\\n]*)\1$/.exec(trimmed);
    args.push(literal && !literal[2]!.includes('${') ? { literal: literal[2]! } : { expression: trimmed });
    current = '';
  };
  for (let i = start; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "'" || ch === '"' || ch === '`') {
      const end = text.indexOf(ch, i + 1);
      if (end < 0) break;
      current += text.slice(i, end + 1);
      i = end;
    } else if (ch === '(' || ch === '[' || ch === '{') {
      depth++;
      current += ch;
    } else if ((ch === ')' || ch === ']' || ch === '}') && depth > 0) {
      depth--;
      current += ch;
    } else if (ch === ')') {
      finish();
      return args;
    } else if (ch === ',' && depth === 0) {
      finish();
    } else {
      current += ch;
    }
  }
  return args;
}

/**
 * The text with every comment blanked out (newlines kept, so line numbers hold): a name in a
 * doc comment is not a pull. Strings are skipped over whole, so `http://` is not a comment.
 */
export function withoutComments(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "'" || ch === '"' || ch === '`') {
      let end = i + 1;
      while (end < text.length && text[end] !== ch) end += text[end] === '\\' ? 2 : 1;
      out += text.slice(i, end + 1);
      i = end;
    } else if (text.startsWith('//', i) || text.startsWith('/*', i)) {
      const close = text.startsWith('//', i) ? '\n' : '*/';
      const found = text.indexOf(close, i + 2);
      const end = found < 0 ? text.length : close === '\n' ? found : found + 2;
      out += text.slice(i, end).replace(/[^\n]/g, ' ');
      i = end - 1;
    } else {
      out += ch;
    }
  }
  return out;
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

/** Problems with the test images one file's text names, against the catalogue's `name:tag`s. */
export function checkFileAgainstCatalogue(file: string, source: string, catalogue: readonly string[]): CatalogueProblem[] {
  const text = withoutComments(source);
  const known = new Set(catalogue);
  const names = new Set(catalogue.map((entry) => entry.split(':')[0]));
  const problems: CatalogueProblem[] = [];
  const problem = (index: number, message: string) => problems.push({ file, line: lineOf(text, index), message });

  for (const match of text.matchAll(CALL)) {
    const fn = match[1]!;
    if (/\bfunction\s+$/.test(text.slice(Math.max(0, match.index - 20), match.index))) continue;
    const [first, second] = callArguments(text, match.index + match[0].length);
    if (!first || !('literal' in first)) {
      problem(match.index, `${fn}(${first && 'expression' in first ? first.expression : ''}): write the image name as a string literal so it can be checked`);
      continue;
    }
    const name = first.literal;
    if (fn === 'absentTestImage') {
      if (names.has(name.split(':')[0])) problem(match.index, `absentTestImage('${name}') names an image the catalogue builds`);
    } else if (second && 'expression' in second) {
      // The tag is computed: the name must exist; testImage() checks the exact tag when called.
      if (!names.has(name)) problem(match.index, `pulls tscri-test/${name}:<${second.expression}>, but hack/test-images.mjs builds no ${name} image`);
    } else {
      const wanted = nameTag(name, second?.literal);
      if (!known.has(wanted)) problem(match.index, `pulls tscri-test/${wanted}, which hack/test-images.mjs does not build`);
    }
  }
  for (const match of text.matchAll(SPELLED_OUT)) {
    const wanted = `${match[1]}:${match[2]}`;
    if (!known.has(wanted)) problem(match.index, `names tscri-test/${wanted}, which hack/test-images.mjs does not build`);
  }
  return problems;
}

/** Check every `*.ts` file under `dir`; throws one error listing every problem. */
export async function checkTestsAgainstCatalogue(dir: string, catalogue: readonly string[], repo: string): Promise<void> {
  const problems: CatalogueProblem[] = [];
  for (const entry of await fs.readdir(dir, { recursive: true })) {
    if (!entry.endsWith('.ts') || path.basename(entry) === 'catalogue-guard.ts') continue;
    const file = path.join(dir, entry);
    problems.push(...checkFileAgainstCatalogue(path.relative(repo, file), await fs.readFile(file, 'utf8'), catalogue));
  }
  if (problems.length === 0) return;
  const lines = problems.map((p) => `  ${p.file}:${p.line}: ${p.message}`);
  throw new Error(`test images missing from hack/test-images.mjs (catalogue: ${catalogue.join(', ')}):\n${lines.join('\n')}`);
}
