// How a run trains on several processes (ranks), each a replica of the
// networks on its own share of the data, the way DDP does it:
//
// - the configured batch sizes are global: each rank trains on
//   batch / world_size samples per step, and reads a strided share of every
//   epoch's permutation (shard), so a step of W ranks sees the samples one
//   rank would see in the same step;
// - rank 0's initial weights go to every rank (broadcast);
// - after backward(), gradients are averaged in flat buckets (average, from
//   the host's optimisers and TrainingContext::gradients_finite), so the
//   replicas stay bit-identical;
// - batch-norm running statistics are averaged at the end of each epoch
//   (average_buffers), before evaluation and checkpoints;
// - epoch figures (loss, accuracy, throughput) are summed over the ranks;
// - rank 0 alone writes the run directory (writes()).
//
// A run of one process gets a DataParallel of world size 1: every call is then
// a no-op or the identity, so the trainer has no special case.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/distributed/launch_environment.hpp"
#include "pipeline/train/gradient_check.hpp"
#include "stages/epoch_graph.hpp"

namespace pretext {

namespace distributed {
class ProcessGroup;
class GradientAverager;
}  // namespace distributed

struct EpochTotals;

class DataParallel final : public GradientSync {
 public:
  /// Joins the job `environment` describes (a group of one when it is not
  /// distributed). `timeout` bounds the rendezvous and every collective.
  DataParallel(const distributed::DistributedEnvironment& environment, std::chrono::milliseconds timeout,
               std::int64_t bucket_bytes);
  ~DataParallel() override;
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int world_size() const { return world_size_; }
  [[nodiscard]] bool distributed() const { return world_size_ > 1; }
  /// Rank 0 writes the run directory; the others only read it (on resume).
  [[nodiscard]] bool writes() const { return rank_ == 0; }

  /// Refuses a run whose ranks were started with different configs (exit 2,
  /// naming the first differing key); thread counts may differ per host.
  void check_same_config(const std::string& resolved_config);

  /// This rank's samples per step of a global `batch_size`; a size the ranks
  /// cannot share equally is a ConfigError naming `key`.
  [[nodiscard]] std::int64_t local_batch(std::int64_t batch_size, const std::string& key) const;
  /// Keeps this rank's share of `plan.order`: positions rank, rank + W, ...
  /// of the order cut to a multiple of W (every rank gets as many samples, so
  /// all take as many steps). Samples keep the random streams they have on
  /// one rank (keyed by their global position where the plan keys by position).
  void shard(stages::EpochPlan& plan) const;

  /// GradientSync: the mean over the ranks of each gradient, in buckets.
  void average(const std::vector<torch::Tensor>& parameters) override;
  /// Every rank takes rank 0's parameters and buffers.
  void broadcast(torch::nn::Module& module);
  /// Every rank takes rank 0's `bytes` (e.g. a task's saved state).
  void broadcast(std::string& bytes);
  /// Every rank's `value`, by rank (small values: they go through the store).
  [[nodiscard]] std::vector<std::string> gather(const std::string& topic, const std::string& value);
  /// Floating-point buffers (batch-norm statistics) become the mean over the
  /// ranks; integer ones take rank 0's. Modules in eval mode are left alone:
  /// nothing changed their statistics.
  void average_buffers(torch::nn::Module& module);
  /// Fails naming `what` when the ranks' parameters are not bit-identical
  /// any more: a task updated them with an optimiser the host does not see.
  void check_replicas(const std::vector<torch::Tensor>& parameters, const std::string& what);

  /// An epoch's sums over all ranks (samples, loss, counts, task metrics).
  void sum(EpochTotals& totals);
  /// The largest of the ranks' values: a stop signal any rank received is
  /// acted on by all at the same step.
  [[nodiscard]] std::int64_t max(std::int64_t value);
  /// An integer sum over the ranks (e.g. correct predictions).
  [[nodiscard]] std::int64_t sum(std::int64_t value);
  /// The element-wise mean over the ranks of a small CPU tensor (e.g. a
  /// batch's statistics that every rank must agree on).
  [[nodiscard]] torch::Tensor mean(const torch::Tensor& values);
  /// Returns when every rank has arrived.
  void barrier();

  /// What gradient averaging has cost this rank so far: the calls, their
  /// time (waiting for a slower rank included) and the bytes all-reduced.
  struct Traffic {
    std::int64_t calls = 0;
    double seconds = 0.0;
    std::int64_t bytes = 0;
  };
  [[nodiscard]] const Traffic& traffic() const { return traffic_; }
  /// This rank stops with `message`: the others' errors will quote it.
  void report_failure(const std::string& message) noexcept;
  /// Drops the gradient buckets of a phase that has ended (their buffers).
  void forget_buckets();
  /// Runs `action` on rank 0 alone (preparing the run directory, writing a
  /// checkpoint) and tells the others how it went: when it throws, rank 0
  /// rethrows and every other rank throws an error of the same exit code
  /// saying that rank 0 stopped at `what`, instead of waiting for it.
  void on_rank0(const std::string& what, const std::function<void()>& action);

 private:
  int rank_ = 0;
  int world_size_ = 1;
  std::int64_t bucket_bytes_;
  Traffic traffic_;
  std::unique_ptr<distributed::ProcessGroup> group_;  // null for a single process
  // Gradient buckets per parameter list (the GAN averages three modules a
  // step; which parameters train changes after frozen epochs), kept so that
  // each step reuses its flat buffers.
  std::map<std::vector<const void*>, std::unique_ptr<distributed::GradientAverager>> averagers_;
};

/// Rank `rank` of `world_size`'s share of `plan.order`, as DataParallel::shard
/// takes it (exposed for tests).
void take_share(stages::EpochPlan& plan, int rank, int world_size);

/// Where a pretext task may write artefacts of its own
/// (TrainingContext::run_directory): the run directory on rank 0; on the
/// other ranks, which never write it, a scratch directory removed afterwards.
class RankScratch {
 public:
  RankScratch(const DataParallel& parallel, const std::filesystem::path& run_directory);
  ~RankScratch();
  RankScratch(const RankScratch&) = delete;
  RankScratch& operator=(const RankScratch&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool scratch_ = false;
};

}  // namespace pretext
