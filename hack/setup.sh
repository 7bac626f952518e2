#!/usr/bin/env bash
# Makes this host ready for tscri and its tests, idempotently, and refuses to go on when it
# cannot: every package, kernel feature and sysctl the runtime and the test suite use is
# installed or set here, never assumed.
#
#   runtime:  runc, conmon, CNI reference plugins, iptables, iproute2, catatonit, util-linux
#             (mount, nsenter), attr (setfattr), socat (port forwarding)
#   tests:    busybox-static (test images), docker-registry (each run's own registry),
#             bsdutils (script, for tty tests), crun (a second runtime handler),
#             perl-base (the seccomp tests' system call probe, a test htpasswd's bcrypt),
#             zstd (a zstd test image), openssl (the registry tests' CA and certificates)
#   critest:  gcc, libc6-dev (hack/conformance builds two static helpers)
#   kernel:   overlayfs, bridge, veth, br_netfilter; cgroups mounted
#   sysctls:  net.ipv4.ip_forward=1, net.bridge.bridge-nf-call-iptables=1
# Runs apt-get only when something is missing, so a second run takes no time.
set -euo pipefail

RUNTIME_PACKAGES=(runc conmon containernetworking-plugins iptables iproute2 catatonit util-linux mount attr socat)
TEST_PACKAGES=(busybox-static docker-registry bsdutils crun perl-base zstd openssl)
CRITEST_PACKAGES=(gcc libc6-dev)

fail() { echo "hack/setup.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs Debian packages and sets sysctls)"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_missing() {
  local missing=()
  for pkg in "$@"; do installed "$pkg" || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "hack/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_missing "${RUNTIME_PACKAGES[@]}" "${TEST_PACKAGES[@]}" "${CRITEST_PACKAGES[@]}"

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 20 ] || fail "tscri needs Node.js 20 or later (found: $(node --version 2>/dev/null || echo none))"

# A kernel feature is there (built in or loaded) or its module is loaded now.
kernel_feature() {
  local what=$1 module=$2 check=$3
  eval "$check" && return 0
  command -v modprobe >/dev/null || install_missing kmod
  modprobe "$module" 2>/dev/null || true
  eval "$check" || fail "the kernel lacks $what (module $module could not be loaded)"
}
kernel_feature overlayfs overlay 'grep -qw overlay /proc/filesystems'
kernel_feature br_netfilter br_netfilter '[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]'

# Bridges and veth pairs, tried for real in a namespace of our own that goes away at once.
probe=tscri-setup-$$
ip netns add "$probe"
trap 'ip netns delete "$probe" 2>/dev/null || true' EXIT
ip -n "$probe" link add tscri-probe-br type bridge 2>/dev/null || { modprobe bridge 2>/dev/null || true; ip -n "$probe" link add tscri-probe-br type bridge; } ||
  fail "the kernel cannot make bridges"
ip -n "$probe" link add tscri-probe-a type veth peer name tscri-probe-b 2>/dev/null || { modprobe veth 2>/dev/null || true; ip -n "$probe" link add tscri-probe-a type veth peer name tscri-probe-b; } ||
  fail "the kernel cannot make veth pairs"
ip netns delete "$probe"
trap - EXIT

# Pod traffic through the bridge must traverse iptables for portmap's hairpin and localhost
# rules, and reach other hosts only when forwarded.
for setting in net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1; do
  sysctl -qw "$setting" >/dev/null || fail "cannot set $setting"
done

if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  cgroups="v2 ($(cat /sys/fs/cgroup/cgroup.controllers))"
elif [ -d /sys/fs/cgroup/memory ] && [ -d /sys/fs/cgroup/pids ]; then
  cgroups="v1"
else
  fail "no cgroup hierarchy with memory and pids is mounted under /sys/fs/cgroup"
fi

echo "hack/setup.sh: host ready (runc $(runc --version | head -1 | awk '{print $3}'), conmon $(conmon --version | head -1 | awk '{print $3}'), cgroup $cgroups)"
