// sweep-manifest.toml: what a sweep ran, written by the sweep runner into the
// sweep directory and read by the sweep report. Its writer and reader are both
// here, so the format has one home.
//
//   title = "Study: batch size"      # optional
//   metric_mode = "finetuned"        # transfer mode the study charts show; optional
//   [[variants]]
//   study = "batch size"             # one chart per study; optional
//   label = "batch 32"
//   dir = "batch-32"                 # run directory, relative to the sweep directory
//   status = "finished"              # or "failed" / "pending"
//   overrides = ["model.dropout=0.0"] # the variant's --set overrides, in order
//   same_run_as = "baseline"         # shares an identical earlier variant's run; optional
//   exit_code = 1                    # failed variants only
//   seconds = 312.5                  # once it ran
//
// Besides the variants: sweep_file and base, the absolute paths it ran from.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace pretext::report {

enum class VariantStatus { finished, failed, pending };

const char* to_string(VariantStatus status);

struct SweepVariant {
  std::string study;
  std::string label;
  std::filesystem::path dir;  // relative to the sweep directory
  VariantStatus status = VariantStatus::pending;
  std::vector<std::string> overrides;
  std::string same_run_as;  // empty: its own run
  int exit_code = 0;        // recorded for failed variants
  double seconds = 0.0;     // 0: not run in this sweep
};

struct SweepManifest {
  std::string title;
  std::string metric_mode;  // empty: the first mode found
  std::filesystem::path sweep_file;
  std::filesystem::path base;
  std::vector<SweepVariant> variants;
};

constexpr const char* kSweepManifestName = "sweep-manifest.toml";
constexpr const char* kDefaultStudy = "variants";

/// Reads `manifest`. Throws InputError naming the file, line and key for
/// anything missing or malformed.
SweepManifest read_sweep_manifest(const std::filesystem::path& manifest);

/// Writes `sweep` to `manifest` atomically.
void write_sweep_manifest(const std::filesystem::path& manifest, const SweepManifest& sweep);

}  // namespace pretext::report
