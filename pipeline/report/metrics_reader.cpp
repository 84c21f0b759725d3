#include "pipeline/report/metrics_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/errors.hpp"
#include "pipeline/artefacts/run_directory.hpp"

namespace pretext::report {
namespace {

constexpr std::string_view kHeader = "phase,epoch,metric,value";
constexpr std::string_view kTransferPrefix = "transfer.";

std::vector<std::string_view> split_fields(std::string_view row) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = row.find(',', start);
    fields.push_back(row.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) return fields;
    start = comma + 1;
  }
}

[[noreturn]] void fail(const std::string& origin, std::size_t line, const std::string& what) {
  throw InputError(origin + ":" + std::to_string(line) + ": " + what);
}

int parse_epoch(std::string_view text, const std::string& origin, std::size_t line) {
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  const long epoch = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || end != s.c_str() + s.size() || errno != 0 || epoch < 0 || epoch > 1000000000)
    fail(origin, line, "epoch '" + s + "' is not a non-negative integer");
  return static_cast<int>(epoch);
}

double parse_value(std::string_view text, const std::string& origin, std::size_t line) {
  const std::string s(text);
  char* end = nullptr;
  const double value = std::strtod(s.c_str(), &end);
  // strtod accepts "nan" and "inf": a diverged loss is a value the run really wrote.
  if (s.empty() || end != s.c_str() + s.size()) fail(origin, line, "value '" + s + "' is not a number");
  return value;
}

}  // namespace

void RunMetrics::add(std::string_view phase, std::string_view metric, MetricPoint point) {
  for (auto& series : series_) {
    if (series.phase == phase && series.metric == metric) {
      series.points.push_back(point);
      return;
    }
  }
  series_.push_back(Series{std::string(phase), std::string(metric), {point}});
}

void RunMetrics::sort_by_epoch() {
  for (auto& series : series_)
    std::stable_sort(series.points.begin(), series.points.end(),
                     [](const MetricPoint& a, const MetricPoint& b) { return a.epoch < b.epoch; });
}

const std::vector<MetricPoint>* RunMetrics::find(std::string_view phase, std::string_view metric) const {
  for (const auto& series : series_)
    if (series.phase == phase && series.metric == metric) return &series.points;
  return nullptr;
}

std::vector<std::string> RunMetrics::phases() const {
  std::vector<std::string> out;
  for (const auto& series : series_)
    if (std::find(out.begin(), out.end(), series.phase) == out.end()) out.push_back(series.phase);
  return out;
}

std::vector<std::string> RunMetrics::metrics(std::string_view phase) const {
  std::vector<std::string> out;
  for (const auto& series : series_)
    if (series.phase == phase) out.push_back(series.metric);
  return out;
}

std::vector<std::string> RunMetrics::transfer_modes() const {
  std::vector<std::string> out;
  for (const auto& phase : phases())
    if (phase.size() > kTransferPrefix.size() && phase.compare(0, kTransferPrefix.size(), kTransferPrefix) == 0)
      out.push_back(phase.substr(kTransferPrefix.size()));
  return out;
}

RunMetrics parse_metrics_csv(std::string_view text, const std::string& origin) {
  RunMetrics metrics;
  std::size_t line = 0;
  std::size_t start = 0;
  bool header_seen = false;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view row = text.substr(start, end - start);
    start = end + 1;
    ++line;
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    if (!header_seen) {
      if (row != kHeader)
        fail(origin, line, "expected the header '" + std::string(kHeader) + "', found '" + std::string(row) + "'");
      header_seen = true;
      continue;
    }
    if (row.empty()) continue;
    const auto fields = split_fields(row);
    if (fields.size() != 4)
      fail(origin, line,
           "expected 4 comma-separated fields (phase,epoch,metric,value), found " + std::to_string(fields.size()));
    if (fields[0].empty()) fail(origin, line, "the phase is empty");
    if (fields[2].empty()) fail(origin, line, "the metric name is empty");
    metrics.add(fields[0], fields[2],
                MetricPoint{parse_epoch(fields[1], origin, line), parse_value(fields[3], origin, line)});
  }
  if (!header_seen) fail(origin, 1, "the file is empty; expected the header '" + std::string(kHeader) + "'");
  metrics.sort_by_epoch();
  return metrics;
}

RunMetrics read_metrics_csv(const std::filesystem::path& csv) {
  std::ifstream in(csv, std::ios::binary);
  if (!in) throw InputError(csv.string() + ": cannot read (expected the metrics.csv of a run)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_metrics_csv(text.str(), csv.string());
}

std::optional<toml::table> read_summary(const std::filesystem::path& run_dir) {
  const auto path = artefacts::RunLayout(run_dir).summary_toml();
  if (!std::filesystem::exists(path)) return std::nullopt;
  try {
    return toml::parse_file(path.string());
  } catch (const toml::parse_error& error) {
    const auto& where = error.source().begin;
    throw InputError(path.string() + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) + ": " +
                     std::string(error.description()));
  }
}

toml::table summary_from_metrics(const RunMetrics& metrics) {
  toml::table transfer;
  for (const auto& mode : metrics.transfer_modes()) {
    const auto* val = metrics.find(std::string(kTransferPrefix) + mode, "val_accuracy");
    if (val == nullptr || val->empty()) continue;
    const MetricPoint* best = &val->front();
    for (const auto& point : *val)
      if (point.value > best->value) best = &point;
    toml::table result;
    result.insert("val_accuracy", val->back().value);
    result.insert("best_val_accuracy", best->value);
    result.insert("best_epoch", static_cast<std::int64_t>(best->epoch));
    transfer.insert(mode, std::move(result));
  }
  toml::table summary;
  summary.insert("transfer", std::move(transfer));
  return summary;
}

}  // namespace pretext::report
