#!/usr/bin/env bash
# A local registry for the tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1:5000
# with filesystem storage.
#
#   hack/registry.sh start|stop|status [--dir DIR]     (DIR default: /var/tmp/tscri-registry)
#
# start   writes DIR/config.yml, starts the registry, waits until GET /v2/ answers and records
#         its pid in DIR/registry.pid. Prints "registry: started ..." when it started one, and
#         "registry: reusing ..." when something already answered (then it starts nothing).
# stop    stops the registry recorded in DIR/registry.pid; one this script did not start is
#         left alone.
# status  exits 0 when the registry answers.
#
# TSCRI_REGISTRY_ADDR overrides the address (to try this script without disturbing a
# registry already on 5000); the tests always use 127.0.0.1:5000.
set -euo pipefail

ADDR=${TSCRI_REGISTRY_ADDR:-127.0.0.1:5000}
DIR=/var/tmp/tscri-registry
usage() { echo "usage: hack/registry.sh start|stop|status [--dir DIR]" >&2; exit 2; }

COMMAND=${1:-}
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || usage; DIR=$2; shift 2 ;;
    *) usage ;;
  esac
done
PIDFILE=$DIR/registry.pid

answering() { curl -fsS --max-time 2 -o /dev/null "http://$ADDR/v2/" 2>/dev/null; }

# The pid in PIDFILE if that process is still a docker-registry (not a recycled pid).
our_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q docker-registry && echo "$pid"
}

write_config() {
  mkdir -p "$DIR/data"
  # Access log lines stay (one per request, useful when a pull fails); info-level chatter goes.
  cat > "$DIR/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
http:
  addr: $ADDR
  # Only this registry checks upload state; a fixed secret just silences its warning.
  secret: tscri-test-registry
YML
}

start() {
  if answering; then
    if pid=$(our_pid); then
      echo "registry: reusing the one on $ADDR started earlier by hack/registry.sh (pid $pid)"
    else
      echo "registry: reusing the one already on $ADDR (not started by hack/registry.sh)"
    fi
    return 0
  fi
  write_config
  setsid docker-registry serve "$DIR/config.yml" > "$DIR/registry.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$PIDFILE"
  for _ in $(seq 100); do
    if answering; then
      echo "registry: started on $ADDR (pid $pid, storage $DIR/data)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  echo "registry: did not answer on $ADDR; $DIR/registry.log says:" >&2
  tail -n 20 "$DIR/registry.log" >&2
  return 1
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$PIDFILE"
    echo "registry: none started by hack/registry.sh in $DIR; leaving $ADDR alone"
    return 0
  fi
  kill "$pid"
  # It drains connections for about a second after SIGTERM.
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  echo "registry: stopped (pid $pid)"
}

case "$COMMAND" in
  start) start ;;
  stop) stop ;;
  status) answering ;;
  *) usage ;;
esac
