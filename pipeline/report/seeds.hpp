// Results over seeds: a study whose variants differ only in `seed` is one
// experiment repeated, and the sweep report gives it a row of mean ± standard
// deviation per column beside the runs themselves. Accuracy on 2,000
// validation images has a standard error near 0.85 points, so a claim that
// one setting is better needs this row, not one run.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <toml++/toml.h>

namespace pretext::report {

/// The mean and the sample standard deviation (n − 1 in the denominator;
/// 0 for a single value) of `values`.
struct MeanSd {
  double mean = 0.0;
  double sd = 0.0;
  std::size_t n = 0;
};
MeanSd mean_sd(const std::vector<double>& values);

/// "83.22 ± 0.96": a fraction's mean and sd as percentage points.
std::string format_mean_sd_percent(const MeanSd& stats);

/// Whether a study's variants are the same experiment under different seeds:
/// at least two variants, each with a `seed=` override, and the same
/// overrides otherwise (in order).
bool is_seeds_study(const std::vector<std::vector<std::string>>& overrides_per_variant);

/// A finished run of a seeds study: its label and the config it ran with.
struct SeedRun {
  std::string label;
  std::filesystem::path config_file;  // its config.toml, for messages
  toml::table config;
};

/// Refuses runs that differ in anything but `seed` and the thread counts
/// (`threads`, `pipeline.threads`, which `--jobs` splits without changing the
/// experiment): InputError naming both runs, the first key that differs and
/// both values.
void check_differ_only_in_seed(const std::vector<SeedRun>& runs);

}  // namespace pretext::report
