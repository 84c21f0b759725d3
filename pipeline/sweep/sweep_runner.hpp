// `pretext sweep`: runs every variant of a sweep file as its own `pretext run`
// into SWEEP_DIR/<variant>, then writes SWEEP_DIR/report.html.
//
//  * Every variant's config is validated (plugins included) before anything
//    runs, so a typo in the 9th variant is found in a second, not an hour.
//  * Resumable: a variant whose run finished (summary.json) is skipped, one
//    that was interrupted is cleared and restarted, and a finished one whose
//    config has changed since is an error rather than a stale result.
//  * A variant whose config is identical to an earlier one's (a baseline that
//    several studies share) shares that run instead of repeating it.
//  * --jobs N runs N variants side by side, each a child process with the
//    machine's threads split between them.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/train/progress.hpp"
#include "pipeline/sweep/sweep_spec.hpp"

namespace pretext::sweep {

struct SweepRequest {
  std::filesystem::path sweep_file;
  std::filesystem::path base;          // --base: replaces the sweep file's base config; empty: keep it
  std::vector<std::string> overrides;  // --set: applied to every variant, last
  std::filesystem::path out;           // empty: runs/sweep-<file stem>[-<base stem> with --base]
  int jobs = 1;
  std::filesystem::path executable;    // the `pretext` binary that runs each variant
  int hardware_threads = 0;            // 0: std::thread::hardware_concurrency()
};

struct SweepOutcome {
  std::filesystem::path directory;
  std::filesystem::path report;
  // Counted in distinct runs (variants that share a run count once).
  int finished = 0;  // including those skipped as already finished
  int skipped = 0;
  int failed = 0;
};

/// The overrides one variant runs with, in order: the sweep's `set`, the
/// study's, the variant's, the thread split for --jobs, the command line's.
std::vector<std::string> variant_overrides(const SweepSpec& spec, const Variant& variant,
                                           const SweepRequest& request);

/// Parses the sweep file and validates every variant's config, plugins
/// included, without running anything. Returns the number of variants.
std::size_t validate_sweep(const SweepRequest& request);

SweepOutcome run_sweep(const SweepRequest& request, Progress& progress);

}  // namespace pretext::sweep
