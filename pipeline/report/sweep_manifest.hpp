// sweep-manifest.toml: what a sweep ran, written by the sweep runner into the
// sweep directory.
//
//   title = "Study: batch size"      # optional
//   metric_mode = "finetuned"        # transfer mode the study charts show; optional
//   [[variants]]
//   study = "batch size"             # one chart per study; optional
//   label = "batch 32"
//   dir = "batch-32"                 # run directory, relative to the sweep directory
//   status = "finished"              # or "failed" / "pending"
//
// Keys the report does not know are ignored, so the runner may record more.
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
};

struct SweepManifest {
  std::string title;
  std::string metric_mode;  // empty: the first mode found
  std::vector<SweepVariant> variants;
};

constexpr const char* kSweepManifestName = "sweep-manifest.toml";
constexpr const char* kDefaultStudy = "variants";

/// Reads `manifest`. Throws InputError naming the file, line and key for
/// anything missing or malformed.
SweepManifest read_sweep_manifest(const std::filesystem::path& manifest);

}  // namespace pretext::report
