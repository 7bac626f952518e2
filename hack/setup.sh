#!/usr/bin/env bash
# Installs what tscri needs on the host, from Debian packages, idempotently:
#   runtime:  runc, conmon, the CNI reference plugins, iptables, iproute2, catatonit
#   tests:    busybox-static (test images), docker-registry, skopeo, umoci, gcc (test images)
# Runs apt-get only when something is missing, so a second run takes no time.
set -euo pipefail

RUNTIME_PACKAGES=(runc conmon containernetworking-plugins iptables iproute2 catatonit util-linux mount attr socat)
TEST_PACKAGES=(busybox-static docker-registry skopeo umoci gcc libc6-dev curl)

if [ "$(id -u)" -ne 0 ]; then
  echo "hack/setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for pkg in "${RUNTIME_PACKAGES[@]}" "${TEST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "hack/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "hack/setup.sh: tscri needs Node.js 20 or later (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# Bridged pod traffic must traverse iptables for portmap's hairpin and localhost rules.
modprobe br_netfilter 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1 || true

echo "hack/setup.sh: host ready (runc $(runc --version | head -1 | awk '{print $3}'), conmon $(conmon --version | head -1 | awk '{print $3}'))"
