#include "stages/buffer_pool.hpp"

#include <new>

#include <oneapi/tbb/concurrent_queue.h>

namespace pretext::stages {
namespace {

// A cache line: vector loads never straddle one at a buffer's start.
constexpr std::align_val_t kAlignment{64};

}  // namespace

struct BufferPool::FreeList {
  oneapi::tbb::concurrent_queue<float*> buffers;
};

std::shared_ptr<BufferPool> BufferPool::create(std::size_t floats) {
  return std::shared_ptr<BufferPool>(new BufferPool(floats));
}

BufferPool::BufferPool(std::size_t floats) : floats_(floats), free_(std::make_unique<FreeList>()) {}

BufferPool::~BufferPool() {
  float* buffer = nullptr;
  while (free_->buffers.try_pop(buffer)) ::operator delete(buffer, kAlignment);
}

std::shared_ptr<float> BufferPool::acquire() {
  float* buffer = nullptr;
  if (!free_->buffers.try_pop(buffer)) {
    buffer = static_cast<float*>(::operator new(floats_ * sizeof(float), kAlignment));
    allocated_.fetch_add(1);
  }
  // The deleter holds the pool, so a buffer outliving its epoch still has
  // somewhere to go back to.
  return {buffer, [pool = shared_from_this()](float* b) { pool->release(b); }};
}

void BufferPool::release(float* buffer) { free_->buffers.push(buffer); }

}  // namespace pretext::stages
