#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine, as root: host packages, npm packages,
# build, unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh
npm ci --no-audit --no-fund
npm test
