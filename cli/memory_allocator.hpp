// Process-wide malloc settings for training programs (pretext, pretext-train-bench).
#pragma once

namespace pretext::cli {

/// Keeps freed heap memory mapped for reuse instead of handing it back to the
/// kernel. LibTorch allocates every activation and gradient afresh, and with
/// glibc's defaults each step then faults its pages in again (measurements in
/// docs/performance.md). Call once, at the start of main. Does nothing when
/// the user set GLIBC_TUNABLES for malloc, or on a C library other than glibc.
void keep_freed_memory_for_reuse();

}  // namespace pretext::cli
