#include "pipeline/report/svg_chart.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string_view>

#include "pipeline/report/markup.hpp"

namespace pretext::report {
namespace {

constexpr double kWidth = 640;
constexpr double kHeight = 380;
constexpr double kPlotTop = 44;               // below the title
constexpr double kPlotBottom = 328;           // above the tick labels and the x label
constexpr double kCharWidth = 6.6;            // average advance of a 12 px sans-serif glyph, for layout
constexpr int kMaxLegendChars = 26;           // longer labels are shortened in the legend (the full one is its <title>)
constexpr std::size_t kMaxMarkedPoints = 30;  // more points than this: the line alone reads better
constexpr const char* kFontStack = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";

// Okabe-Ito, ordered so that neighbouring series differ most; yellow is last
// because it is faint on white.
constexpr std::array<const char*, 8> kColours = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                                 "#E69F00", "#56B4E9", "#000000", "#F0E442"};
// Seven patterns against eight colours: the pairs repeat only after 56 series.
constexpr std::array<const char*, 7> kDashes = {"", "7 3", "2 2.5", "9 3 2 3", "4 4", "1 3", "12 3 3 3 3 3"};

std::string num(double v) { return format_fixed(v, 1); }

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  [[nodiscard]] bool empty() const { return lo > hi; }
};

std::vector<ChartSeries> finite_series(const std::vector<ChartSeries>& in) {
  std::vector<ChartSeries> out;
  for (const auto& series : in) {
    ChartSeries kept{series.label, {}};
    for (const auto& [x, y] : series.points)
      if (std::isfinite(x) && std::isfinite(y)) kept.points.emplace_back(x, y);
    if (!kept.points.empty()) out.push_back(std::move(kept));
  }
  return out;
}

std::string shortened(const std::string& label) {
  // Counts UTF-8 code points, so a multi-byte character is never cut in half.
  std::size_t chars = 0;
  for (std::size_t i = 0; i < label.size(); ++i) {
    if ((static_cast<unsigned char>(label[i]) & 0xC0) == 0x80) continue;
    if (++chars == kMaxLegendChars) {
      std::size_t end = i + 1;
      while (end < label.size() && (static_cast<unsigned char>(label[end]) & 0xC0) == 0x80) ++end;
      return end < label.size() ? label.substr(0, i) + "…" : label;
    }
  }
  return label;
}

std::size_t display_chars(std::string_view text) {
  std::size_t chars = 0;
  for (char c : text)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++chars;
  return chars;
}

std::string dash_attribute(std::size_t index) {
  const char* dash = kDashes[index % kDashes.size()];
  return *dash == '\0' ? std::string() : std::string(" stroke-dasharray=\"") + dash + "\"";
}

/// Drops ticks beyond the bounds (unless the data itself goes there).
void bound_ticks(AxisTicks& ticks, const std::optional<double>& floor, const std::optional<double>& ceiling,
                 double data_lo, double data_hi) {
  const double lo = floor && data_lo >= *floor ? *floor : -std::numeric_limits<double>::infinity();
  const double hi = ceiling && data_hi <= *ceiling ? *ceiling : std::numeric_limits<double>::infinity();
  std::vector<double> kept;
  for (double v : ticks.values)
    if (v >= lo - 1e-9 && v <= hi + 1e-9) kept.push_back(v);
  // Keep the nice axis when the bounds would leave too little of it or cut the data off.
  if (kept.size() < 2 || kept.front() > data_lo || kept.back() < data_hi) return;
  ticks.values = std::move(kept);
  ticks.lo = ticks.values.front();
  ticks.hi = ticks.values.back();
}

}  // namespace

