# libFuzzer builds (PRETEXT_FUZZ=ON, clang only; see fuzz/ and scripts/fuzz.sh).
#
# Everything compiled in such a build carries ASan + UBSan and libFuzzer's
# coverage hooks (fuzzer-no-link), so the data readers and the config code the
# targets call are instrumented, not just the targets. Only the fuzz targets
# link libFuzzer's main. UB aborts instead of printing and going on, so the
# fuzzer sees it as a crash.
if(NOT PRETEXT_FUZZ)
  return()
endif()
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "PRETEXT_FUZZ needs clang (libFuzzer): configure with CC=clang CXX=clang++, "
                      "found ${CMAKE_CXX_COMPILER_ID}")
endif()
set(PRETEXT_FUZZ_SANITIZERS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
add_compile_options(-fsanitize=fuzzer-no-link ${PRETEXT_FUZZ_SANITIZERS})
add_link_options(${PRETEXT_FUZZ_SANITIZERS})
