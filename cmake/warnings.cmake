add_library(pretext_warnings INTERFACE)
target_compile_options(pretext_warnings INTERFACE -Wall -Wextra -Wpedantic -Wno-unused-parameter)

# Sanitizer builds (see CMakePresets.json). LibTorch itself is not instrumented.
set(PRETEXT_SANITIZE "" CACHE STRING "Sanitizers: empty, 'address,undefined' or 'thread'")
if(PRETEXT_SANITIZE)
  add_compile_options(-fsanitize=${PRETEXT_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${PRETEXT_SANITIZE})
  if(PRETEXT_SANITIZE MATCHES "undefined")
    # Undefined behaviour fails the test that triggers it instead of printing and going on.
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
  if(PRETEXT_SANITIZE MATCHES "thread")
    # GCC instruments the IFUNC resolvers of target_clones functions; they run while
    # the library is relocated, before ThreadSanitizer has set up its thread state,
    # and crash at load. One generic version of the pixel loops is enough here.
    add_compile_definitions(PRETEXT_NO_SIMD_CLONES)
    # oneTBB's headers announce their synchronisation points to threading tools;
    # tests/sanitizers/tbb_itt_to_tsan.cpp passes them on to ThreadSanitizer.
    add_compile_definitions(TBB_USE_PROFILING_TOOLS=2)
  endif()
endif()
