#!/usr/bin/env bash
# A local OCI registry for the tests: Debian's docker-registry on 127.0.0.1:5000.
#   hack/registry.sh start|stop|status [DIR]     (DIR default: /var/tmp/tscri-registry)
# `start` reuses a registry already answering on 127.0.0.1:5000 and then leaves it alone on
# `stop`; one it started itself it stops.
set -euo pipefail
ADDR=127.0.0.1:5000
DIR=${2:-/var/tmp/tscri-registry}
PIDFILE=$DIR/registry.pid

answering() { curl -fsS -o /dev/null "http://$ADDR/v2/" 2>/dev/null; }

case "${1:-}" in
  start)
    if answering; then
      echo "registry: reusing the one already on $ADDR"
      exit 0
    fi
    mkdir -p "$DIR/data"
    cat > "$DIR/config.yml" <<YML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $DIR/data}
  delete: {enabled: true}
http: {addr: $ADDR}
YML
    setsid docker-registry serve "$DIR/config.yml" > "$DIR/registry.log" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    for _ in $(seq 100); do
      answering && { echo "registry: started on $ADDR (pid $(cat "$PIDFILE"))"; exit 0; }
      sleep 0.1
    done
    echo "registry: did not answer on $ADDR; see $DIR/registry.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
      rm -f "$PIDFILE"
      echo "registry: stopped"
    fi
    ;;
  status)
    answering
    ;;
  *)
    echo "usage: hack/registry.sh start|stop|status [DIR]" >&2
    exit 2
    ;;
esac
