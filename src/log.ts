import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/config.js';

export type { Logger };

/**
 * The daemon's root logger: JSON lines on stderr, written synchronously so that the last
 * lines before a crash are not lost in a buffer. Operations log through children that carry
 * `podSandboxId` / `containerId`, so every line of one operation can be found by id.
 */
export function createLogger(level: LogLevel): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 2, sync: true }),
  );
}

/** A logger that drops everything, for tests and tools that need none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
