// pretext-train-bench: training speed and accuracy of each memory format and
// autocast setting, side by side in one run. A benchmark program, not a
// test: see bench/README.md.
//
// Each variant is a real `pretext run` (the Job, its flow graph and plugins)
// of the same config with trainer.memory_format and trainer.autocast set, a
// smaller unlabelled split and a short fixed transfer, so that speed and the
// accuracy it buys are read from the same runs. One JSON object per variant,
// printed once every run has finished.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "bench/bench_support.hpp"
#include "common/errors.hpp"
#include "cli/memory_allocator.hpp"
#include "pipeline/train/progress.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/train/job.hpp"

namespace {

namespace fs = std::filesystem;
using pretext::bench::JsonRow;

struct Variant {
  std::string memory_format;  // trainer.memory_format
  std::string autocast;       // trainer.autocast
};

struct Settings {
  fs::path config = fs::path(PRETEXT_SOURCE_DIR) / "configs" / "study.toml";
  long long unlabelled = 8000;
  long long transfer_epochs = 5;
  long long repeats = 1;
  std::vector<Variant> variants{
      {"contiguous", "none"}, {"channels_last", "none"}, {"contiguous", "bf16"}, {"channels_last", "bf16"}};
  std::vector<std::string> overrides;  // --set, applied to every variant
};

double number_at(const toml::table& summary, const std::string& path) {
  const auto value = summary.at_path(path).value<double>();
  if (!value) throw std::runtime_error("the run's summary has no number at " + path);
  return *value;
}

/// An accuracy the config may not produce (a task without one, evaluation off): -1 then.
double accuracy_at(const toml::table& summary, const std::string& path) {
  return summary.at_path(path).value<double>().value_or(-1.0);
}

/// What one run of a variant measured.
struct Measurement {
  double images_per_second = 0.0;
  double seconds = 0.0;
  long long threads = 0;
  long long batch_size = 0;
  toml::table summary;
};

/// Runs one variant into a fresh directory `out`.
Measurement run_variant(const Settings& settings, const Variant& variant, const fs::path& out) {
  pretext::JobRequest request;
  request.config = settings.config;
  request.overrides = settings.overrides;
  request.overrides.push_back("data.unlabelled=" + std::to_string(settings.unlabelled));
  request.overrides.push_back("pretext.epochs=1");
  request.overrides.push_back("transfer.modes=[\"fixed\"]");
  request.overrides.push_back("transfer.epochs=" + std::to_string(settings.transfer_epochs));
  request.overrides.push_back("trainer.memory_format=\"" + variant.memory_format + "\"");
  request.overrides.push_back("trainer.autocast=\"" + variant.autocast + "\"");
  request.out = out;

  const auto start = std::chrono::steady_clock::now();
  pretext::Job job(request);
  std::ostringstream log;  // the run's own progress lines are not the benchmark's output
  pretext::Progress progress(log, false);
  Measurement m;
  m.summary = job.run(progress);
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.images_per_second = number_at(m.summary, "pretext.images_per_second");
  m.threads = job.options().threads;
  m.batch_size = job.options().pretext.batch_size;
  return m;
}

/// One row per variant: median speed over the repeats, and the accuracies of
/// its first run (the same seed gives the same data order and initialisation).
void print_row(const Settings& settings, const Variant& variant, const std::vector<Measurement>& runs,
               double baseline) {
  std::vector<double> rates;
  std::vector<double> seconds;
  for (const auto& run : runs) {
    rates.push_back(run.images_per_second);
    seconds.push_back(run.seconds);
  }
  const double rate = pretext::bench::median(rates);
  const toml::table& summary = runs.front().summary;
  JsonRow row;
  row.add("case", "train")
      .add("memory_format", variant.memory_format)
      .add("autocast", variant.autocast)
      .add("threads", runs.front().threads)
      .add("batch_size", runs.front().batch_size)
      .add("unlabelled", settings.unlabelled)
      .add("repeats", runs.size())
      .add("images_per_second", rate)
      .add("images_per_second_min", *std::min_element(rates.begin(), rates.end()))
      .add("images_per_second_max", *std::max_element(rates.begin(), rates.end()))
      .add("speedup", rate / baseline)
      .add("pretext_accuracy", accuracy_at(summary, "pretext.final_accuracy"))
      .add("knn_val_accuracy", accuracy_at(summary, "evaluation.knn.val_accuracy"))
      .add("linear_probe_val_accuracy", accuracy_at(summary, "evaluation.linear_probe.val_accuracy"))
      .add("fixed_val_accuracy", accuracy_at(summary, "transfer.fixed.val_accuracy"))
      .add("data_wait_fraction", number_at(summary, "data_wait_fraction"))
      .add("seconds_median", pretext::bench::median(seconds));
  row.print();
}

std::vector<Variant> parse_variants(const std::string& list) {
  std::vector<Variant> out;
  std::istringstream items(list);
  for (std::string item; std::getline(items, item, ',');) {
    const auto slash = item.find('/');
    if (slash == std::string::npos)
      throw std::invalid_argument("--variants: expected FORMAT/AUTOCAST items like channels_last/bf16, found '" +
                                  item + "'");
    Variant variant{item.substr(0, slash), item.substr(slash + 1)};
    if (variant.memory_format != "contiguous" && variant.memory_format != "channels_last")
      throw std::invalid_argument("--variants: expected memory format contiguous or channels_last, found '" +
                                  variant.memory_format + "' in '" + item + "'");
    if (variant.autocast != "none" && variant.autocast != "bf16" && variant.autocast != "fp16")
      throw std::invalid_argument("--variants: expected autocast none, bf16 or fp16, found '" + variant.autocast +
                                  "' in '" + item + "'");
    out.push_back(std::move(variant));
  }
  if (out.empty()) throw std::invalid_argument("--variants: expected at least one FORMAT/AUTOCAST item");
  return out;
}

long long parse_count(const std::string& flag, const std::string& text) {
  try {
    std::size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size() && value > 0) return value;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(flag + ": expected a positive integer, found '" + text + "'");
}

void usage() {
  std::cerr << "usage: pretext-train-bench [--config FILE] [--unlabelled N] [--transfer-epochs N]\n"
               "                           [--repeats R] [--variants LIST] [--set KEY=VALUE ...]\n"
               "  --config FILE         base run config (default: configs/study.toml)\n"
               "  --unlabelled N        unlabelled images for the one pretext epoch (default 8000)\n"
               "  --transfer-epochs N   epochs of the fixed transfer (default 5)\n"
               "  --repeats R           runs per variant, round robin; the median speed is reported (default 1)\n"
               "  --variants LIST       FORMAT/AUTOCAST items; the first is the speedup's baseline\n"
               "                        (default contiguous/none,channels_last/none,contiguous/bf16,\n"
               "                        channels_last/bf16)\n"
               "  --set KEY=VALUE       any config override, for every variant (e.g. threads=1)\n";
}

}  // namespace

