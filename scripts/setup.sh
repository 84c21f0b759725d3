#!/usr/bin/env bash
# Installs pretext's Debian 12 packages (as root, idempotent), then configures
# and builds in ./build (Release). Nothing is downloaded from anywhere else.
#
#   scripts/setup.sh                 # everything: CLI, plugins, tests, benchmarks
#   scripts/setup.sh --target pretext  # only what `pretext run` needs
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libopenblas0-pthread   # LibTorch 1.13 (CPU); OpenBLAS instead of the reference BLAS
  libtbb-dev libtomlplusplus-dev libboost-dev libboost-filesystem-dev
  libcli11-dev                        # CLI11 2.1 (header-only): the command line's subcommands and flags
  libgloo-dev                         # gloo's headers, which c10d's ProcessGroupGloo.hpp includes (pipeline/distributed)
  libgoogle-glog-dev                  # glog, linked by pipeline/distributed to quiet c10d while a group forms
  libmatio-dev zlib1g-dev libpng-dev libjpeg62-turbo-dev   # libjpeg-turbo: JPEG image folders
  googletest libgtest-dev
  libxml2-dev                         # tests only: the HTML and SVG reports are parsed as XML
  clang libclang-rt-14-dev            # fuzzing only (scripts/fuzz.sh): clang 14 and its libFuzzer/ASan runtimes
  dataset-fashion-mnist               # the built-in default data
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then echo "setup: run as root to install packages" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Recommends included: that is the configuration the project is built and tested with.
  apt-get install -y -qq "${missing[@]}"
fi

build_args=()
if [[ ${1:-} == --target ]]; then build_args=(--target "$2"); fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
# Each LibTorch translation unit needs ~1.5 GB while compiling; cap the jobs by memory too.
jobs=$(nproc)
mem_jobs=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1600000 ))
(( mem_jobs >= 1 && mem_jobs < jobs )) && jobs=$mem_jobs
cmake --build build -j "$jobs" "${build_args[@]}"
