#!/usr/bin/env bash
# The run command: installs missing system packages, builds the release binary and
# starts a local network in ./devnet (resumed if it already exists), then prints its
# endpoints. Stop it with: .build/release/civitas devnet stop --dir devnet
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
swift build -c release --product civitas
exec .build/release/civitas devnet start --dir devnet "$@"
