#!/usr/bin/env bash
# Idempotent set-up used by `npm run demo`, `npm test` and `npm run bench`: missing apt
# packages, npm dependencies, then the native and BPF build and the TypeScript build.
# A second run only checks and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

apt_packages=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config iproute2 ethtool iputils-ping
  iptables curl libnetfilter-queue-dev make g++ python3
  vagrant) # vagrant: `vagrant validate` of vagrant/Vagrantfile in the tests; no VM is booted
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
  say "installing apt packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# bpffs: pinned maps and links live there (the operations layer pins; tests clean up).
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
  say "mounting bpffs on /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

bash scripts/build.sh
