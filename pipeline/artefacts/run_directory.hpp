// The run directory: what `pretext run` writes and everything else reads
// (resume, sample, export, embed, report, sweep). Its file names live here and
// nowhere else. Every file is written atomically (common/atomic_file.hpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

namespace pretext::artefacts {

/// The report page and its charts folder, the same in a run directory and a sweep directory.
inline constexpr const char* kReportFile = "report.html";
inline constexpr const char* kChartsFolder = "charts";

/// The layout of a run directory: one accessor per file. Reads nothing and
/// creates nothing, so it serves readers of finished runs as well as writers.
class RunLayout {
 public:
  explicit RunLayout(std::filesystem::path dir) : dir_(std::move(dir)) {}

  [[nodiscard]] const std::filesystem::path& path() const { return dir_; }

  /// config.toml: the config as resolved, overrides and defaults applied.
  [[nodiscard]] std::filesystem::path config() const { return dir_ / "config.toml"; }
  /// model.toml: the networks' input shape and class count, which come from the data.
  [[nodiscard]] std::filesystem::path network_shape() const { return dir_ / "model.toml"; }
  /// classes.toml: label -> class name, when the data names its classes.
  [[nodiscard]] std::filesystem::path classes() const { return dir_ / "classes.toml"; }
  /// metrics.csv: phase, epoch, metric, value.
  [[nodiscard]] std::filesystem::path metrics() const { return dir_ / "metrics.csv"; }
  /// summary.json, and the same table as summary.toml for pretext to read back.
  /// summary.json is written last: its presence means the run finished.
  [[nodiscard]] std::filesystem::path summary_json() const { return dir_ / "summary.json"; }
  [[nodiscard]] std::filesystem::path summary_toml() const { return dir_ / "summary.toml"; }
  /// pretext.pt: the pretext task's full state; backbone.pt: its backbone alone.
  [[nodiscard]] std::filesystem::path pretext_state() const { return dir_ / "pretext.pt"; }
  [[nodiscard]] std::filesystem::path pretext_backbone() const { return dir_ / "backbone.pt"; }
  /// transfer-<mode>.pt: a transfer mode's backbone and head.
  [[nodiscard]] std::filesystem::path transfer_networks(std::string_view mode) const {
    return dir_ / ("transfer-" + std::string(mode) + ".pt");
  }
  /// samples-epoch-<N>.png: what a generating task drew after epoch N (1-based).
  [[nodiscard]] std::filesystem::path samples(std::int64_t epoch) const {
    return dir_ / ("samples-epoch-" + std::to_string(epoch) + ".png");
  }
  /// checkpoints/: the pretext phase's step checkpoints, for `pretext resume`.
  [[nodiscard]] std::filesystem::path checkpoints() const { return dir_ / "checkpoints"; }
  /// report.html and charts/*.svg (`pretext report`).
  [[nodiscard]] std::filesystem::path report() const { return dir_ / kReportFile; }
  [[nodiscard]] std::filesystem::path charts() const { return dir_ / kChartsFolder; }

  /// Whether a run has started here (config.toml or checkpoints exist) and
  /// whether it finished (summary.json exists).
  [[nodiscard]] bool holds_run() const;
  [[nodiscard]] bool finished() const;

 private:
  std::filesystem::path dir_;
};

/// The writer's side: creates the directory, keeps metrics rows, writes the summary.
class RunDirectory : public RunLayout {
 public:
  /// Creates `dir` (and parents). Throws std::runtime_error if it cannot.
  explicit RunDirectory(std::filesystem::path dir);
  /// A directory this process reads but never writes: a data-parallel rank
  /// other than 0 keeps its metrics rows (for its checkpoint state) and
  /// writes nothing. Nothing is created.
  struct ReadOnly {};
  RunDirectory(std::filesystem::path dir, ReadOnly /*unused*/);

  /// False for a ReadOnly directory: callers writing files of their own
  /// (checkpoints, networks) ask this.
  [[nodiscard]] bool writes() const { return writes_; }

  /// Writes config.toml.
  void write_resolved_config(const std::string& toml_text) const;

  /// One row of metrics.csv (phase, epoch, metric, value). Rows are kept in
  /// memory and the file is rewritten atomically by flush_metrics().
  void add_metric(std::string_view phase, int epoch, std::string_view metric, double value);
  void flush_metrics() const;
  /// The rows so far, and putting them back (a resumed run continues them).
  [[nodiscard]] const std::vector<std::string>& metric_rows() const { return metric_rows_; }
  void restore_metric_rows(std::vector<std::string> rows) { metric_rows_ = std::move(rows); }

  /// summary.json from a TOML table (nested tables become nested objects), and
  /// the same table as summary.toml.
  void write_summary(const toml::table& summary) const;

 private:
  std::vector<std::string> metric_rows_;
  bool writes_ = true;
};

}  // namespace pretext::artefacts
