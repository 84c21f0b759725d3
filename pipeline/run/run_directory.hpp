// The run directory: resolved config, per-epoch metrics, checkpoints and the
// summary. Every file is written atomically (temp file, fsync, rename, fsync
// of the directory), so a crash leaves either the old file or the new one.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

namespace pretext {

/// Writes `contents` to `path` atomically. Throws std::runtime_error naming the file.
void write_file_atomically(const std::filesystem::path& path, std::string_view contents);

/// Lets `write` produce a temporary file, then fsyncs and renames it to `path`.
/// For writers that insist on a path of their own (torch::save).
void commit_file_atomically(const std::filesystem::path& path,
                            const std::function<void(const std::filesystem::path& temporary)>& write);

class RunDirectory {
 public:
  /// Creates `dir` (and parents). Throws std::runtime_error if it cannot.
  explicit RunDirectory(std::filesystem::path dir);

  [[nodiscard]] const std::filesystem::path& path() const { return dir_; }
  [[nodiscard]] std::filesystem::path file(std::string_view name) const { return dir_ / name; }

  /// config.toml: the config as resolved, overrides and defaults applied.
  void write_resolved_config(const std::string& toml_text) const;

  /// One row of metrics.csv (phase, epoch, metric, value). Rows are kept in
  /// memory and the file is rewritten atomically by flush_metrics().
  void add_metric(std::string_view phase, int epoch, std::string_view metric, double value);
  void flush_metrics() const;
  /// The rows so far, and putting them back (a resumed run continues them).
  [[nodiscard]] const std::vector<std::string>& metric_rows() const { return metric_rows_; }
  void restore_metric_rows(std::vector<std::string> rows) { metric_rows_ = std::move(rows); }

  /// summary.json from a TOML table (nested tables become nested objects), and
  /// the same table as summary.toml, for pretext to read back.
  void write_summary(const toml::table& summary) const;

 private:
  std::filesystem::path dir_;
  std::vector<std::string> metric_rows_;
};

}  // namespace pretext