AxisTicks nice_ticks(double lo, double hi, int target, bool integers) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0.0, hi = 1.0;
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo <= 1e-12 * std::max(1.0, std::abs(lo))) {  // one value: give it room on both sides
    const double pad = integers ? 1.0 : (lo == 0.0 ? 1.0 : std::abs(lo) * 0.1);
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(target, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / magnitude;
  double step = (r < 1.5 ? 1.0 : r < 3.0 ? 2.0 : r < 7.0 ? 5.0 : 10.0) * magnitude;
  if (integers) step = std::max(1.0, std::round(step));

  AxisTicks ticks;
  ticks.step = step;
  const double first = std::floor(lo / step + 1e-9);
  const double last = std::ceil(hi / step - 1e-9);
  const auto count = static_cast<long>(std::llround(last - first));
  for (long i = 0; i <= count; ++i) ticks.values.push_back((first + static_cast<double>(i)) * step);
  ticks.lo = ticks.values.front();
  ticks.hi = ticks.values.back();
  ticks.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  return ticks;
}

std::string render_svg_chart(const ChartSpec& spec) {
  const auto series = finite_series(spec.series);
  Range xs, ys;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) xs.add(x), ys.add(y);
  if (xs.empty()) xs = {0.0, 1.0}, ys = {0.0, 1.0};
  const AxisTicks xt = nice_ticks(xs.lo, xs.hi, 7, spec.integer_x);
  AxisTicks yt = nice_ticks(ys.lo, ys.hi, 5, false);
  bound_ticks(yt, spec.y_floor, spec.y_ceiling, ys.lo, ys.hi);

  std::size_t y_label_chars = 0;
  for (double v : yt.values) y_label_chars = std::max(y_label_chars, format_fixed(v, yt.decimals).size());
  std::size_t legend_chars = 0;
  for (const auto& s : series) legend_chars = std::max(legend_chars, display_chars(shortened(s.label)));

  const double legend_width = std::clamp(34.0 + kCharWidth * static_cast<double>(legend_chars), 80.0, 210.0);
  const double left = 30.0 + 6.0 * static_cast<double>(y_label_chars) + 8.0;
  const double right = kWidth - 14.0 - (series.empty() ? 0.0 : legend_width + 12.0);
  const double top = kPlotTop, bottom = kPlotBottom;
  auto px = [&](double x) { return left + (x - xt.lo) / (xt.hi - xt.lo) * (right - left); };
  auto py = [&](double y) { return bottom - (y - yt.lo) / (yt.hi - yt.lo) * (bottom - top); };

  const std::string size = "width=\"" + format_fixed(kWidth, 0) + "\" height=\"" + format_fixed(kHeight, 0) + "\"";
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 " +
                    format_fixed(kWidth, 0) + " " + format_fixed(kHeight, 0) + "\" " + size +
                    " role=\"img\" font-family=\"" + kFontStack + "\" font-size=\"12\" fill=\"#222\">\n";
  svg += "<title>" + xml_escape(spec.title) + "</title>\n";
  svg += "<rect " + size + " fill=\"#ffffff\"/>\n";
  svg += "<text class=\"chart-title\" x=\"" + num(left) + "\" y=\"26\" font-size=\"15\" font-weight=\"600\">" +
         xml_escape(spec.title) + "</text>\n";

  // Grid and ticks first, so the data is drawn over them.
  svg += "<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n";
  for (double v : yt.values)
    svg += "<line x1=\"" + num(left) + "\" x2=\"" + num(right) + "\" y1=\"" + num(py(v)) + "\" y2=\"" + num(py(v)) +
           "\"/>\n";
  for (double v : xt.values)
    svg += "<line x1=\"" + num(px(v)) + "\" x2=\"" + num(px(v)) + "\" y1=\"" + num(top) + "\" y2=\"" + num(bottom) +
           "\"/>\n";
  svg += "</g>\n";
  svg += "<g class=\"axes\" stroke=\"#333\" stroke-width=\"1\">\n";
  svg += "<line x1=\"" + num(left) + "\" x2=\"" + num(right) + "\" y1=\"" + num(bottom) + "\" y2=\"" + num(bottom) +
         "\"/>\n";
  svg +=
      "<line x1=\"" + num(left) + "\" x2=\"" + num(left) + "\" y1=\"" + num(top) + "\" y2=\"" + num(bottom) + "\"/>\n";
  for (double v : yt.values)
    svg += "<line x1=\"" + num(left - 4) + "\" x2=\"" + num(left) + "\" y1=\"" + num(py(v)) + "\" y2=\"" + num(py(v)) +
           "\"/>\n";
  for (double v : xt.values)
    svg += "<line x1=\"" + num(px(v)) + "\" x2=\"" + num(px(v)) + "\" y1=\"" + num(bottom) + "\" y2=\"" +
           num(bottom + 4) + "\"/>\n";
  svg += "</g>\n";
  svg += "<g class=\"tick-labels\" font-size=\"11\" fill=\"#444\">\n";
  for (double v : yt.values)
    svg += "<text x=\"" + num(left - 7) + "\" y=\"" + num(py(v) + 4) + "\" text-anchor=\"end\">" +
           format_fixed(v, yt.decimals) + "</text>\n";
  for (double v : xt.values)
    svg += "<text x=\"" + num(px(v)) + "\" y=\"" + num(bottom + 17) + "\" text-anchor=\"middle\">" +
           format_fixed(v, xt.decimals) + "</text>\n";
  svg += "</g>\n";
  svg += "<text class=\"x-label\" x=\"" + num((left + right) / 2) + "\" y=\"" + num(kHeight - 14) +
         "\" text-anchor=\"middle\">" + xml_escape(spec.x_label) + "</text>\n";
  svg += "<text class=\"y-label\" transform=\"translate(16," + num((top + bottom) / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + xml_escape(spec.y_label) + "</text>\n";

  if (series.empty())
    svg += "<text x=\"" + num((left + right) / 2) + "\" y=\"" + num((top + bottom) / 2) +
           "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n";

  for (std::size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    const std::string colour = kColours[i % kColours.size()];
    svg += "<g class=\"series\" data-label=\"" + xml_escape(s.label) + "\" data-points=\"" +
           std::to_string(s.points.size()) + "\">\n<polyline fill=\"none\" stroke=\"" + colour +
           "\" stroke-width=\"1.8\" stroke-linejoin=\"round\" stroke-linecap=\"round\"" + dash_attribute(i) +
           " points=\"";
    for (std::size_t p = 0; p < s.points.size(); ++p)
      svg += (p ? " " : "") + num(px(s.points[p].first)) + "," + num(py(s.points[p].second));
    svg += "\"/>\n";
    if (s.points.size() <= kMaxMarkedPoints)
      for (const auto& [x, y] : s.points)
        svg += "<circle cx=\"" + num(px(x)) + "\" cy=\"" + num(py(y)) + "\" r=\"2.6\" fill=\"" + colour + "\"/>\n";
    svg += "</g>\n";
  }

  if (!series.empty()) {
    const double legend_x = right + 16;
    const double row = std::min(20.0, (bottom - top) / static_cast<double>(series.size()));
    svg += "<g class=\"legend\">\n";
    for (std::size_t i = 0; i < series.size(); ++i) {
      const auto& s = series[i];
      const std::string colour = kColours[i % kColours.size()];
      const double y = top + 8 + row * static_cast<double>(i);
      svg += "<g class=\"legend-entry\" data-label=\"" + xml_escape(s.label) + "\"><title>" + xml_escape(s.label) +
             "</title>";
      svg += "<line x1=\"" + num(legend_x) + "\" x2=\"" + num(legend_x + 24) + "\" y1=\"" + num(y) + "\" y2=\"" +
             num(y) + "\" stroke=\"" + colour + "\" stroke-width=\"1.8\"" + dash_attribute(i) + "/>";
      if (s.points.size() <= kMaxMarkedPoints)
        svg += "<circle cx=\"" + num(legend_x + 12) + "\" cy=\"" + num(y) + "\" r=\"2.6\" fill=\"" + colour + "\"/>";
      svg += "<text x=\"" + num(legend_x + 30) + "\" y=\"" + num(y + 4) + "\">" + xml_escape(shortened(s.label)) +
             "</text></g>\n";
    }
    svg += "</g>\n";
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace pretext::report
