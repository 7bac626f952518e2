#!/usr/bin/env node
// One line of totals from vitest's JSON report, the last thing CI prints:
//
//   node hack/test-totals.mjs REPORT.json [VITEST-EXIT-STATUS]
//
// A file that stops in its setup (beforeAll) reports its tests as skipped, not failed; the
// line names such files, so a suite that never ran cannot hide behind a green total. A run
// that failed after its tests (the e2e teardown finding leftovers) says so too. Exits 1 when
// any test or file failed, the run failed, or the report is missing (vitest crashed).
import { readFileSync } from 'node:fs';
import path from 'node:path';

const [file, exitStatus = '0'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node hack/test-totals.mjs REPORT.json [VITEST-EXIT-STATUS]');
  process.exit(2);
}
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.log(`tests: no report (${err.code ?? err.message}): the run did not finish`);
  process.exit(1);
}

const count = (status) => report.testResults.flatMap((f) => f.assertionResults).filter((t) => t.status === status).length;
const passed = count('passed');
const failed = count('failed');
const skipped = count('pending') + count('skipped') + count('todo');
// A file that failed with no failed test in it failed outside any test: in setup or teardown.
const brokenFiles = report.testResults
  .filter((f) => f.status === 'failed' && !f.assertionResults.some((t) => t.status === 'failed'))
  .map((f) => path.relative(process.cwd(), f.name));
const files = report.testResults.length;

let line = `tests: ${passed} passed, ${failed} failed, ${skipped} skipped, in ${files} files`;
if (brokenFiles.length > 0) line += `; failed outside any test: ${brokenFiles.join(', ')}`;
const runFailed = exitStatus !== '0' && failed === 0 && brokenFiles.length === 0;
if (runFailed) line += `; the run itself failed (exit ${exitStatus}), see above`;
console.log(line);
process.exit(failed > 0 || brokenFiles.length > 0 || runFailed || !report.success ? 1 : 0);
