// Data-parallel training over a ProcessGroup, the way DDP does it, without
// hooks: after backward() every rank calls GradientAverager::average, which
// leaves each parameter's gradient equal to the mean over the ranks
// (bit-identical everywhere), so optimizer.step() keeps the replicas equal.
// broadcast_module_state makes them equal to begin with; average_buffers keeps
// batch-norm statistics in step. Rank 0 alone writes files.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "pipeline/distributed/process_group.hpp"

namespace pretext::distributed {

class GradientAverager {
 public:
  /// DDP's default: large enough that a conv net's gradients are one or two
  /// all-reduces, small enough to bound the extra memory.
  static constexpr std::int64_t kDefaultBucketBytes = std::int64_t{25} << 20;

  /// Buckets `parameters` in order, grouped by dtype: a bucket closes when
  /// the next parameter would take it past `bucket_bytes` (a larger parameter
  /// gets a bucket of its own). Parameters that do not require grad (a frozen
  /// backbone) are left out, so build one per training phase, after freezing.
  /// Every rank must pass the same list. CPU tensors (gloo).
  explicit GradientAverager(const std::vector<torch::Tensor>& parameters,
                            std::int64_t bucket_bytes = kDefaultBucketBytes);

  /// Between backward() and optimizer.step(): per bucket, copies the
  /// gradients into one flat buffer (kept between calls), sums it over the
  /// ranks in one all-reduce, divides by the world size and copies back. A
  /// parameter without a gradient on this rank contributes zeros, so all ranks
  /// run the same collectives; it gets the averaged gradient if any rank had
  /// one, and keeps none if no rank had.
  void average(ProcessGroup& group);

  /// Bytes all-reduced per call (gradients, plus one element per parameter
  /// that counts the ranks which had a gradient).
  [[nodiscard]] std::int64_t bytes_per_step() const;
  [[nodiscard]] std::size_t buckets() const { return buckets_.size(); }
  /// How many parameters each bucket holds, in bucket order.
  [[nodiscard]] std::vector<std::size_t> parameters_per_bucket() const;

 private:
  struct Bucket {
    std::vector<torch::Tensor> parameters;
    std::vector<std::int64_t> offsets;  // of each parameter's gradient in `buffer`
    std::int64_t gradient_elements = 0;
    torch::Tensor buffer;  // gradients, then one "had a gradient" count per parameter
  };
  std::vector<Bucket> buckets_;
};

/// Every parameter and buffer of `module` (recursively) takes rank `root`'s
/// values: one broadcast per dtype, of all of them flattened together. Fails
/// naming the rank whose module is laid out differently (names, dtypes,
/// shapes), before anything is sent.
void broadcast_module_state(torch::nn::Module& module, ProcessGroup& group, int root = 0);

/// Batch-norm running statistics after each rank has seen its own shard:
/// floating-point buffers become the mean over the ranks; integer ones
/// (num_batches_tracked) take rank 0's value, the same on every rank. Meant
/// for once per epoch, before evaluating or saving; broadcast_module_state
/// has checked the layouts by then.
void average_buffers(torch::nn::Module& module, ProcessGroup& group);

}  // namespace pretext::distributed
