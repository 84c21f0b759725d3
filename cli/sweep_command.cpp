// pretext sweep SWEEP.toml [--base CONFIG] [--out DIR] [--set KEY=VALUE ...] [--jobs N]
#include <iostream>

#include <boost/dll/runtime_symbol_info.hpp>

#include "cli/commands.hpp"
#include "pipeline/sweep/sweep_runner.hpp"

namespace pretext::cli {

int sweep_command(const Arguments& args) {
  sweep::SweepRequest request;
  request.sweep_file = args.single("SWEEP file");
  request.overrides = args.overrides;
  request.out = args.value("out");
  request.base = args.value("base");
  request.jobs = static_cast<int>(args.integer("jobs", 1, 1, 256));
  request.executable = boost::dll::program_location().string();  // this `pretext`, for each variant
  auto progress = Progress::to_stderr();
  const auto outcome = sweep::run_sweep(request, progress);
  progress.line("sweep: " + std::to_string(outcome.finished) + " finished (" + std::to_string(outcome.skipped) +
                " skipped as already done), " + std::to_string(outcome.failed) + " failed");
  std::cout << outcome.report.string() << '\n';
  return outcome.failed == 0 ? 0 : 1;
}

}  // namespace pretext::cli
