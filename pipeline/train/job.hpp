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
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/config/run_options.hpp"
#include "pipeline/train/assembled_run.hpp"
#include "pipeline/train/checkpoint.hpp"
#include "pipeline/train/compute.hpp"
#include "pipeline/train/data_parallel.hpp"
#include "pipeline/train/progress.hpp"
#include "pipeline/train/stop_token.hpp"
#include "pipeline/train/trainer.hpp"

namespace pretext {

class HostTrainingContext;  // training_context.hpp

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

  [[nodiscard]] const RunOptions& options() const { return assembled_.options(); }
  [[nodiscard]] std::string resolved_config() const { return assembled_.resolved_config(); }
  /// The training file's indices, drawn by data.labelled_draw with the seed.
  [[nodiscard]] const data::Split& split() const { return split_; }

  /// Runs everything into the run directory and returns the summary.
  toml::table run(Progress& progress);
  [[nodiscard]] const std::filesystem::path& run_directory() const { return out_; }
  /// False on the ranks of a data-parallel run other than 0.
  [[nodiscard]] bool writes_run_directory() const { return parallel_->writes(); }

 private:
  struct EvaluationData {
    LabelledTensors validation;
    LabelledTensors test;
  };
  /// Joins the data-parallel job the environment describes (a group of one
  /// without a launcher) and checks that every rank runs the same config.
  void join_ranks();
  void load_data();
  toml::table run_phases(Progress& progress);
  // Keeping the ranks in step (job_parallel.cpp).
  /// Every rank takes rank 0's task state; then each draws its own randomness.
  void start_replicas(PretextTask& task);
  /// Batch-norm statistics averaged over the ranks, and the replicas checked equal.
  void end_epoch_replicas(PretextTask& task, const HostTrainingContext& context);
  /// The statistics alone: also before a step checkpoint, which holds rank
  /// 0's task only, so that the ranks resume from the same state and a run
  /// resumed from it matches one that was not interrupted (which averaged
  /// at the same steps).
  void average_task_buffers(PretextTask& task, const HostTrainingContext& context);
  std::shared_ptr<Backbone> run_pretext(artefacts::RunDirectory& dir, Progress& progress, toml::table& summary);

  // Interrupting and continuing (job_resume.cpp).
  /// Refuses a directory that holds a run (unless forced); on resume, checks there is one.
  void prepare_run_directory(Progress& progress) const;
  /// On resume: the newest readable checkpoint restored into the task, its
  /// metrics rows and timings put back; otherwise a fresh state.
  PretextProgress restore_pretext_progress(artefacts::RunDirectory& dir, Progress& progress);
  /// The newest readable checkpoint, restored into the task; nullopt when there is none.
  std::optional<PretextProgress> restore_newest_checkpoint(Progress& progress);
  /// After every pretext step: counts it, writes a step checkpoint when one
  /// is due, and ends the run with RunInterrupted when a stop was requested.
  /// `epoch_start`: the totals the epoch resumed from (global, restored).
  void after_pretext_step(PretextProgress& state, const EpochTotals& totals, const EpochTotals& epoch_start,
                          std::int64_t epoch, std::int64_t steps_per_epoch, const artefacts::RunDirectory& dir);
  /// A step checkpoint of `state` with the metrics rows and timings so far.
  std::filesystem::path write_step_checkpoint(PretextProgress& state, const artefacts::RunDirectory& dir) const;
  /// pretext.pt and backbone.pt, at the end of every epoch (rank 0 writes).
  void save_pretext_checkpoint(const artefacts::RunDirectory& dir) const;
  void save_pretext_state(const artefacts::RunDirectory& dir) const;
  /// Between phases: a stop request ends the run here (the pretext checkpoint is complete).
  void stop_if_requested(const std::string& where);

  void run_transfer(const std::string& mode, const std::shared_ptr<Backbone>& pretrained,
                    const EvaluationData& evaluation, artefacts::RunDirectory& dir, Progress& progress,
                    toml::table& summary);
  /// kNN and linear probe ([evaluation]) on the pretext backbone and a fresh one.
  void run_feature_evaluations(Backbone& pretrained, const EvaluationData& evaluation, artefacts::RunDirectory& dir,
                               Progress& progress, toml::table& summary);

  AssembledRun assembled_;  // declared first: its plugin host outlives everything its libraries made
  std::filesystem::path out_;
  const StopToken* stop_ = nullptr;
  bool resume_ = false;
  bool force_ = false;
  std::string config_hash_;  // of the run directory's config.toml
  Compute compute_;
  // Shared with the optimisers the host makes (they average gradients through it).
  std::shared_ptr<DataParallel> parallel_;
  DataParallel::Traffic pretext_traffic_;
  const HostTrainingContext* pretext_context_ = nullptr;  // while the pretext phase runs  // gradient averaging in the pretext phase
  data::ImageSet train_;
  data::ImageSet test_;
  data::Split split_;
  std::int64_t classes_ = 0;
  std::vector<std::string> class_names_;  // label -> name, when the data names its classes (classes.toml)
  double wait_seconds_ = 0.0;
  double graph_seconds_ = 0.0;
};

}  // namespace pretext
