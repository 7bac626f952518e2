#!/usr/bin/env bash
# Run the CRI conformance suite (critest from cri-tools) against a throwaway tscri daemon:
#
#   hack/critest.sh [--focus REGEX] [--skip REGEX]     conformance specs
#   hack/critest.sh --benchmark [--pods N]             critest's speed benchmarks (50 by default)
#
# critest is an instrument, not part of the project: when it is not installed this script says
# so and exits 0. Its images are built from Debian binaries by hack/conformance/images.mjs,
# pushed under their upstream names to a registry of the run's own (hack/lib/registry.mjs, on
# a free port), and the daemon mirrors registry.k8s.io, gcr.io and public.ecr.aws to it.
#
# Everything the run makes lives under one temporary directory (registry, socket, root, state,
# CNI config, logs) and is removed afterwards: pods first, then the daemon, its bridge and IP
# allocations. TSCRI_CRITEST_KEEP=1 keeps the directory (logs, benchmark JSON) for reading.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=conformance
FOCUS=
SKIP=
PODS=50
usage() { echo "usage: hack/critest.sh [--focus REGEX] [--skip REGEX] | --benchmark [--pods N]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --focus) [ $# -ge 2 ] || usage; FOCUS=$2; shift 2 ;;
    --skip) [ $# -ge 2 ] || usage; SKIP=$2; shift 2 ;;
    --benchmark) MODE=benchmark; shift ;;
    --pods) [ $# -ge 2 ] || usage; PODS=$2; shift 2 ;;
    *) usage ;;
  esac
done

if ! command -v critest >/dev/null; then
  echo "critest: not installed (cri-tools v1.26 or later); nothing to run"
  exit 0
fi
[ -f dist/cli/main.js ] || npm run build >/dev/null

# Its own bridge and subnet, so a run never meets the default network or the e2e tests'.
BRIDGE=tscrict0
SUBNET=10.88.70.0/24
NETWORK=tscri-critest
CGROUP_PARENT=tscri-critest

WORK=$(mktemp -d /tmp/tscri-critest.XXXXXX)
SOCKET=$WORK/tscri.sock
ENDPOINT=unix://$SOCKET
DAEMON_PID=

tscri() { node dist/cli/main.js -r "$ENDPOINT" "$@"; }

cleanup() {
  local status=$?
  set +e
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    tscri rmp -a >/dev/null 2>&1
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null
  fi
  node hack/lib/registry.mjs stop "$WORK/registry"
  ip link del "$BRIDGE" 2>/dev/null
  rm -rf "/var/lib/cni/networks/$NETWORK"
  # host-local makes its data directory's parents too: remove them when nothing else uses them.
  rmdir /var/lib/cni/networks /var/lib/cni 2>/dev/null
  for cgroup in /sys/fs/cgroup/$CGROUP_PARENT /sys/fs/cgroup/*/$CGROUP_PARENT; do
    [ -d "$cgroup" ] && find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  # A mount left under WORK means a pod outlived its removal: never delete through it.
  if grep -q " $WORK/" /proc/self/mounts; then
    echo "critest: mounts remain under $WORK; left in place" >&2
    grep " $WORK/" /proc/self/mounts >&2
    status=1
  elif [ "${TSCRI_CRITEST_KEEP:-}" = 1 ]; then
    echo "critest: kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REGISTRY=$(node hack/lib/registry.mjs start "$WORK/registry")
node hack/conformance/images.mjs --registry "$REGISTRY"

mkdir -p "$WORK/cni"
{
  cat <<TOML
listen = "$ENDPOINT"
root = "$WORK/root"
state = "$WORK/state"
log_level = "info"
# Its own cgroup parent, removed at the end like everything else the run made.
default_cgroup_parent = "/$CGROUP_PARENT"
# critest 1.26 writes its Localhost seccomp profiles to temporary directories under /tmp.
seccomp_profile_root = "/tmp"

[cni]
conf_dir = "$WORK/cni"
default_network_name = "$NETWORK"
default_bridge = "$BRIDGE"
default_subnet = "$SUBNET"
TOML
  for host in registry.k8s.io gcr.io public.ecr.aws; do
    printf '\n[registry.mirrors."%s"]\nendpoints = ["http://%s"]\n' "$host" "$REGISTRY"
  done
} > "$WORK/config.toml"

dist/cli/main.js daemon --config "$WORK/config.toml" > "$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do
  tscri version >/dev/null 2>&1 && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { echo "critest: daemon exited; log:" >&2; tail -20 "$WORK/daemon.log" >&2; exit 1; }
  sleep 0.1
done
tscri version >/dev/null

CRITEST=(critest --runtime-endpoint "$ENDPOINT" --image-endpoint "$ENDPOINT" --ginkgo.no-color)

if [ "$MODE" = conformance ]; then
  [ -n "$FOCUS" ] && CRITEST+=(--ginkgo.focus "$FOCUS")
  [ -n "$SKIP" ] && CRITEST+=(--ginkgo.skip "$SKIP")
  set +e
  "${CRITEST[@]}" 2>&1 | tee "$WORK/critest.log"
  result=${PIPESTATUS[0]}
  set -e
  echo
  echo "== critest summary"
  grep -E '^Ran [0-9]+ of [0-9]+ Specs|^(SUCCESS|FAIL)! ' "$WORK/critest.log" || true
  # ginkgo v2 lists failures after "Summarizing N Failures:" as "[FAIL] [sig] spec ... [It] name".
  sed -n '/^Summarizing [0-9]* Failure/,/^Ran /p' "$WORK/critest.log" | grep '^\s*\[FAIL\]' || true
  exit "$result"
fi

PARAMS=$WORK/benchmark.yaml
cat > "$PARAMS" <<YAML
containersNumber: $PODS
containersNumberParallel: 2
containerBenchmarkTimeoutSeconds: 60
podsNumber: $PODS
podsNumberParallel: 2
podBenchmarkTimeoutSeconds: 60
imagesNumber: $PODS
imagesNumberParallel: 2
imageBenchmarkTimeoutSeconds: 60
imagePullingBenchmarkImage: public.ecr.aws/docker/library/busybox:1.35.0-glibc
imageListingBenchmarkImages:
  - public.ecr.aws/docker/library/busybox:1-uclibc
  - public.ecr.aws/docker/library/busybox:1
  - public.ecr.aws/docker/library/busybox:1-glibc
  - public.ecr.aws/docker/library/busybox:1-musl
podContainerStartBenchmarkTimeoutSeconds: 60
YAML
mkdir -p "$WORK/benchmark"
"${CRITEST[@]}" -benchmark --benchmarking-params-file "$PARAMS" --benchmarking-output-dir "$WORK/benchmark" \
  > "$WORK/critest.log" 2>&1 || { tail -40 "$WORK/critest.log"; exit 1; }
grep -E '^Ran [0-9]+ of [0-9]+ Specs' "$WORK/critest.log" || true
node hack/conformance/benchmark-summary.mjs "$WORK/benchmark"
