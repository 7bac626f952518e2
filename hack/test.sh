#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine, as root: host packages, npm packages,
# build, unit and end-to-end tests, and one closing line of totals.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh
# Not `npm ci`: node-unix-socket lists per-platform optional packages that were never
# published (darwin, linux-arm*), so the lock file cannot name them and `npm ci` refuses it.
# `npm install` keeps every version the lock file pins and skips the missing optionals.
npm install --no-audit --no-fund
report=$(mktemp /tmp/tscri-test-report.XXXXXX.json)
trap 'rm -f "$report"' EXIT
status=0
npm test -- --reporter=default --reporter=json --outputFile.json="$report" || status=$?
if ! node hack/test-totals.mjs "$report" "$status" && [ "$status" -eq 0 ]; then status=1; fi
exit "$status"
