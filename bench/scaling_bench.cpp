// pretext-scaling-bench: one process with T threads against T processes
// (`pretext launch`) with one thread each, on the same host and config, side
// by side: pretext images/s, and from the data-parallel runs the all-reduce
// time and gradient bytes per step. A benchmark program, not a test: see
// bench/README.md. No figure is asserted.
//
//   pretext-scaling-bench [--processes N] [--rounds R] [--unlabelled U] [--set KEY=VALUE ...]
//
// Each round runs both cases, alternating which goes first, so a machine
// that speeds up or slows down during the benchmark biases neither. Every
// run is a real `pretext run` of configs/study.toml with one pretext
// epoch on U unlabelled images and a one-epoch fixed transfer.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <toml++/toml.h>

#include "bench/bench_support.hpp"

namespace {

namespace fs = std::filesystem;
using pretext::bench::JsonRow;

struct Settings {
  int processes = 2;
  int rounds = 3;
  long long unlabelled = 8000;
  std::vector<std::string> overrides;
};

struct Run {
  double images_per_second = 0.0;
  double wall_seconds = 0.0;
  double allreduce_ms = -1.0;    // per step; -1 for one process
  double gradient_bytes = -1.0;  // per step
};

std::string quoted(const std::string& text) { return "'" + text + "'"; }

Run run_case(const Settings& settings, bool data_parallel, const fs::path& out) {
  const int threads_each = data_parallel ? 1 : settings.processes;
  std::string command = quoted(PRETEXT_BINARY) + " ";
  if (data_parallel) command += "launch --nproc-per-node " + std::to_string(settings.processes) + " -- ";
  command += "run " + quoted(std::string(PRETEXT_SOURCE_DIR) + "/configs/study.toml") + " --out " +
             quoted(out.string()) + " --force";
  std::vector<std::string> sets = {"threads=" + std::to_string(threads_each),
                                   "pipeline.threads=1",
                                   "data.unlabelled=" + std::to_string(settings.unlabelled),
                                   "pretext.epochs=1",
                                   "transfer.modes=[\"fixed\"]",
                                   "transfer.epochs=1",
                                   "evaluation.knn=false",
                                   "evaluation.linear_probe=false"};
  sets.insert(sets.end(), settings.overrides.begin(), settings.overrides.end());
  for (const auto& s : sets) command += " --set " + quoted(s);
  command += " > " + quoted((out.string() + ".log")) + " 2>&1";
  if (std::system(command.c_str()) != 0)
    throw std::runtime_error("the run failed: " + command + " (its output is in " + out.string() + ".log)");
  const toml::table summary = toml::parse_file((out / "summary.toml").string());
  Run run;
  run.images_per_second = summary.at_path("pretext.images_per_second").value_or(0.0);
  run.wall_seconds = summary.at_path("wall_seconds").value_or(0.0);
  if (data_parallel) {
    run.allreduce_ms = summary.at_path("distributed.pretext_allreduce_ms_per_call").value_or(-1.0);
    run.gradient_bytes = summary.at_path("distributed.pretext_gradient_bytes_per_call").value_or(-1.0);
  }
  return run;
}

void print_row(const Settings& settings, bool data_parallel, const std::vector<Run>& runs, double baseline) {
  std::vector<double> rates;
  std::vector<double> allreduce;
  for (const auto& r : runs) {
    rates.push_back(r.images_per_second);
    allreduce.push_back(r.allreduce_ms);
  }
  const double rate = pretext::bench::median(rates);
  JsonRow row;
  row.add("case", data_parallel ? "processes" : "threads")
      .add("processes", data_parallel ? settings.processes : 1)
      .add("threads_per_process", data_parallel ? 1 : settings.processes)
      .add("rounds", runs.size())
      .add("images_per_second", rate)
      .add("images_per_second_min", *std::min_element(rates.begin(), rates.end()))
      .add("images_per_second_max", *std::max_element(rates.begin(), rates.end()))
      .add("ratio_to_threads", rate / baseline)
      .add("allreduce_ms_per_step", pretext::bench::median(allreduce))
      .add("gradient_bytes_per_step", runs.front().gradient_bytes)
      .add("wall_seconds_first", runs.front().wall_seconds);
  row.print();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Settings settings;
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      const auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--processes") settings.processes = std::stoi(value());
      else if (arg == "--rounds") settings.rounds = std::stoi(value());
      else if (arg == "--unlabelled") settings.unlabelled = std::stoll(value());
      else if (arg == "--set") settings.overrides.push_back(value());
      else throw std::invalid_argument("unknown argument " + arg + " (see the comment at the top of scaling_bench.cpp)");
    }
    if (settings.processes < 2 || settings.rounds < 1)
      throw std::invalid_argument("--processes must be at least 2 and --rounds at least 1");
    const fs::path work = fs::temp_directory_path() / ("pretext-scaling-bench-" + std::to_string(::getpid()));
    fs::create_directories(work);
    std::vector<Run> threads;
    std::vector<Run> processes;
    for (int round = 0; round < settings.rounds; ++round) {
      const bool threads_first = round % 2 == 0;
      for (const bool data_parallel : {!threads_first, threads_first}) {
        const fs::path out = work / ((data_parallel ? "processes-" : "threads-") + std::to_string(round));
        (data_parallel ? processes : threads).push_back(run_case(settings, data_parallel, out));
        std::cerr << "round " << round + 1 << '/' << settings.rounds << ' '
                  << (data_parallel ? "processes" : "threads") << ": "
                  << (data_parallel ? processes : threads).back().images_per_second << " img/s\n";
      }
    }
    std::vector<double> baseline_rates;
    for (const auto& r : threads) baseline_rates.push_back(r.images_per_second);
    const double baseline = pretext::bench::median(baseline_rates);
    print_row(settings, false, threads, baseline);
    print_row(settings, true, processes, baseline);
    fs::remove_all(work);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "pretext-scaling-bench: " << e.what() << '\n';
    return 1;
  }
}
