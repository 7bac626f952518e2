import { createReadStream, promises as fs, watch } from 'node:fs';

/** One line of a CRI log file: `<RFC3339Nano> <stdout|stderr> <F|P> <content>`. */
export interface LogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  /** False for a partial line (P): the content continues in the next entry. */
  full: boolean;
  content: string;
}

export function parseLogLine(line: string): LogLine | undefined {
  const first = line.indexOf(' ');
  const second = line.indexOf(' ', first + 1);
  const third = line.indexOf(' ', second + 1);
  if (first < 0 || second < 0) return undefined;
  const stream = line.slice(first + 1, second);
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  const tag = third < 0 ? line.slice(second + 1) : line.slice(second + 1, third);
  return { time: line.slice(0, first), stream, full: tag !== 'P', content: third < 0 ? '' : line.slice(third + 1) };
}

export interface PrintOptions {
  timestamps: boolean;
  /** Only the last n lines; undefined for all. */
  tail?: number;
}

/** Print a log file's lines to stdout/stderr by stream, joining partial lines as written. */
export async function printLog(file: string, options: PrintOptions): Promise<number> {
  const text = await fs.readFile(file, 'utf8');
  let lines = text.split('\n').filter(Boolean);
  if (options.tail !== undefined) lines = options.tail === 0 ? [] : lines.slice(-options.tail);
  for (const line of lines) writeLine(parseLogLine(line), options);
  return Buffer.byteLength(text);
}

function writeLine(line: LogLine | undefined, options: PrintOptions): void {
  if (!line) return;
  const out = line.stream === 'stdout' ? process.stdout : process.stderr;
  const prefix = options.timestamps ? `${line.time} ` : '';
  out.write(`${prefix}${line.content}${line.full ? '\n' : ''}`);
}

/**
 * Follow a log file from `offset`, as `tail -F` does: new lines are printed as they come, and
 * a rotated file (renamed away, recreated by ReopenContainerLog) is reopened.
 */
export async function followLog(file: string, offset: number, options: PrintOptions, isDone: () => Promise<boolean>): Promise<void> {
  let position = offset;
  let pending = '';
  let inode = (await fs.stat(file)).ino;
  const readNew = async (): Promise<void> => {
    const stat = await fs.stat(file).catch(() => undefined);
    if (!stat) return;
    if (stat.ino !== inode || stat.size < position) {
      inode = stat.ino;
      position = 0;
    }
    if (stat.size === position) return;
    const stream = createReadStream(file, { start: position, end: stat.size - 1, encoding: 'utf8' });
    for await (const chunk of stream) pending += chunk as string;
    position = stat.size;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) writeLine(parseLogLine(line), options);
  };
  const watcher = watch(file.slice(0, file.lastIndexOf('/')) || '/', () => void readNew());
  try {
    for (;;) {
      await readNew();
      if (await isDone()) {
        await readNew();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } finally {
    watcher.close();
  }
}
