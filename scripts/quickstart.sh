#!/usr/bin/env bash
# Sets up, builds the CLI and runs the quickstart on Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --target pretext_all_plugins
exec ./build/pretext run configs/quickstart.toml "$@"
