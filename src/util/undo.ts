import type { Logger } from 'pino';
import { messageOf } from '../errors.js';

interface UndoStep {
  name: string;
  undo: () => Promise<void>;
}

/**
 * The undo half of a multi-step operation. Each step registers its undo right after the
 * resource it made exists; on failure `unwind` runs them newest first. An undo that fails
 * is logged and the rest still run, so one stuck resource never strands the others.
 */
export class UndoStack {
  private readonly steps: UndoStep[] = [];

  push(name: string, undo: () => Promise<void>): void {
    this.steps.push({ name, undo });
  }

  /** Forget the steps: the operation succeeded and now owns its resources. */
  commit(): void {
    this.steps.length = 0;
  }

  /** Run every undo in reverse; resolves to the names of the undos that failed. */
  async unwind(log: Logger): Promise<string[]> {
    const failed: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.undo();
        log.debug({ step: step.name }, 'undone');
      } catch (err) {
        failed.push(step.name);
        log.error({ step: step.name, err: messageOf(err) }, 'undo failed');
      }
    }
    return failed;
  }
}
