#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; see fuzz/) in build-fuzz
# and runs each one for a bounded time, starting from its seed corpus in
# tests/fuzz/corpus/<target>/. Fails on the first crash, leak, UB report,
# timeout (an input taking over 10 s), out-of-memory (over 2 GB) or exception
# that is not the reader's clear error, and prints where the input that did it
# was saved, with the command that replays it.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        # default 60
#   FUZZ_TARGETS="idx packed" scripts/fuzz.sh 300
#
# New inputs that reach new code go to build-fuzz/fuzz-corpus/<target>/ (kept
# between local runs, never into the checked-in seeds).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
build=${FUZZ_BUILD_DIR:-build-fuzz}
read -r -a targets <<<"${FUZZ_TARGETS:-config idx image_decode packed svhn_mat}"

started=$SECONDS
mkdir -p "$build"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRETEXT_FUZZ=ON \
  -DPRETEXT_BUILD_TESTS=OFF -DPRETEXT_BUILD_BENCH=OFF >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target pretext_fuzzers
echo "fuzz: built in $((SECONDS - started)) s; ${seconds} s per target: ${targets[*]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

summary=()
for target in "${targets[@]}"; do
  fuzzer="$build/fuzz/pretext_fuzz_$target"
  work="$build/fuzz-corpus/$target"
  artifacts="$build/fuzz-artifacts/$target/"
  log="$build/fuzz-$target.log"
  mkdir -p "$work" "$artifacts"
  seeds=("tests/fuzz/corpus/$target")
  [[ $target == config ]] && seeds+=(configs)  # the shipped configs are seeds too
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
           -artifact_prefix="$artifacts")
  [[ -f tests/fuzz/$target.dict ]] && options+=(-dict="tests/fuzz/$target.dict")

  echo "fuzz: $target for $seconds s (log: $log)"
  touch "$build/fuzz-$target.started"
  if ! "$fuzzer" "${options[@]}" "$work" "${seeds[@]}" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: FAILED: $target. The input that did it:" >&2
    find "$artifacts" -type f -newer "$build/fuzz-$target.started" -printf '  %p\n' >&2
    echo "fuzz: replay with: $fuzzer <that file>" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  corpus=$(grep -o 'corp: [0-9]*/[0-9]*[bKM]*' "$log" | tail -n 1 | cut -d' ' -f2)
  summary+=("$(printf '%-13s %10s runs %7s exec/s  corpus %-11s peak %s MB' "$target" "$runs" "$rate" "$corpus" "$rss")")
done

echo "fuzz: no crashes ($((SECONDS - started)) s in all)"
printf '  %s\n' "${summary[@]}"
