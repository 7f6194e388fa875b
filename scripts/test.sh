#!/usr/bin/env bash
# The test command: installs missing system packages, builds once (with tests), runs
# every test. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"
