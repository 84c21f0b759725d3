// The accuracy tables of the reports. Which accuracies a summary holds is
// found, not assumed: every table of the summary (or table of tables, such
// as transfer.<mode> or evaluation.<method>) with keys ending in "accuracy"
// becomes a group of columns, so a new evaluation shows up without a change
// here. The pretext task's own accuracy is not a downstream result and stays
// in the header.
#pragma once

#include <string>
#include <vector>

#include <toml++/toml.h>

#include "pipeline/report/sweep_manifest.hpp"

namespace pretext::report {

struct ResultColumn {
  std::string key;    // "val_accuracy"
  std::string label;  // "final val"
};

struct ResultGroup {
  std::vector<std::string> path;  // {"transfer", "finetuned"}
  std::string label;              // "transfer: finetuned"
  std::vector<ResultColumn> columns;
};

/// The groups found in any of `summaries`, transfer modes first in
/// `mode_order` (the order the run trained them), then the others by name.
std::vector<ResultGroup> find_result_groups(const std::vector<const toml::table*>& summaries,
                                            const std::vector<std::string>& mode_order);

/// Run report: one row per group, one column per accuracy, plus time.
std::string run_results_table(const toml::table& summary, const std::vector<ResultGroup>& groups);

struct SweepRow {
  std::string label;
  std::string href;  // relative path of the variant's report (escaped when written); empty for none
  VariantStatus status = VariantStatus::pending;
  const toml::table* summary = nullptr;  // null unless finished
};

/// Sweep report: one row per variant, a column group per result group, and
/// the wall time. The best value of each column is set in bold. With
/// `mean_row` (a seeds study, seeds.hpp) a last row gives each column's mean
/// ± standard deviation over the finished variants instead.
std::string sweep_results_table(const std::vector<SweepRow>& rows, const std::vector<ResultGroup>& groups,
                                bool mean_row = false);

}  // namespace pretext::report
