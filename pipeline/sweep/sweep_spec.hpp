// A sweep file: a base config and the variants to run from it, each a set of
// key overrides with a label, grouped into studies (one chart per study).
//
//   title = "Batch size"                       # optional
//   base = "../fashion-base.toml"              # relative to the sweep file
//   chart_mode = "finetuned"                   # transfer mode the charts show; optional
//   set = { "pretext.epochs" = 1 }             # overrides for every variant; optional
//
//   [[studies]]
//   name = "batch size"
//   variants = [
//     { label = "batch 32", set = { "transfer.batch_size" = 32 } },
//     { label = "batch 64", set = { "transfer.batch_size" = 64 } },
//   ]
//
//   [[studies]]
//   name = "lr x dropout"                      # a grid: every combination
//   grid = { "transfer.lr" = [0.001, 0.0005], "model.dropout" = [0.0, 0.3] }
//
// `[[variants]]` at the top level is a sweep of one study. Keys inside `set`
// may be dotted strings ("transfer.lr") or nested tables (transfer = { lr = ... });
// a value is anything a config key takes, arrays and inline tables included.
// Torch-free: parsing and expansion only; sweep_runner.hpp validates and runs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace pretext::sweep {

struct Variant {
  std::string study;
  std::string label;
  std::string slug;                    // run directory name inside the sweep directory
  std::vector<std::string> overrides;  // "dotted.key=<TOML value>", as for --set
  std::string where;                   // "FILE:LINE:COL" of its definition, for errors
};

struct SweepSpec {
  std::filesystem::path file;
  std::filesystem::path base;          // absolute or relative to the working directory
  std::string title;
  std::string chart_mode;              // empty: the report picks the first mode
  std::vector<std::string> common;     // the sweep's own `set`, before each variant's
  std::vector<Variant> variants;
};

/// Parses and expands `file`. Throws ConfigError "FILE:LINE:COL: key: expected
/// ..., found ..." for anything malformed: a missing base, an empty study, a
/// grid axis that is not a non-empty array, a duplicate label (or two labels
/// with the same slug), an unknown key.
SweepSpec load_sweep_spec(const std::filesystem::path& file);
SweepSpec parse_sweep_spec(const std::string& text, const std::filesystem::path& file);

/// "batch 32 (lr=0.001)" -> "batch-32-lr-0.001": lower case, runs of
/// anything but [a-z0-9.] become one '-'.
std::string slugify(const std::string& label);

}  // namespace pretext::sweep
