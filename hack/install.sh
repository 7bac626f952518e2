#!/usr/bin/env bash
# Installs tscri from this checkout: the npm package (built here) below PREFIX, which puts
# `tscri` in PREFIX/bin, the systemd unit, and a config file when there is none. Then the
# service is enabled and started where systemd runs.
#
#   hack/install.sh [--prefix DIR] [--sysconfdir DIR] [--unitdir DIR] [--no-start]
#   hack/install.sh --uninstall [same options] [--purge]
#
# --uninstall stops and disables the service and removes what install put in place; --purge
# also removes the config directory. Pods, images and state stay: the README's "Uninstall"
# section lists everything tscri makes on a host and how to remove it.
set -euo pipefail

prefix=/usr/local
sysconfdir=/etc
unitdir=/etc/systemd/system
start=yes
action=install
purge=no

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2;;
    --sysconfdir) sysconfdir=$2; shift 2;;
    --unitdir) unitdir=$2; shift 2;;
    --no-start) start=no; shift;;
    --uninstall) action=uninstall; shift;;
    --purge) purge=yes; shift;;
    *) echo "hack/install.sh: unknown option $1" >&2; exit 2;;
  esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
unit="$unitdir/tscri.service"
confdir="$sysconfdir/tscri"
systemd_runs() { [ -d /run/systemd/system ] && [ "$start" = yes ]; }

install_tscri() {
  [ -x "$repo/dist/cli/main.js" ] || (cd "$repo" && npm run build)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  local tarball
  tarball=$(cd "$repo" && npm pack --silent --pack-destination "$tmp" | tail -n 1)
  npm install --global --prefix "$prefix" --omit=dev --no-audit --no-fund --loglevel=error "$tmp/$tarball"
  mkdir -p "$confdir" "$unitdir"
  [ -e "$confdir/config.toml" ] || install -m 0644 "$repo/contrib/config.toml" "$confdir/config.toml"
  sed -e "s|/usr/local/bin/tscri|$prefix/bin/tscri|" -e "s|/etc/tscri/config.toml|$confdir/config.toml|" \
    "$repo/contrib/systemd/tscri.service" > "$unit"
  chmod 0644 "$unit"
  echo "installed: $prefix/bin/tscri, $unit, $confdir/config.toml"
  if systemd_runs; then
    systemctl daemon-reload
    systemctl enable --now tscri.service
  fi
}

uninstall_tscri() {
  if systemd_runs && [ -e "$unit" ]; then
    systemctl disable --now tscri.service || true
  fi
  rm -f "$unit"
  if systemd_runs; then systemctl daemon-reload; fi
  npm uninstall --global --prefix "$prefix" --loglevel=error tscri
  if [ "$purge" = yes ]; then rm -rf "$confdir"; fi
  echo "removed: $prefix/bin/tscri, $unit$([ "$purge" = yes ] && echo ", $confdir")"
}

"${action}_tscri"
