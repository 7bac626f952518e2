#!/usr/bin/env node
// Medians of critest's benchmark output: one line per benchmark, each operation's median and
// the median of the whole lifecycle (first call to last reply), in milliseconds.
//
//   node hack/conformance/benchmark-summary.mjs DIR     (DIR holds critest's *_data.json)
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: benchmark-summary.mjs DIR');
  process.exit(2);
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const ms = (ns) => (ns / 1e6).toFixed(1);

for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
  const results = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
  const points = results.datapoints ?? [];
  if (points.length === 0) continue;
  const operations = results.operationsNames.map(
    (name, i) => `${name} ${ms(median(points.map((p) => p.operationsDurationsNs[i])))}`,
  );
  const whole = ms(median(points.map((p) => p.endTime - p.startTime)));
  console.log(
    `${file.replace(/_data\.json$/, '')} (${points.length} samples, ${results.numParallel} parallel): ` +
      `${operations.join(', ')}; whole ${whole} ms`,
  );
}
