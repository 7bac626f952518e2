import { execa, type Options } from 'execa';
import { InternalError } from '../errors.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * Run a host command (ip, mount, runc …) and return its output; a non-zero exit becomes an
 * InternalError whose message carries the command and its stderr, so the real cause reaches
 * the gRPC status.
 */
export async function run(file: string, args: readonly string[], options: Options = {}): Promise<RunResult> {
  const result = await execa(file, args, { reject: false, stripFinalNewline: true, ...options });
  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  const exitCode = result.exitCode ?? -1;
  if (result.failed) {
    const detail = (stderr || stdout || result.shortMessage || 'no output').trim();
    throw new InternalError(`${file} ${args.join(' ')}: ${detail}`);
  }
  return { stdout, stderr, exitCode };
}