int main(int argc, char** argv) {
  pretext::cli::keep_freed_memory_for_reuse();  // as `pretext` itself does
  Settings settings;
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
      const auto value = [&]() -> const std::string& {
        if (i + 1 >= args.size()) throw std::invalid_argument(args[i] + ": expected a value");
        return args[++i];
      };
      if (args[i] == "--config") {
        settings.config = value();
      } else if (args[i] == "--unlabelled") {
        settings.unlabelled = parse_count(args[i], value());
      } else if (args[i] == "--transfer-epochs") {
        settings.transfer_epochs = parse_count(args[i], value());
      } else if (args[i] == "--repeats") {
        settings.repeats = parse_count(args[i], value());
      } else if (args[i] == "--variants") {
        settings.variants = parse_variants(value());
      } else if (args[i] == "--set") {
        settings.overrides.push_back(value());
      } else if (args[i] == "--help" || args[i] == "-h") {
        usage();
        return 0;
      } else {
        throw std::invalid_argument("unknown argument '" + args[i] + "'");
      }
    }
  } catch (const std::invalid_argument& e) {
    std::cerr << "pretext-train-bench: " << e.what() << '\n';
    usage();
    return 2;
  }

  const fs::path scratch = fs::temp_directory_path() / ("pretext-train-bench-" + std::to_string(::getpid()));
  int status = 0;
  try {
    // Round robin, so that a slow spell of a shared machine spreads over
    // every variant instead of landing on one.
    std::vector<std::vector<Measurement>> runs(settings.variants.size());
    for (long long repeat = 0; repeat < settings.repeats; ++repeat) {
      for (std::size_t v = 0; v < settings.variants.size(); ++v) {
        const Variant& variant = settings.variants[v];
        const fs::path out = scratch / (variant.memory_format + "-" + variant.autocast + "-" + std::to_string(repeat));
        runs[v].push_back(run_variant(settings, variant, out));
        fs::remove_all(out);
        std::cerr << "pretext-train-bench: " << variant.memory_format << "/" << variant.autocast << " run "
                  << repeat + 1 << "/" << settings.repeats << ": " << runs[v].back().images_per_second
                  << " images/s\n";
      }
    }
    std::vector<double> first_rates;
    for (const auto& r : runs.front()) first_rates.push_back(r.images_per_second);
    const double baseline = pretext::bench::median(first_rates);
    for (std::size_t v = 0; v < settings.variants.size(); ++v)
      print_row(settings, settings.variants[v], runs[v], baseline);
  } catch (const std::exception& e) {
    std::cerr << "pretext-train-bench: " << e.what() << '\n';
    status = 1;
  }
  std::error_code ignored;
  fs::remove_all(scratch, ignored);
  return status;
}
