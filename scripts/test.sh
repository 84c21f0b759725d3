#!/usr/bin/env bash
# Sets up, builds everything and runs the test suite (CTest + GoogleTest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600
scripts/fuzz.sh 60  # each libFuzzer target for 60 s (ASan + UBSan); fails on any crash
scripts/sanitize.sh all  # unit and LibTorch tests under ASan + UBSan, flow graphs under TSan
