// pretext resume, and the signal handling shared with pretext run.
#include <signal.h>
#include <unistd.h>

#include <iostream>

#include "cli/commands.hpp"
#include "cli/interruptible_run.hpp"
#include "common/errors.hpp"
#include "pipeline/artefacts/run_directory.hpp"

namespace pretext::cli {
namespace {

StopToken stop_token;  // the handlers only touch its lock-free atomic

extern "C" void on_stop_signal(int signal) {
  if (stop_token.signal() != 0) _exit(128 + signal);  // a second signal: no more waiting
  stop_token.request(signal);
}

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // file writes in progress carry on; the loop checks the flag
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

}  // namespace

int run_interruptibly(JobRequest request) {
  request.stop = &stop_token;
  Job job(request);
  install_stop_handlers();  // after validation: a signal before this simply ends the process
  auto progress = Progress::to_stderr();
  try {
    job.run(progress);
  } catch (const RunInterrupted& e) {
    std::cerr << "\npretext: " << e.what() << '\n';
    return 128 + e.signal();
  }
  // One line for the job: rank 0 wrote the summary.
  if (job.writes_run_directory()) std::cout << artefacts::RunLayout(job.run_directory()).summary_json().string() << '\n';
  return 0;
}

int resume_command(const Arguments& args) {
  const std::filesystem::path run_dir = args.single("RUN_DIR");
  if (!args.overrides.empty())
    throw UsageError("'pretext resume' takes no --set: a run continues with its own config.toml");
  const artefacts::RunLayout layout(run_dir);
  if (!std::filesystem::is_regular_file(layout.config()))
    throw InputError(run_dir.string() + " holds no run to resume (no config.toml)");
  JobRequest request{layout.config(), {}, run_dir};
  request.resume = true;
  return run_interruptibly(request);
}

}  // namespace pretext::cli
