// The job behind `pretext run`: pretext training on the unlabelled split,
// then transfer to the labelled split in each configured mode, then
// evaluation on validation and test data.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "data/image_set.hpp"
#include "data/split.hpp"
#include "pipeline/config/document.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/run/progress.hpp"
#include "pipeline/run/run_directory.hpp"
#include "pipeline/run/run_options.hpp"
#include "pipeline/train/checkpoint.hpp"
#include "pipeline/train/compute.hpp"
#include "pipeline/train/stop_token.hpp"
#include "pipeline/train/trainer.hpp"

namespace pretext {

struct JobRequest {
  std::filesystem::path config;
  std::vector<std::string> overrides;  // "key=value"
  std::filesystem::path out;           // empty: runs/<config name>-<time>
  bool load_data = true;               // false: validate config and plugins only (run() is then invalid)
  const StopToken* stop = nullptr;     // checked after every pretext step; nullptr: never stops early
  bool resume = false;                 // continue the run in `out` from its newest checkpoint
  bool force = false;                  // clear `out` first when it already holds a run
};

class Job {
 public:
  /// Reads and validates the whole config (plugins included), then loads the
  /// data. Every mistake surfaces here, before anything is written.
  explicit Job(const JobRequest& request);
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  [[nodiscard]] const RunOptions& options() const { return options_; }
  [[nodiscard]] std::string resolved_config() const { return document_.resolved_text(); }

  /// Runs everything into the run directory and returns the summary.
  toml::table run(Progress& progress);
  [[nodiscard]] const std::filesystem::path& run_directory() const { return out_; }

  /// Restores the pretext task from `checkpoint` (a run's pretext.pt) and
  /// writes `count` generated images to `png` as a grid. InputError when the
  /// task cannot generate or the checkpoint is missing.
  void sample(const std::filesystem::path& checkpoint, std::int64_t count, const std::filesystem::path& png);

 private:
  struct EvaluationData {
    LabelledTensors validation;
    LabelledTensors test;
  };
  void load_plugins(RunSections& sections);
  void load_data();
  std::shared_ptr<Backbone> run_pretext(RunDirectory& dir, Progress& progress, toml::table& summary);
  void save_pretext_checkpoint(const RunDirectory& dir) const;
  /// Refuses a directory that holds a run (unless forced); on resume, checks there is one.
  void prepare_run_directory(Progress& progress) const;
  /// The newest readable checkpoint, restored into the task; nullopt when there is none.
  std::optional<PretextProgress> restore_newest_checkpoint(Progress& progress);
  /// Between phases: a stop request ends the run here (the pretext checkpoint is complete).
  void stop_if_requested(const std::string& where) const;
  std::shared_ptr<Loss> loss_with_defaults(const std::string& name);
  void run_transfer(const std::string& mode, const std::shared_ptr<Backbone>& pretrained,
                    const EvaluationData& evaluation, RunDirectory& dir, Progress& progress, toml::table& summary);
  /// kNN and linear probe ([evaluation]) on the pretext backbone and a fresh one.
  void run_feature_evaluations(Backbone& pretrained, const EvaluationData& evaluation, RunDirectory& dir,
                               Progress& progress, toml::table& summary);

  PluginHost host_;  // declared first: destroyed last, after every object its libraries made
  config::Document document_;
  RunOptions options_;
  std::filesystem::path out_;
  const StopToken* stop_ = nullptr;
  bool resume_ = false;
  bool force_ = false;
  std::string config_hash_;  // of the run directory's config.toml
  Compute compute_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<PretextTask> task_;
  std::string pretext_plugin_;  // "pretext plugin 'NAME' (FILE)": names the task in its faults
  std::shared_ptr<Loss> pretext_loss_;
  std::shared_ptr<Loss> transfer_loss_;
  std::vector<std::shared_ptr<const Stage>> pretext_stages_;
  std::vector<std::shared_ptr<const Stage>> transfer_stages_;
  data::ImageSet train_;
  data::ImageSet test_;
  data::Split split_;
  std::int64_t classes_ = 0;
  std::vector<std::string> class_names_;  // label -> name, when the data names its classes (classes.toml)
  double wait_seconds_ = 0.0;
  double graph_seconds_ = 0.0;
};

}  // namespace pretext
