// Recycled pixel buffers for batches.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>

namespace pretext::stages {

/// Aligned float buffers of one size, recycled. A buffer handed out returns
/// to the pool when its last reference goes, even after the epoch that made
/// it has ended (the pool lives as long as any of its buffers). Thread-safe
/// and lock-free on the hot path.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  static std::shared_ptr<BufferPool> create(std::size_t floats);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  [[nodiscard]] std::size_t floats() const { return floats_; }
  /// A buffer of floats() floats, 64-byte aligned, contents unspecified.
  std::shared_ptr<float> acquire();
  /// Buffers allocated so far (free or in use).
  [[nodiscard]] std::size_t allocated() const { return allocated_.load(); }

 private:
  struct FreeList;
  explicit BufferPool(std::size_t floats);
  void release(float* buffer);

  std::size_t floats_;
  std::unique_ptr<FreeList> free_;
  std::atomic<std::size_t> allocated_{0};
};

}  // namespace pretext::stages
