// Runs a job that is expected to diverge (a NaN or infinite loss or gradient).
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "pipeline/train/progress.hpp"
#include "pipeline/train/job.hpp"
#include "pipeline/train/trainer.hpp"

namespace pretext::testing {

/// Runs `request` until TrainingDiverged and returns its message; when the
/// run finishes instead, a test failure and "".
inline std::string run_until_diverged(const JobRequest& request) {
  Job job(request);
  std::ostringstream log;
  Progress progress(log, false);
  try {
    job.run(progress);
  } catch (const TrainingDiverged& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected TrainingDiverged";
  return {};
}

}  // namespace pretext::testing
