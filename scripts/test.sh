#!/usr/bin/env bash
# Sets up, builds everything and runs the test suite (CTest + GoogleTest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600
