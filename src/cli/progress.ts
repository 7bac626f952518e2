import type { PullProgressSnapshot } from '../image/progress.js';
import { humanSize } from './output.js';

const BAR_WIDTH = 30;

/** One line of the pull progress bar: bytes fetched of all, layers done, and the rate. */
export function progressLine(p: PullProgressSnapshot): string {
  const fraction = p.bytesTotal > 0 ? Math.min(1, p.bytesDone / p.bytesTotal) : 0;
  return `${bar(fraction)} ${humanSize(p.bytesDone)}/${humanSize(p.bytesTotal)}  ${p.layersDone}/${p.layers} layers  ${humanSize(p.bytesPerSecond)}/s`;
}

/**
 * The line a successful pull ends on: full, whatever the last snapshot said (it was polled,
 * and may predate the last layer), and without a rate that no longer means anything.
 */
export function finishedProgressLine(last: PullProgressSnapshot | undefined): string {
  if (!last) return `${bar(1)} done`;
  return `${bar(1)} ${humanSize(last.bytesTotal)}/${humanSize(last.bytesTotal)}  ${last.layers}/${last.layers} layers  done`;
}

function bar(fraction: number): string {
  const filled = Math.round(fraction * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
}
