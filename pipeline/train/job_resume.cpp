// The parts of Job that make a run safe to interrupt and continue: refusing
// to overwrite a run, writing and restoring checkpoints, and stopping after a
// step or between phases on request.
#include <filesystem>
#include <mutex>

#include "common/atomic_file.hpp"
#include "common/errors.hpp"
#include "pipeline/train/job.hpp"
#include "pipeline/train/training_context.hpp"

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

void Job::after_pretext_step(PretextProgress& state, const EpochTotals& totals, const EpochTotals& epoch_start,
                             std::int64_t epoch, std::int64_t steps_per_epoch, const artefacts::RunDirectory& dir) {
  state.step = totals.steps;
  state.totals = totals;
  ++state.global_step;
  int signal = stop_ != nullptr ? stop_->requested(state.global_step) : 0;
  // A signal reaches the ranks at different steps (or only one of them):
  // all stop at the first step after any of them got one, together.
  if (parallel_->distributed()) signal = static_cast<int>(parallel_->max(signal));
  const std::int64_t every = options().checkpoint.every_steps;
  // A step checkpoint at an epoch's last step would be replaced by the epoch's own one at once.
  const bool due = every > 0 && state.global_step % every == 0 && totals.steps < steps_per_epoch;
  if (signal == 0 && !due) return;
  if (parallel_->distributed()) {
    // The checkpoint holds the epoch's figures so far over all ranks, and
    // rank 0's task, with statistics the ranks now share.
    state.totals = sum_over_ranks(totals, epoch_start, *parallel_);
    average_task_buffers(*assembled_.task(), *pretext_context_);
  }
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
  state.world_size = parallel_->world_size();
  state.rank_generators.clear();
  if (parallel_->distributed()) {
    // Each rank's CPU generator, so that a resumed rank draws what it would have.
    std::string mine;
    {
      auto generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      const torch::Tensor bytes = generator.get_state().contiguous();
      mine.assign(static_cast<const char*>(bytes.data_ptr()), static_cast<std::size_t>(bytes.numel()));
    }
    auto all = parallel_->gather("generator states at step " + std::to_string(state.global_step), mine);
    state.rank_generators.assign(all.begin() + 1, all.end());
  }
  std::filesystem::path file = checkpoint_file(out_, state.global_step);
  parallel_->on_rank0("writing " + file.string(),
                      [&] { file = write_checkpoint(out_, *assembled_.task(), state, options().checkpoint.keep); });
  return file;
}

void Job::save_pretext_checkpoint(const artefacts::RunDirectory& dir) const {
  parallel_->on_rank0("writing " + dir.pretext_state().string(), [&] { save_pretext_state(dir); });
}

void Job::save_pretext_state(const artefacts::RunDirectory& dir) const {
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
      restored = read_checkpoint(*it, *assembled_.task(), compute_.device, parallel_->rank());
    } catch (const std::exception& e) {
      progress.line("pretext: warning: skipping unreadable checkpoint " + it->string() + ": " + e.what());
      continue;
    }
    if (restored.config_hash != config_hash_)
      throw InputError(artefacts::RunLayout(out_).config().string() + " differs from the config that wrote " +
                       it->string() + " (config hash " + config_hash_ + ", checkpoint's " + restored.config_hash +
                       "); restore the original config.toml, or start again with pretext run --force");
    if (restored.world_size != parallel_->world_size())
      throw UsageError(out_.string() + " was trained by " + std::to_string(restored.world_size) +
                       " rank(s) (" + it->string() + "), and this resume has WORLD_SIZE=" +
                       std::to_string(parallel_->world_size()) + ": each rank's share of an epoch depends on it; " +
                       "resume with " + std::to_string(restored.world_size) + " rank(s)" +
                       (restored.world_size > 1 ? " (pretext launch --nproc-per-node " +
                                                      std::to_string(restored.world_size) + " -- resume " +
                                                      out_.string() + ")"
                                                : " (pretext resume " + out_.string() + ", without a launcher)"));
    progress.line("pretext: resuming from " + it->string() + " (epoch " + std::to_string(restored.epoch + 1) +
                  ", after step " + std::to_string(restored.step) + ")");
    return restored;
  }
  throw InputError("no readable checkpoint in " + checkpoint_directory(out_).string() +
                   "; start again with pretext run --force");
}

void Job::stop_if_requested(const std::string& where) {
  std::int64_t signal = stop_ != nullptr ? stop_->signal() : 0;
  if (parallel_->distributed()) signal = parallel_->max(signal);  // every rank stops here, or none
  if (signal == 0) return;
  const auto checkpoints = list_checkpoints(out_);
  throw RunInterrupted("interrupted " + where + "; the pretext phase is complete" +
                           (checkpoints.empty() ? std::string() : " in " + checkpoints.back().string()) +
                           "; continue with: pretext resume " + out_.string(),
                       static_cast<int>(signal));
}

}  // namespace pretext
