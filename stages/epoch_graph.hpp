// One epoch of input processing as a oneTBB flow graph:
//
//   source ─▶ limiter ─▶ decode ─▶ make views ─▶ stages ─▶ sequencer ─▶ consumer
//   (one batch's   ▲     (parallel)  (parallel)   (parallel)  (batch order)  (serial:
//    sample range)  │                                                        training)
//                   └──────────────── released once the consumer is done with the batch
//
// The message is one batch: the range of the epoch's samples it holds, its
// images decoded to float, and a pooled, aligned buffer that the views are
// written straight into and the stages change in place. That buffer is what
// the consumer receives (the trainer wraps it in a tensor without a copy),
// so there is no serial copying step and nothing is allocated per sample.
// The limiter bounds how many batches exist at once, so memory stays flat
// for any dataset size.
// Randomness comes from SampleRng(seed, epoch, dataset index, view, purpose),
// and the sequencer restores batch order, so batches are identical run after
// run regardless of thread timing or how many threads there are.
//
// A joint epoch runs several plans through one graph: its message carries
// batch k of every part (FixMatch: a labelled batch and a batch of unlabelled
// weak/strong pairs), and the consumer receives them together.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "data/image_set.hpp"
#include "pretext/stage.hpp"
#include "stages/buffer_pool.hpp"

namespace pretext::stages {

struct GraphOptions {
  int threads = 2;                // oneTBB arena concurrency, the consumer's thread included
  int max_batches_in_flight = 8;  // batches being made or used at once (>= 1)
};

/// What one epoch reads, in which order.
struct EpochPlan {
  const data::ImageSet* images = nullptr;
  std::vector<std::uint32_t> order;  // dataset indices, visiting order
  std::uint64_t seed = 0;
  std::uint64_t epoch = 0;
  /// The random streams of a sample are keyed by its image's dataset index,
  /// or, when true, by its position in `order`: for an order that visits an
  /// image more than once in an epoch, so that each visit is augmented afresh.
  bool key_by_position = false;
  /// A position p of `order` is position offset + stride * p of the epoch's
  /// full order: a data-parallel rank reads a strided share of it, and its
  /// samples keep the random streams they have on one rank.
  std::uint64_t position_offset = 0;
  std::uint64_t position_stride = 1;
};

/// A batch handed to the consumer: planar NCHW float pixels and labels.
struct Batch {
  std::uint64_t seq = 0;  // batch number within the epoch
  ImageShape shape;       // of one sample
  std::int64_t count = 0;
  /// count x shape.numel() floats, 64-byte aligned, from a BufferPool. The
  /// consumer may keep a reference past its call (a tensor over the pixels);
  /// the buffer is recycled once nobody holds it.
  std::shared_ptr<float> storage;
  std::vector<std::int64_t> labels;

  [[nodiscard]] const float* pixels() const { return storage.get(); }
  [[nodiscard]] std::size_t numel() const { return static_cast<std::size_t>(count) * shape.numel(); }
};

struct EpochStats {
  std::uint64_t images = 0;   // images read from the source
  std::uint64_t samples = 0;  // samples delivered in batches (images x views, minus any dropped tail)
  std::uint64_t batches = 0;
  std::size_t batch_limit = 0;            // the limiter's threshold actually used
  std::size_t max_batches_in_flight = 0;  // observed peak
  double seconds = 0.0;                   // wall time of the epoch
  double consumer_seconds = 0.0;          // time inside the consumer
  double wait_seconds = 0.0;              // consumer idle, waiting for its next batch
};

struct EpochSpec {
  EpochPlan plan;
  const ViewMaker* views = nullptr;  // nullptr: one view per image, labelled with its class
  std::vector<std::shared_ptr<const Stage>> stages;
  /// When not empty, one stage list per view, replacing `stages`: view v of
  /// every image goes through view_stages[v] (FixMatch's weak and strong views
  /// of one image). Each view's stages draw from the view's own random streams.
  std::vector<std::vector<std::shared_ptr<const Stage>>> view_stages;
  int batch_size = 32;
  bool drop_last = false;
  GraphOptions graph;
  /// Where batch pixels come from. Optional: keep one across epochs to reuse
  /// its buffers; run_epoch makes its own when empty or sized differently.
  std::shared_ptr<BufferPool> buffers;
};

using BatchConsumer = std::function<void(const Batch&)>;

/// Runs one epoch. Exceptions from any stage or the consumer cancel the
/// graph and are rethrown here.
EpochStats run_epoch(const EpochSpec& spec, const BatchConsumer& consume);

/// Batch k of every part of a joint epoch, in the order of the parts.
using JointConsumer = std::function<void(const std::vector<const Batch*>& parts)>;

/// Runs several epochs' worth of plans through one graph, in lockstep: the
/// consumer's call k gets batch k of every part. The joint epoch ends with its
/// shortest part; the graph options (threads, batches in flight) are those of
/// the first part. Each part keeps its own views, stages and random streams,
/// so a part's batches are exactly those run_epoch would make of it alone.
EpochStats run_joint_epoch(const std::vector<const EpochSpec*>& parts, const JointConsumer& consume);

/// `count` identical copies of each image, each labelled with the image's
/// class (or -1): with EpochSpec::view_stages, the weak and strong views of
/// FixMatch, adjacent in the batch.
class RepeatedViews final : public ViewMaker {
 public:
  explicit RepeatedViews(int count);
  [[nodiscard]] int views_per_image() const override { return count_; }
  void make_views(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                  const ViewSlots& views) const override;

 private:
  int count_;
};

/// `indices` in a random order that depends only on (seed, epoch).
std::vector<std::uint32_t> shuffled(std::vector<std::uint32_t> indices, std::uint64_t seed, std::uint64_t epoch);

}  // namespace pretext::stages
