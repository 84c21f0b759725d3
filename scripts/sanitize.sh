#!/usr/bin/env bash
# Builds the test executables with sanitizers and runs them (docs/reliability.md, "Sanitizers"):
#
#   scripts/sanitize.sh [asan|tsan|all]     (default: all)
#
#   asan  AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included): every
#         GoogleTest executable, pretext_data_tests, pretext_unit_tests and pretext_torch_tests,
#         with the plugins
#         and the pretext binary that the tests load and run (all instrumented).
#   tsan  ThreadSanitizer: pretext_data_tests and pretext_unit_tests (the data readers, flow
#         graphs, stages and image ops; the LibTorch tests are not run under it).
#
# Only those targets are built, in build/asan and build/tsan (the directories of the CMake
# presets of the same names; PRETEXT_ASAN_BUILD_DIR / PRETEXT_TSAN_BUILD_DIR override them).
# The runtime options below are also in CMakePresets.json: keep the two in step.
set -euo pipefail
cd "$(dirname "$0")/.."
supp=$PWD/tests/sanitizers
which=${1:-all}
case $which in
  asan | tsan | all) ;;
  *) echo "usage: scripts/sanitize.sh [asan|tsan|all]" >&2; exit 2 ;;
esac

# Exported before building too: gtest_discover_tests runs each test executable at build time.
# LeakSanitizer runs at every exit under ASan (its default on Linux) and needs no suppression;
# UBSan findings are fatal already (-fno-sanitize-recover=undefined, cmake/warnings.cmake).
export ASAN_OPTIONS="check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="suppressions=$supp/ubsan.supp:print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="suppressions=$supp/tsan.supp:second_deadlock_stack=1"

# A sanitized LibTorch translation unit needs up to 1.6 GB while compiling; cap the jobs by memory.
jobs=$(nproc)
mem_jobs=$(($(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1800000))
((mem_jobs >= 1 && mem_jobs < jobs)) && jobs=$mem_jobs

# configure_and_build DIR SANITIZERS CXX_FLAGS TARGET...
configure_and_build() {
  local dir=$1 sanitize=$2 flags=$3
  shift 3
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" \
    -DPRETEXT_SANITIZE="$sanitize" -DPRETEXT_BUILD_BENCH=OFF >/dev/null
  cmake --build "$dir" -j "$jobs" --target "$@"
}

run_asan() {
  local dir=${PRETEXT_ASAN_BUILD_DIR:-build/asan} start=$SECONDS
  # -O1 and line tables only (-g1, inlined frames included): enough for every report, and
  # the LibTorch translation units compile three times faster than at -O2 -g.
  configure_and_build "$dir" address,undefined "-O1 -g1 -DNDEBUG" pretext_data_tests pretext_unit_tests pretext_torch_tests
  echo "sanitize: asan build took $((SECONDS - start)) s"
  start=$SECONDS
  # sdk.InstallAndBuildTemplate installs and builds an outside project, docs.* only reads
  # documents: neither is a sanitizer target. pretext_distributed_tests is not built here
  # (CTest lists it as *_NOT_BUILT); the data-parallel code runs under ASan through the
  # pretext binary in pretext_torch_tests (DataParallelRun.*, LaunchCommand.*).
  ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" --timeout 900 -E '_NOT_BUILT$|^sdk\.|^docs\.'
  echo "sanitize: asan tests took $((SECONDS - start)) s"
}

run_tsan() {
  local dir=${PRETEXT_TSAN_BUILD_DIR:-build/tsan} start=$SECONDS
  # Full debug information: the suppressions in tsan.supp match inlined oneTBB frames.
  configure_and_build "$dir" thread "-O2 -g -DNDEBUG" pretext_data_tests pretext_unit_tests
  echo "sanitize: tsan build took $((SECONDS - start)) s"
  start=$SECONDS
  # Only pretext_data_tests and pretext_unit_tests are built here; CTest lists the others as *_NOT_BUILT.
  ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" --timeout 900 -E '_NOT_BUILT$|^sdk\.|^docs\.'
  echo "sanitize: tsan tests took $((SECONDS - start)) s"
}

case $which in
  asan) run_asan ;;
  tsan) run_tsan ;;
  all)  # separate commands: a function called on the left of && runs without set -e
    run_asan
    run_tsan
    ;;
esac
