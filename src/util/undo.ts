import type { Logger } from 'pino';

interface UndoStep {
  name: string;
  undo: () => Promise<void>;
  onlyIfClean: boolean;
}

export interface UndoOptions {
  /**
   * Run only if every undo before it (newer steps) succeeded. For forgetting the record that
   * names what the operation made: if releasing something failed, the record must stay, so
   * a later Stop or Remove finds it and tries again instead of leaking it forever.
   */
  onlyIfClean?: boolean;
}

/**
 * The undo half of a multi-step operation. Each step registers its undo right after the
 * resource it made exists; on failure `unwind` runs them newest first. An undo that fails
 * is logged and the rest still run, so one stuck resource never strands the others.
 */
export class UndoStack {
  private readonly steps: UndoStep[] = [];

  push(name: string, undo: () => Promise<void>, options: UndoOptions = {}): void {
    this.steps.push({ name, undo, onlyIfClean: options.onlyIfClean ?? false });
  }

  /** Forget the steps: the operation succeeded and now owns its resources. */
  commit(): void {
    this.steps.length = 0;
  }

  /**
   * Run every undo in reverse; resolves to the names of the undos that failed or were kept
   * back because one before them failed. Empty: everything made was undone.
   */
  async unwind(log: Logger): Promise<string[]> {
    const failed: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      if (step.onlyIfClean && failed.length > 0) {
        failed.push(step.name);
        log.warn({ step: step.name, after: failed }, 'kept, since an undo before it failed');
        continue;
      }
      try {
        await step.undo();
        log.debug({ step: step.name }, 'undone');
      } catch (err) {
        failed.push(step.name);
        log.error({ step: step.name, err }, 'undo failed');
      }
    }
    return failed;
  }
}
