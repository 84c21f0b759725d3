// Runs a Job with SIGINT/SIGTERM turned into a checkpoint and a clean exit.
#pragma once

#include "pipeline/train/job.hpp"

namespace pretext::cli {

/// Installs the signal handlers, builds and runs the job, prints the summary
/// path. A first SIGINT/SIGTERM stops the run after its current step, with a
/// checkpoint (exit 128 + signal: 130, 143); a second one exits at once.
int run_interruptibly(JobRequest request);

}  // namespace pretext::cli
