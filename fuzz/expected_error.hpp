// The errors a fuzz target expects are swallowed; with PRETEXT_FUZZ_VERBOSE
// set they are printed, to see what a seed or a saved input does:
//   PRETEXT_FUZZ_VERBOSE=1 build-fuzz/fuzz/pretext_fuzz_config tests/fuzz/corpus/config/*
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>

namespace pretext::fuzz {

inline void note_expected(const std::exception& error) {
  static const bool verbose = std::getenv("PRETEXT_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "expected error: %s\n", error.what());
}

}  // namespace pretext::fuzz
