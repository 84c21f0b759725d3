// A data-parallel process group: the rendezvous store that rank 0 serves and
// the gloo collectives over it, both from LibTorch's c10d. The c10d headers
// stay in process_group.cpp (they are heavy, and need USE_C10D_GLOO), so this
// header holds only what callers use.
//
// Every failure names what was expected and within what time: a busy port or
// an unreachable rank 0 is a UsageError (exit 2: fix MASTER_ADDR/MASTER_PORT),
// a collective that fails or times out is a std::runtime_error naming the
// operation, the timeout and the ranks that had not reached it.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "pipeline/distributed/launch_environment.hpp"

namespace pretext::distributed {

class ProcessGroup {
 public:
  /// The default for rendezvous, each collective and each store read: long
  /// enough for a slow rank to finish loading its data, short enough that a
  /// dead one is reported the same hour.
  static constexpr std::chrono::milliseconds kDefaultTimeout{std::chrono::minutes(10)};

  /// Joins the group `environment` describes. Rank 0 serves the store on
  /// MASTER_PORT; every rank connects to MASTER_ADDR:MASTER_PORT, announces
  /// itself, and waits for all the others, all within `timeout`. A single
  /// process (world_size 1) gets a group of one: collectives return at once and
  /// the store is in memory, so callers need no special case.
  ProcessGroup(const DistributedEnvironment& environment, std::chrono::milliseconds timeout = kDefaultTimeout);
  ~ProcessGroup();
  ProcessGroup(ProcessGroup&&) noexcept;
  ProcessGroup& operator=(ProcessGroup&&) noexcept;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  [[nodiscard]] int rank() const;
  [[nodiscard]] int world_size() const;
  [[nodiscard]] std::chrono::milliseconds timeout() const;

  /// Each tensor takes rank `root`'s values, in place. Every rank passes
  /// tensors of the same dtypes and shapes, in the same order. CPU tensors.
  void broadcast(std::vector<torch::Tensor>& tensors, int root);
  /// Each tensor becomes the element-wise sum over the ranks, in place. The
  /// result is bit-identical on every rank.
  void all_reduce_sum(std::vector<torch::Tensor>& tensors);
  /// all_reduce_sum, then divided by world_size(). Floating-point tensors only.
  void all_reduce_mean(std::vector<torch::Tensor>& tensors);
  /// Returns once every rank has called it.
  void barrier();
  /// Leaves `message` in the store as this rank's reason for stopping, so
  /// that a peer whose collective then fails names the cause, not only the
  /// lost connection. Call it on the way out; it never throws.
  void report_failure(const std::string& message) noexcept;

  /// The store every rank shares. `set` overwrites; `get` waits up to the
  /// timeout for another rank to set the key, then fails naming the key.
  void set(const std::string& key, const std::string& value);
  [[nodiscard]] std::string get(const std::string& key);

  /// Every rank's `value`, indexed by rank: each rank publishes its own through
  /// the store and reads the others'. `topic` names the exchange in messages;
  /// calls are numbered, so the same topic can be exchanged again.
  [[nodiscard]] std::vector<std::string> all_gather_strings(const std::string& topic, const std::string& value);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pretext::distributed
