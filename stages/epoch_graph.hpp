// One epoch of input processing as a oneTBB flow graph:
//
//   source ─▶ limiter ─▶ decode ─▶ make views ─▶ stages ─▶ sequencer ─▶ batcher ─▶ consumer
//   (blocks of       ▲   (parallel)  (parallel)   (parallel)  (by block   (serial)    (serial:
//    shuffled         │                                        sequence)               training)
//    indices)         └──────────────── blocks released after their last batch is consumed
//
// Messages are blocks of images (a sequence number plus planar pixels), so
// per-message overhead is paid once per block, not per image. The limiter
// bounds how many blocks exist at once, from decode until the consumer has
// used their last sample, so memory stays flat for any dataset size.
// Randomness comes from SampleRng(seed, epoch, dataset index, view, purpose),
// and the sequencer restores block order before batching, so batches are
// identical run after run regardless of thread timing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "data/image_set.hpp"
#include "pretext/stage.hpp"

namespace pretext::stages {

struct GraphOptions {
  int threads = 2;                // oneTBB arena concurrency, the consumer's thread included
  int block_size = 64;            // images per message
  int max_blocks_in_flight = 8;   // raised automatically when a batch needs more blocks
};

/// What one epoch reads, in which order.
struct EpochPlan {
  const data::ImageSet* images = nullptr;
  std::vector<std::uint32_t> order;  // dataset indices, visiting order
  std::uint64_t seed = 0;
  std::uint64_t epoch = 0;
};

/// A batch handed to the consumer: planar NCHW float pixels and labels.
struct Batch {
  std::uint64_t seq = 0;  // batch number within the epoch
  ImageShape shape;       // of one sample
  std::int64_t count = 0;
  std::vector<float> pixels;
  std::vector<std::int64_t> labels;
};

struct EpochStats {
  std::uint64_t images = 0;   // images read from the source
  std::uint64_t samples = 0;  // samples delivered in batches (images x views, minus any dropped tail)
  std::uint64_t batches = 0;
  std::size_t block_limit = 0;          // the limiter's threshold actually used
  std::size_t max_blocks_in_flight = 0;  // observed peak
  double seconds = 0.0;                 // wall time of the epoch
  double consumer_seconds = 0.0;        // time inside the consumer
  double wait_seconds = 0.0;            // consumer idle, waiting for its next batch
};

struct EpochSpec {
  EpochPlan plan;
  const ViewMaker* views = nullptr;  // nullptr: one view per image, labelled with its class
  std::vector<std::shared_ptr<const Stage>> stages;
  int batch_size = 32;
  bool drop_last = false;
  GraphOptions graph;
};

using BatchConsumer = std::function<void(const Batch&)>;

/// Runs one epoch. Exceptions from any stage or the consumer cancel the
/// graph and are rethrown here.
EpochStats run_epoch(const EpochSpec& spec, const BatchConsumer& consume);

/// `indices` in a random order that depends only on (seed, epoch).
std::vector<std::uint32_t> shuffled(std::vector<std::uint32_t> indices, std::uint64_t seed, std::uint64_t epoch);

}  // namespace pretext::stages
