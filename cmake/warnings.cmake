add_library(pretext_warnings INTERFACE)
target_compile_options(pretext_warnings INTERFACE -Wall -Wextra -Wpedantic -Wno-unused-parameter)

# Sanitizer builds (see CMakePresets.json). LibTorch itself is not instrumented.
set(PRETEXT_SANITIZE "" CACHE STRING "Sanitizers: empty, 'address,undefined' or 'thread'")
if(PRETEXT_SANITIZE)
  add_compile_options(-fsanitize=${PRETEXT_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${PRETEXT_SANITIZE})
endif()
