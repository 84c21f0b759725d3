// Parts shared by the run and sweep reports (internal to pipeline/report).
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "pipeline/report/metrics_reader.hpp"
#include "pipeline/report/svg_chart.hpp"

namespace pretext::report {


/// What the reports need of one run directory.
struct RunData {
  RunMetrics metrics;
  toml::table summary;  // summary.toml, or what the metrics say when there is none
  bool has_summary = false;
};

/// Reads `run_dir`; InputError when metrics.csv is missing or malformed.
RunData load_run(const std::filesystem::path& run_dir);

/// A chart of accuracies in percent per epoch: its axis stays within 0 and 100.
ChartSpec percent_chart(std::string title, std::string y_label);

/// One metric as a chart series; `scale` turns fractions into percent.
ChartSeries series_of(const std::vector<MetricPoint>& points, std::string label, double scale = 1.0);

/// A whole page: doctype, head with the style sheet, `body`.
std::string html_page(const std::string& title, const std::string& body);

/// Writes the chart to <dir>/charts/<stem>.svg and returns it as an inline <figure>.
std::string chart_figure(const ChartSpec& chart, const std::filesystem::path& dir, const std::string& stem);

/// A definition list of (term, already-escaped HTML) pairs.
std::string facts_list(const std::vector<std::pair<std::string, std::string>>& facts);

/// A file-name-safe form of `text`: lower-case letters, digits and dashes.
std::string slug(const std::string& text);

}  // namespace pretext::report
