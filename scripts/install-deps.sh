#!/usr/bin/env bash
# Installs the system packages Civitas builds and tests against, skipping what is
# present. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(librocksdb-dev libssl-dev libjemalloc-dev pkg-config openssl)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# A fresh machine has empty package lists until apt-get update has run once.
if ! run apt-get install -y --no-install-recommends "${missing[@]}"; then
  run apt-get update
  run apt-get install -y --no-install-recommends "${missing[@]}"
fi
