// A finished run directory, opened again without its training data: the
// networks it saved, rebuilt from its config.toml and model.toml. What
// `pretext export` and `pretext embed` start from.
//
// It reads config.toml (the model plugin and its options), model.toml (the
// networks' input shape and class count, which come from the data),
// backbone.pt (mode "pretext") and transfer-<mode>.pt (a mode's backbone and
// head, as the sub-archives "backbone" and "head"); see artefacts::RunLayout.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/config/run_options.hpp"
#include "pipeline/train/assembled_run.hpp"
#include "pretext/sdk.hpp"

namespace pretext {

/// What a run's networks take and give, recorded at run time.
struct NetworkShape {
  ImageShape input;          // after data.pad_to, as the backbone saw it
  std::int64_t classes = 0;  // outputs of the transfer heads
};

/// Writes model.toml into the run directory (atomically).
void write_network_shape(const artefacts::RunDirectory& dir, const NetworkShape& shape);
/// Reads RUN_DIR/model.toml. InputError naming the file when it is missing,
/// malformed or lacks a key.
NetworkShape read_network_shape(const std::filesystem::path& run_dir);

/// Writes transfer-<mode>.pt's format: backbone and head as sub-archives.
void save_transfer_networks(const std::filesystem::path& file, const Backbone& backbone, const Head& head);

struct SavedNetworks {
  std::shared_ptr<Backbone> backbone;
  std::shared_ptr<Head> head;  // null for the pretext backbone
};

/// What `pretext export` and `embed` call the pretext backbone, beside the transfer modes.
inline constexpr const char* kPretextMode = "pretext";

class SavedRun {
 public:
  /// Reads config.toml and model.toml and loads the model plugin. InputError
  /// when `dir` is not a run directory or lacks model.toml.
  explicit SavedRun(std::filesystem::path dir);
  ~SavedRun();
  SavedRun(const SavedRun&) = delete;
  SavedRun& operator=(const SavedRun&) = delete;

  [[nodiscard]] const std::filesystem::path& directory() const { return dir_; }
  [[nodiscard]] const RunOptions& options() const { return run_->options(); }
  [[nodiscard]] const NetworkShape& shape() const { return shape_; }

  /// The file holding `mode`'s networks. UsageError for an unknown mode.
  [[nodiscard]] std::filesystem::path file_for(const std::string& mode) const;

  /// `mode`'s networks, rebuilt by the model plugin and loaded on the CPU, in
  /// eval mode. UsageError for an unknown mode; InputError naming the file
  /// when it is missing or does not hold this model's networks.
  [[nodiscard]] SavedNetworks load(const std::string& mode) const;

 private:
  std::filesystem::path dir_;
  std::unique_ptr<AssembledRun> run_;  // its plugin host outlives the networks it makes (they hold its libraries)
  NetworkShape shape_;
};

}  // namespace pretext
