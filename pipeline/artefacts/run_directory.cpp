#include "pipeline/artefacts/run_directory.hpp"

#include <sstream>
#include <stdexcept>
#include <system_error>

#include "common/atomic_file.hpp"

namespace pretext::artefacts {

bool RunLayout::holds_run() const {
  std::error_code ec;
  return std::filesystem::exists(config(), ec) || std::filesystem::exists(checkpoints(), ec);
}

bool RunLayout::finished() const {
  std::error_code ec;
  return std::filesystem::exists(summary_json(), ec);
}

RunDirectory::RunDirectory(std::filesystem::path dir) : RunLayout(std::move(dir)) {
  std::error_code ec;
  std::filesystem::create_directories(path(), ec);
  if (ec) throw std::runtime_error("cannot create run directory " + path().string() + ": " + ec.message());
}

RunDirectory::RunDirectory(std::filesystem::path dir, ReadOnly /*unused*/)
    : RunLayout(std::move(dir)), writes_(false) {}

void RunDirectory::write_resolved_config(const std::string& toml_text) const {
  if (!writes_) return;
  write_file_atomically(
      config(), "# Resolved by pretext: the config as run, defaults and --set overrides applied.\n" + toml_text + "\n");
}

void RunDirectory::add_metric(std::string_view phase, int epoch, std::string_view metric, double value) {
  std::ostringstream row;
  row.precision(9);
  row << phase << ',' << epoch << ',' << metric << ',' << value;
  metric_rows_.push_back(row.str());
}

void RunDirectory::flush_metrics() const {
  if (!writes_) return;
  std::string csv = "phase,epoch,metric,value\n";
  for (const auto& row : metric_rows_) csv += row + '\n';
  write_file_atomically(metrics(), csv);
}

void RunDirectory::write_summary(const toml::table& summary) const {
  if (!writes_) return;
  std::ostringstream json;
  json << toml::json_formatter{summary} << '\n';
  write_file_atomically(summary_json(), json.str());
  // The same table as TOML, which pretext itself can read back (pretext report).
  std::ostringstream toml_text;
  toml_text << toml::toml_formatter{summary} << '\n';
  write_file_atomically(summary_toml(), toml_text.str());
}

}  // namespace pretext::artefacts
