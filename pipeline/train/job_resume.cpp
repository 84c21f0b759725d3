// The parts of Job that make a run safe to interrupt and continue: refusing
// to overwrite a run, restoring the newest readable checkpoint, and stopping
// between phases on request.
#include <filesystem>

#include "pipeline/errors.hpp"
#include "pipeline/report/report_page.hpp"
#include "pipeline/train/job.hpp"

namespace pretext {

namespace fs = std::filesystem;

void Job::prepare_run_directory(Progress& progress) const {
  std::error_code ec;
  const bool holds_run = fs::exists(out_ / "config.toml", ec) || fs::exists(checkpoint_directory(out_), ec);
  if (resume_) {
    if (!fs::exists(out_ / "config.toml", ec))
      throw InputError(out_.string() + " holds no run to resume (no config.toml)");
    // Writes cut short (kill -9, a second signal, a power cut)
    // leave hidden temporaries beside their files; their writers are gone.
    std::size_t stale = 0;
    for (const auto& dir : {out_, checkpoint_directory(out_), out_ / report::kChartsDir})
      stale += remove_stale_temporaries(dir);
    if (stale > 0)
      progress.line("pretext: removed " + std::to_string(stale) + " temporary file(s) left by an interrupted write");
    return;
  }
  if (!holds_run) return;
  if (!force_)
    throw UsageError(out_.string() + " already holds a run; continue it with `pretext resume " + out_.string() +
                     "`, or pass --force to clear it and start again");
  progress.line("pretext: --force: clearing " + out_.string());
  fs::remove_all(out_);
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
      restored = read_checkpoint(*it, *task_, compute_.device);
    } catch (const std::exception& e) {
      progress.line("pretext: warning: skipping unreadable checkpoint " + it->string() + ": " + e.what());
      continue;
    }
    if (restored.config_hash != config_hash_)
      throw InputError(out_.string() + "/config.toml differs from the config that wrote " + it->string() +
                       " (config hash " + config_hash_ + ", checkpoint's " + restored.config_hash +
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
