// Line charts as self-contained SVG, drawn the way a paper figure is: title,
// labelled axes with 1-2-5 ticks, a light grid, and a legend beside the plot
// so it never hides data. Colours are the Okabe-Ito palette (safe for
// colour-blind readers) and every series also has its own dash pattern, so
// the chart still reads when printed in grey.
//
// Each series is one <g class="series" data-label="..."> holding one
// <polyline> with one coordinate pair per data point; each legend entry is a
// <g class="legend-entry" data-label="...">. Tests and scripts rely on that.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pretext::report {

struct ChartSeries {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite points are left out
};

struct ChartSpec {
  ChartSpec() = default;
  ChartSpec(std::string title_, std::string x_label_, std::string y_label_)
      : title(std::move(title_)), x_label(std::move(x_label_)), y_label(std::move(y_label_)) {}

  std::string title;
  std::string x_label;  // with its unit, e.g. "epoch"
  std::string y_label;  // with its unit, e.g. "validation accuracy (%)"
  std::vector<ChartSeries> series;
  bool integer_x = true;  // x counts something (epochs): ticks only at whole numbers
  /// Bounds the y axis never goes past, however its ticks round: an accuracy
  /// axis stops at 0 and 100 %. Data outside them widens the axis as usual.
  std::optional<double> y_floor;
  std::optional<double> y_ceiling;
};

/// Axis ticks on a "nice" step (1, 2 or 5 times a power of ten) whose range
/// covers [lo, hi].
struct AxisTicks {
  double lo = 0.0;  // first tick: where the axis starts
  double hi = 1.0;  // last tick: where it ends
  double step = 1.0;
  int decimals = 0;  // digits after the point that show the step exactly
  std::vector<double> values;
};

/// About `target` ticks covering [lo, hi]; `integers` keeps the step whole.
AxisTicks nice_ticks(double lo, double hi, int target, bool integers);

/// The chart as a standalone <svg> element (with its namespace, so the same
/// text is a valid .svg file and can be inlined in HTML). Pure function.
std::string render_svg_chart(const ChartSpec& spec);

}  // namespace pretext::report
