#include "pipeline/report/report_page.hpp"

#include <cctype>

#include "common/atomic_file.hpp"
#include "common/errors.hpp"
#include "pipeline/report/markup.hpp"
#include "pipeline/artefacts/run_directory.hpp"

namespace pretext::report {
namespace {

// Booktabs-like tables, charts two to a row on a wide screen. No '<' or '&'
// in here: the page must also parse as XML.
constexpr const char* kStyle = R"(
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #222; background: #fff; max-width: 1320px; margin: 2rem auto; padding: 0 1.5rem; line-height: 1.45; }
h1 { font-size: 1.45rem; margin: 0 0 0.2rem; }
h2 { font-size: 1.1rem; margin: 2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 1px solid #ddd; }
code, .path { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.88rem; }
.path { color: #555; word-break: break-all; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1.2rem; margin: 1rem 0; }
dl.facts dt { color: #666; }
dl.facts dd { margin: 0; }
table.results { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 0.92rem; margin: 0.6rem 0;
                border-top: 2px solid #333; border-bottom: 2px solid #333; }
table.results th, table.results td { padding: 0.28rem 0.65rem; text-align: right; white-space: nowrap; }
table.results .epoch { color: #777; font-size: 0.8em; }
table.results.sweep { font-size: 0.82rem; }
table.results.sweep th, table.results.sweep td { padding: 0.22rem 0.42rem; }
table.results.sweep th.group { white-space: normal; }  /* long group names wrap, not widen their columns */
.table-scroll { overflow-x: auto; }
table.results thead th { font-weight: 600; vertical-align: bottom; }
table.results thead th:first-child { text-align: left; }
table.results thead tr:last-child th { border-bottom: 1px solid #333; }
table.results th.group { border-bottom: 1px solid #999; text-align: center; }
table.results th[scope=row] { text-align: left; font-weight: normal; }
table.results .group-start { border-left: 1px solid #e2e2e2; }
table.results tbody tr:nth-child(even) { background: #f7f7f7; }
tr.failed td.status { color: #b3261e; font-weight: 600; }
tr.pending td.status { color: #777; font-style: italic; }
tr.failed th, tr.pending th { color: #666; }
td.status { text-align: left; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 1.2rem; }
figure { margin: 0; }
figure svg { width: 100%; height: auto; display: block; border: 1px solid #eee; }
figcaption { font-size: 0.78rem; color: #777; margin-top: 0.15rem; text-align: right; }
.note { color: #666; font-size: 0.9rem; }
footer { margin-top: 3rem; }
a { color: #0b57d0; }
)";

}  // namespace

RunData load_run(const std::filesystem::path& run_dir) {
  const auto csv = artefacts::RunLayout(run_dir).metrics();
  if (!std::filesystem::is_regular_file(csv))
    throw InputError(run_dir.string() + ": no metrics.csv (expected a run directory written by pretext run)");
  RunData run;
  run.metrics = read_metrics_csv(csv);
  if (auto summary = read_summary(run_dir)) {
    run.summary = std::move(*summary);
    run.has_summary = true;
  } else {
    run.summary = summary_from_metrics(run.metrics);
  }
  return run;
}

ChartSpec percent_chart(std::string title, std::string y_label) {
  ChartSpec chart(std::move(title), "epoch", std::move(y_label));
  chart.y_floor = 0.0;
  chart.y_ceiling = 100.0;
  return chart;
}

ChartSeries series_of(const std::vector<MetricPoint>& points, std::string label, double scale) {
  ChartSeries series{std::move(label), {}};
  for (const auto& point : points) series.points.emplace_back(point.epoch, point.value * scale);
  return series;
}

std::string html_page(const std::string& title, const std::string& body) {
  return "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
         "<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
         "<title>" +
         xml_escape(title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n" + body +
         "<footer><p class=\"note\">Written by <code>pretext report</code>. Accuracies are on the held-out "
         "validation and test images, in percent.</p></footer>\n</body>\n</html>\n";
}

std::string chart_figure(const ChartSpec& chart, const std::filesystem::path& dir, const std::string& stem) {
  const std::string svg = render_svg_chart(chart);
  const auto charts = dir / artefacts::kChartsFolder;
  std::error_code ec;
  std::filesystem::create_directories(charts, ec);
  if (ec) throw std::runtime_error("cannot create " + charts.string() + ": " + ec.message());
  write_file_atomically(charts / (stem + ".svg"), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + svg);
  const std::string href = std::string(artefacts::kChartsFolder) + "/" + stem + ".svg";
  return "<figure class=\"chart\">\n" + svg + "<figcaption><a href=\"" + href_escape(href) + "\">" + xml_escape(stem) +
         ".svg</a></figcaption>\n</figure>\n";
}

std::string facts_list(const std::vector<std::pair<std::string, std::string>>& facts) {
  std::string html = "<dl class=\"facts\">\n";
  for (const auto& [term, value] : facts) html += "<dt>" + xml_escape(term) + "</dt><dd>" + value + "</dd>\n";
  return html + "</dl>\n";
}

std::string slug(const std::string& text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) && u < 0x80) {
      out += static_cast<char>(std::tolower(u));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

}  // namespace pretext::report
