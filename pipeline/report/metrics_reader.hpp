// Reads what a run leaves behind for the reports: metrics.csv (long format,
// one row per phase, epoch and metric) and summary.toml.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

namespace pretext::report {

struct MetricPoint {
  int epoch = 0;
  double value = 0.0;
};

/// Every (phase, metric) series of one run, each sorted by epoch. Phases and
/// metrics keep the order in which they first appear in the file, which is
/// the order the run produced them (pretext first, then the transfer modes
/// in config order).
class RunMetrics {
 public:
  void add(std::string_view phase, std::string_view metric, MetricPoint point);
  void sort_by_epoch();

  /// The series, or nullptr when the run has no such metric.
  [[nodiscard]] const std::vector<MetricPoint>* find(std::string_view phase, std::string_view metric) const;
  [[nodiscard]] std::vector<std::string> phases() const;
  [[nodiscard]] std::vector<std::string> metrics(std::string_view phase) const;
  /// "fixed", "finetuned", ... for the phases named "transfer.<mode>".
  [[nodiscard]] std::vector<std::string> transfer_modes() const;
  [[nodiscard]] bool empty() const { return series_.empty(); }

 private:
  struct Series {
    std::string phase;
    std::string metric;
    std::vector<MetricPoint> points;
  };
  std::vector<Series> series_;  // a run has a few dozen at most: linear lookups are fine
};

/// Parses metrics.csv text; `origin` names the file in errors. Throws
/// InputError naming origin:line and what was expected.
RunMetrics parse_metrics_csv(std::string_view text, const std::string& origin);

/// Reads `csv`. Throws InputError when it is missing or malformed.
RunMetrics read_metrics_csv(const std::filesystem::path& csv);

/// `run_dir`/summary.toml, or nullopt when the run has none (not finished, or
/// written before pretext wrote summary.toml). Throws InputError when it does
/// not parse.
std::optional<toml::table> read_summary(const std::filesystem::path& run_dir);

/// What summary.toml would say about the transfer modes, worked out from the
/// metrics alone (final and best validation accuracy, best epoch), for runs
/// without a summary.
toml::table summary_from_metrics(const RunMetrics& metrics);

}  // namespace pretext::report
