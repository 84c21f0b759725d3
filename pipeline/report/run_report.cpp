// RUN_DIR/report.html: what one run did, at a glance.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "common/atomic_file.hpp"
#include "pipeline/report/html_report.hpp"
#include "pipeline/report/markup.hpp"
#include "pipeline/report/report_page.hpp"
#include "pipeline/report/results_table.hpp"
#include "pipeline/artefacts/run_directory.hpp"

namespace pretext::report {
namespace {

constexpr double kPercent = 100.0;
constexpr const char* kPretext = "pretext";

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Throughput and data wait are reported in the header; they are not curves anyone reads for learning.
bool is_bookkeeping(const std::string& metric) {
  return metric == "images_per_second" || metric == "data_wait_fraction";
}

/// "rotation on conv4", from config.toml; empty when it cannot be read (it is decoration only).
std::string task_description(const std::filesystem::path& run_dir) {
  const auto path = artefacts::RunLayout(run_dir).config();
  if (!std::filesystem::is_regular_file(path)) return {};
  try {
    const toml::table config = toml::parse_file(path.string());
    const auto task = config.at_path("pretext.plugin").value<std::string>();
    const auto model = config.at_path("model.plugin").value<std::string>();
    if (!task) return {};
    return *task + (model ? " on " + *model : "");
  } catch (const toml::parse_error&) {
    return {};
  }
}

std::vector<std::pair<std::string, std::string>> run_facts(const std::filesystem::path& run_dir, const RunData& run) {
  const toml::table& s = run.summary;
  std::vector<std::pair<std::string, std::string>> facts;
  facts.emplace_back("directory", "<span class=\"path\">" + xml_escape(run_dir.string()) + "</span>");
  if (const auto task = task_description(run_dir); !task.empty()) facts.emplace_back("pretext task", xml_escape(task));
  if (const auto seed = s["seed"].value<std::int64_t>()) facts.emplace_back("seed", std::to_string(*seed));
  if (const auto threads = s["threads"].value<std::int64_t>()) facts.emplace_back("threads", std::to_string(*threads));
  if (const auto wall = s["wall_seconds"].value<double>()) facts.emplace_back("wall time", format_duration(*wall));

  if (run.metrics.find(kPretext, "loss") == nullptr) {
    facts.emplace_back("pretext training", "none (no pretext epochs in this run)");
  } else if (const auto* p = s["pretext"].as_table()) {
    std::string text;
    if (const auto loss = (*p)["final_loss"].value<double>()) text += "final loss " + format_fixed(*loss, 4);
    if (const auto accuracy = (*p)["final_accuracy"].value<double>())
      text += ", accuracy " + format_percent(*accuracy) + " %";
    if (const auto rate = (*p)["images_per_second"].value<double>())
      text += ", " + format_fixed(*rate, 0) + " images/s";
    if (const auto seconds = (*p)["seconds"].value<double>()) text += ", " + format_duration(*seconds);
    if (!text.empty()) facts.emplace_back("pretext training", xml_escape(text));
  }
  if (const auto wait = s["data_wait_fraction"].value<double>())
    facts.emplace_back("trainer waited for data", format_percent(*wait) + " % of the time");

  std::string files;
  const artefacts::RunLayout layout(run_dir);
  for (const auto& file : {layout.config(), layout.metrics(), layout.summary_toml(), layout.summary_json()}) {
    const std::string name = file.filename().string();
    if (std::filesystem::is_regular_file(file))
      files += std::string(files.empty() ? "" : " · ") + "<a href=\"" + name + "\">" + name + "</a>";
  }
  facts.emplace_back("files", files);
  return facts;
}

std::string metric_text(const std::string& metric, double value) {
  if (ends_with(metric, "accuracy") || metric == "data_wait_fraction") return format_percent(value) + " %";
  if (metric == "images_per_second") return format_fixed(value, 0);
  return format_fixed(value, 4);
}

/// One epoch makes a chart of dots: a table of its values reads better.
std::string pretext_epoch_table(const RunMetrics& metrics) {
  std::string html =
      "<table class=\"results\">\n<thead><tr><th>metric</th><th>epoch</th><th>value</th></tr></thead>\n<tbody>\n";
  for (const auto& metric : metrics.metrics(kPretext))
    for (const auto& point : *metrics.find(kPretext, metric))
      html += "<tr><th scope=\"row\">" + xml_escape(humanize(metric)) + "</th><td>" + std::to_string(point.epoch) +
              "</td><td>" + metric_text(metric, point.value) + "</td></tr>\n";
  return html + "</tbody>\n</table>\n";
}

std::string pretext_charts(const std::filesystem::path& run_dir, const RunMetrics& metrics) {
  std::string html;
  ChartSpec loss("Pretext task: training loss", "epoch", "loss");
  ChartSpec accuracy = percent_chart("Pretext task: training accuracy", "accuracy (%)");
  ChartSpec other("Pretext task: other metrics", "epoch", "value (mean over the epoch)");
  for (const auto& metric : metrics.metrics(kPretext)) {
    const auto& points = *metrics.find(kPretext, metric);
    if (metric == "loss") {
      loss.series.insert(loss.series.begin(), series_of(points, "loss"));
    } else if (ends_with(metric, "loss")) {  // a task's own losses, e.g. the GAN's d_loss and g_loss
      loss.series.push_back(series_of(points, humanize(metric)));
    } else if (metric == "accuracy") {
      accuracy.series.push_back(series_of(points, "accuracy", kPercent));
    } else if (!is_bookkeeping(metric)) {
      other.series.push_back(series_of(points, humanize(metric)));
    }
  }
  if (!loss.series.empty()) html += chart_figure(loss, run_dir, "pretext-loss");
  if (!accuracy.series.empty()) html += chart_figure(accuracy, run_dir, "pretext-accuracy");
  if (!other.series.empty()) html += chart_figure(other, run_dir, "pretext-metrics");
  return html;
}

std::string transfer_charts(const std::filesystem::path& run_dir, const RunMetrics& metrics) {
  ChartSpec loss("Transfer: training loss", "epoch", "loss");
  ChartSpec validation = percent_chart("Transfer: validation accuracy", "validation accuracy (%)");
  for (const auto& mode : metrics.transfer_modes()) {
    const std::string phase = "transfer." + mode;
    if (const auto* points = metrics.find(phase, "train_loss")) loss.series.push_back(series_of(*points, mode));
    if (const auto* points = metrics.find(phase, "val_accuracy"))
      validation.series.push_back(series_of(*points, mode, kPercent));
  }
  std::string html;
  if (!validation.series.empty()) html += chart_figure(validation, run_dir, "transfer-val-accuracy");
  if (!loss.series.empty()) html += chart_figure(loss, run_dir, "transfer-train-loss");
  return html;
}

}  // namespace

std::filesystem::path write_run_report(const std::filesystem::path& run_dir) {
  const RunData run = load_run(run_dir);
  const std::string name = run_dir.lexically_normal().filename().empty()
                               ? run_dir.lexically_normal().parent_path().filename().string()
                               : run_dir.lexically_normal().filename().string();

  std::string body =
      "<header>\n<h1>Run report: " + xml_escape(name) + "</h1>\n" + facts_list(run_facts(run_dir, run)) + "</header>\n";
  if (!run.has_summary)
    body +=
        "<p class=\"note\">No summary.toml: the run has not finished, or an older pretext wrote it. "
        "The table shows what metrics.csv says; test accuracies are missing.</p>\n";

  body += "<section>\n<h2>Results</h2>\n";
  const auto groups = find_result_groups({&run.summary}, run.metrics.transfer_modes());
  body += run_results_table(run.summary, groups) + "</section>\n";

  const std::string transfer = transfer_charts(run_dir, run.metrics);
  if (!transfer.empty())
    body += "<section>\n<h2>Transfer</h2>\n<div class=\"charts\">\n" + transfer + "</div>\n</section>\n";
  std::size_t pretext_epochs = 0;
  for (const auto& metric : run.metrics.metrics(kPretext))
    pretext_epochs = std::max(pretext_epochs, run.metrics.find(kPretext, metric)->size());
  if (pretext_epochs == 1)
    body += "<section>\n<h2>Pretext task</h2>\n" + pretext_epoch_table(run.metrics) + "</section>\n";
  if (pretext_epochs > 1)
    body += "<section>\n<h2>Pretext task</h2>\n<div class=\"charts\">\n" + pretext_charts(run_dir, run.metrics) +
            "</div>\n</section>\n";

  const auto report = artefacts::RunLayout(run_dir).report();
  write_file_atomically(report, html_page("pretext run " + name, body));
  return report;
}

}  // namespace pretext::report
