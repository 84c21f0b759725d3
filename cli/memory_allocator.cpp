#include "cli/memory_allocator.hpp"

#include <cstdlib>
#include <string_view>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace pretext::cli {

void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::string_view(tunables).find("glibc.malloc.") != std::string_view::npos) return;
  // Setting either threshold turns off glibc's dynamic adjustment of both, so
  // both are set: blocks under 1 GiB come from the heap, and a freed heap top
  // stays mapped until it exceeds 1 GiB.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace pretext::cli
