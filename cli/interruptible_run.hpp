// Runs a Job with SIGINT/SIGTERM turned into a checkpoint and a clean exit.
#pragma once

#include "pipeline/train/job.hpp"

namespace pretext::cli {

/// Installs the signal handlers, builds and runs the job, prints the summary
/// path. A first SIGINT/SIGTERM stops the run after its current step, with a
/// checkpoint (exit 128 + signal: 130, 143); a second one exits at once.
int run_interruptibly(JobRequest request);

/// UsageError when the environment says this is one of several processes
/// (WORLD_SIZE > 1): run and resume do not split the work between ranks yet.
void refuse_several_processes();

}  // namespace pretext::cli
