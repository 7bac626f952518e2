#!/usr/bin/env node
// Pod sandbox benchmark of tscri alone: a shortcut to hack/bench.mjs (which also measures
// containers, pulls, containerd and the floor) with RunPodSandbox's own step timings.
//
//   npm run build && flock -w 3600 /tmp/tscri-e2e.lock node hack/bench-pods.mjs [--pods 50] [--parallel 2] [--memory-pods 20]
//
// is  node hack/bench.mjs --runtime tscri --only pods,memory --steps [the same options]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bench = fileURLToPath(new URL('bench.mjs', import.meta.url));
const child = spawn(process.execPath, [bench, '--runtime', 'tscri', '--only', 'pods,memory', '--steps', ...process.argv.slice(2)], { stdio: 'inherit' });
// Ctrl-C reaches both processes; bench.mjs cleans up, this one waits for it.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => {});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
