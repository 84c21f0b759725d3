// Pretext-phase checkpoints for `pretext resume`: checkpoints/step-<global
// step>.pt holds the task (networks and optimisers), where the phase stands,
// the partial epoch's sums, LibTorch's CPU generator, the metric rows so far
// and a hash of config.toml. Written atomically; the newest `keep` are kept.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/train/compute.hpp"
#include "pipeline/train/trainer.hpp"

namespace pretext {

/// Where the pretext phase stands, and what the rest of the run needs from
/// the part already done.
struct PretextProgress {
  std::int64_t epoch = 0;        // epochs completed
  std::int64_t step = 0;         // steps trained within `epoch` (totals.steps)
  std::int64_t global_step = 0;  // steps trained in all
  EpochTotals totals;            // of the partial epoch
  EpochReport last;              // of the last completed epoch (loss, accuracy, images/s)
  double seconds = 0.0;          // pretext training time so far
  double wait_seconds = 0.0;
  double graph_seconds = 0.0;
  std::vector<std::string> metric_rows;
  std::string config_hash;
  /// The ranks that trained it: a resume must use as many (each rank's share
  /// of an epoch depends on it). 1 in checkpoints from before data parallelism.
  std::int64_t world_size = 1;
  /// The CPU generator states of ranks 1 .. world_size-1 (rank 0's is the
  /// process's own), as bytes: dropout and a GAN's noise differ per rank.
  std::vector<std::string> rank_generators;
};

/// A hash of config.toml's text, as recorded in checkpoints.
std::string config_hash(const std::string& config_text);
std::string read_text_file(const std::filesystem::path& file);

std::filesystem::path checkpoint_directory(const std::filesystem::path& run_dir);
/// Step checkpoints in `run_dir`, oldest first.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& run_dir);

/// Writes `archive` to `file` atomically, every byte through an AtomicFile:
/// a full disk or a read-only directory is "cannot write FILE: REASON", and
/// `file` keeps its previous contents. (LibTorch's own save_to(path) aborts
/// the process when a write fails, and does not check its final flush.)
void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::filesystem::path& file);

/// Writes checkpoints/step-<global_step>.pt atomically, then deletes all but
/// the newest `keep`. Returns the file written.
std::filesystem::path write_checkpoint(const std::filesystem::path& run_dir, const PretextTask& task,
                                       const PretextProgress& progress, std::int64_t keep);

/// The file write_checkpoint writes for `global_step`.
std::filesystem::path checkpoint_file(const std::filesystem::path& run_dir, std::int64_t global_step);

/// Restores `task` and LibTorch's CPU generator (data-parallel rank `rank`'s)
/// from `file`. Throws on a corrupt or truncated file. A rank the file has
/// no generator for (it was written by fewer ranks) keeps its generator: the
/// caller compares world_size and refuses.
PretextProgress read_checkpoint(const std::filesystem::path& file, PretextTask& task, const torch::Device& device,
                                int rank = 0);

/// Restores `task` from `file`, a pretext.pt written by an earlier run
/// (pretext.load, pretext sample); callers check that it exists, each with
/// its own message.
void load_pretext_state(PretextTask& task, const std::filesystem::path& file, const torch::Device& device);

}  // namespace pretext
