// The parts of Job that make a run safe to interrupt and continue: refusing
// to overwrite a run, writing and restoring checkpoints, and stopping after a
// step or between phases on request.
#include <filesystem>

#include "common/atomic_file.hpp"
#include "common/errors.hpp"
#include "pipeline/train/job.hpp"

namespace pretext {

namespace fs = std::filesystem;

void Job::prepare_run_directory(Progress& progress) const {
  const artefacts::RunLayout layout(out_);
  if (resume_) {
    if (!fs::exists(layout.config())) throw InputError(out_.string() + " holds no run to resume (no config.toml)");
    // Writes cut short (kill -9, a second signal, a power cut)
    // leave hidden temporaries beside their files; their writers are gone.
    std::size_t stale = 0;
    for (const auto& dir : {layout.path(), layout.checkpoints(), layout.charts()})
      stale += remove_stale_temporaries(dir);
    if (stale > 0)
      progress.line("pretext: removed " + std::to_string(stale) + " temporary file(s) left by an interrupted write");
    return;
  }
  if (!layout.holds_run()) return;
  if (!force_)
    throw UsageError(out_.string() + " already holds a run; continue it with `pretext resume " + out_.string() +
                     "`, or pass --force to clear it and start again");
  progress.line("pretext: --force: clearing " + out_.string());
  fs::remove_all(out_);
}

PretextProgress Job::restore_pretext_progress(artefacts::RunDirectory& dir, Progress& progress) {
  PretextProgress state;
  if (resume_) {
    if (auto restored = restore_newest_checkpoint(progress)) {
      state = std::move(*restored);
      dir.restore_metric_rows(state.metric_rows);
      wait_seconds_ = state.wait_seconds;
      graph_seconds_ = state.graph_seconds;
    }
  }
  state.config_hash = config_hash_;
  return state;
}

void Job::after_pretext_step(PretextProgress& state, const EpochTotals& totals, std::int64_t epoch,
                             std::int64_t steps_per_epoch, const artefacts::RunDirectory& dir) {
  state.step = totals.steps;
  state.totals = totals;
  ++state.global_step;
  const int signal = stop_ != nullptr ? stop_->requested(state.global_step) : 0;
  const std::int64_t every = options().checkpoint.every_steps;
  // A step checkpoint at an epoch's last step would be replaced by the epoch's own one at once.
  const bool due = every > 0 && state.global_step % every == 0 && totals.steps < steps_per_epoch;
  if (signal == 0 && !due) return;
  const auto file = write_step_checkpoint(state, dir);
  if (signal != 0)
    throw RunInterrupted("interrupted at epoch " + std::to_string(epoch + 1) + " step " + std::to_string(totals.steps) +
                             "; checkpoint " + file.string() + "; continue with: pretext resume " + out_.string(),
                         signal);
}

fs::path Job::write_step_checkpoint(PretextProgress& state, const artefacts::RunDirectory& dir) const {
  state.metric_rows = dir.metric_rows();
  state.wait_seconds = wait_seconds_;
  state.graph_seconds = graph_seconds_;
  return write_checkpoint(out_, *assembled_.task(), state, options().checkpoint.keep);
}

void Job::save_pretext_checkpoint(const artefacts::RunDirectory& dir) const {
  const PretextTask& task = *assembled_.task();
  torch::serialize::OutputArchive task_archive;
  task.save(task_archive);
  save_archive_atomically(task_archive, dir.pretext_state());
  torch::serialize::OutputArchive backbone_archive;
  task.backbone()->save(backbone_archive);
  save_archive_atomically(backbone_archive, dir.pretext_backbone());
}

std::optional<PretextProgress> Job::restore_newest_checkpoint(Progress& progress) {
  const auto files = list_checkpoints(out_);
  if (files.empty()) {
    progress.line("pretext: no checkpoint in " + out_.string() + "; the pretext phase starts from the beginning");
    return std::nullopt;
  }
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    PretextProgress restored;
    try {
      restored = read_checkpoint(*it, *assembled_.task(), compute_.device);
    } catch (const std::exception& e) {
      progress.line("pretext: warning: skipping unreadable checkpoint " + it->string() + ": " + e.what());
      continue;
    }
    if (restored.config_hash != config_hash_)
      throw InputError(artefacts::RunLayout(out_).config().string() + " differs from the config that wrote " +
                       it->string() + " (config hash " + config_hash_ + ", checkpoint's " + restored.config_hash +
                       "); restore the original config.toml, or start again with pretext run --force");
    progress.line("pretext: resuming from " + it->string() + " (epoch " + std::to_string(restored.epoch + 1) +
                  ", after step " + std::to_string(restored.step) + ")");
    return restored;
  }
  throw InputError("no readable checkpoint in " + checkpoint_directory(out_).string() +
                   "; start again with pretext run --force");
}

void Job::stop_if_requested(const std::string& where) const {
  if (stop_ == nullptr || stop_->signal() == 0) return;
  const auto checkpoints = list_checkpoints(out_);
  throw RunInterrupted("interrupted " + where + "; the pretext phase is complete" +
                           (checkpoints.empty() ? std::string() : " in " + checkpoints.back().string()) +
                           "; continue with: pretext resume " + out_.string(),
                       stop_->signal());
}

}  // namespace pretext
