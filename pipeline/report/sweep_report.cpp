// SWEEP_DIR/report.html: the variants of each study side by side.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/atomic_file.hpp"
#include "common/errors.hpp"
#include "pipeline/report/html_report.hpp"
#include "pipeline/report/markup.hpp"
#include "pipeline/report/report_page.hpp"
#include "pipeline/report/results_table.hpp"
#include "pipeline/report/seeds.hpp"
#include "pipeline/report/sweep_manifest.hpp"
#include "pipeline/artefacts/run_directory.hpp"

namespace pretext::report {
namespace {

struct LoadedVariant {
  const SweepVariant* variant = nullptr;
  std::unique_ptr<RunData> run;  // only for finished variants
};

std::vector<std::string> studies_in_order(const SweepManifest& manifest) {
  std::vector<std::string> studies;
  for (const auto& variant : manifest.variants)
    if (std::find(studies.begin(), studies.end(), variant.study) == studies.end()) studies.push_back(variant.study);
  return studies;
}

/// Every transfer mode of the finished variants, in the order they were first trained.
std::vector<std::string> modes_in_order(const std::vector<LoadedVariant>& variants) {
  std::vector<std::string> modes;
  for (const auto& loaded : variants)
    if (loaded.run)
      for (const auto& mode : loaded.run->metrics.transfer_modes())
        if (std::find(modes.begin(), modes.end(), mode) == modes.end()) modes.push_back(mode);
  return modes;
}

/// Whether the study repeats one experiment over seeds; if so, its finished
/// runs' configs must differ only in seed (InputError naming the key otherwise).
bool seeds_study(const std::filesystem::path& sweep_dir, const std::vector<const LoadedVariant*>& variants) {
  std::vector<std::vector<std::string>> overrides;
  for (const auto* loaded : variants) overrides.push_back(loaded->variant->overrides);
  if (!is_seeds_study(overrides)) return false;
  std::vector<SeedRun> runs;
  for (const auto* loaded : variants) {
    if (!loaded->run) continue;
    const auto config = artefacts::RunLayout(sweep_dir / loaded->variant->dir).config();
    try {
      runs.push_back({loaded->variant->label, config, toml::parse_file(config.string())});
    } catch (const toml::parse_error& error) {
      throw InputError(config.string() + ": not valid TOML: " + std::string(error.description()));
    }
  }
  check_differ_only_in_seed(runs);
  return true;
}

std::string study_section(const std::filesystem::path& sweep_dir, const std::string& study,
                          const std::vector<const LoadedVariant*>& variants, const std::string& mode,
                          const std::vector<std::string>& modes, std::map<std::string, int>& used_stems) {
  ChartSpec chart = percent_chart(study + ": validation accuracy (" + mode + ")", "validation accuracy (%)");
  std::vector<std::string> left_out;
  std::vector<SweepRow> rows;
  std::vector<const toml::table*> summaries;
  for (const auto* loaded : variants) {
    const SweepVariant& v = *loaded->variant;
    SweepRow row{v.label, {}, v.status, nullptr};
    if (std::filesystem::is_regular_file(sweep_dir / v.dir / artefacts::kReportFile))
      row.href = (v.dir / artefacts::kReportFile).generic_string();
    if (loaded->run) {
      row.summary = &loaded->run->summary;
      summaries.push_back(row.summary);
      if (const auto* points = loaded->run->metrics.find("transfer." + mode, "val_accuracy")) {
        chart.series.push_back(series_of(*points, v.label, 100.0));
      } else {
        left_out.push_back(v.label + " (no " + mode + " transfer)");
      }
    } else {
      left_out.push_back(v.label + " (" + to_string(v.status) + ")");
    }
    rows.push_back(std::move(row));
  }

  std::string stem = slug(study).empty() ? "study" : slug(study);
  if (const int n = used_stems[stem]++; n > 0) stem += "-" + std::to_string(n + 1);

  std::string html = "<section class=\"study\">\n<h2>" + xml_escape(study) + "</h2>\n";
  const bool over_seeds = seeds_study(sweep_dir, variants);
  html += "<div class=\"table-scroll\">\n" +
          sweep_results_table(rows, find_result_groups(summaries, modes), over_seeds) + "</div>\n";
  html += "<div class=\"charts\">\n" + chart_figure(chart, sweep_dir, stem) + "</div>\n";
  if (!left_out.empty()) {
    std::string list;
    for (const auto& label : left_out) list += (list.empty() ? "" : "; ") + label;
    html += "<p class=\"note\">Not in the chart: " + xml_escape(list) + ".</p>\n";
  }
  return html + "</section>\n";
}

}  // namespace

std::filesystem::path write_sweep_report(const std::filesystem::path& sweep_dir) {
  const auto manifest_path = sweep_dir / kSweepManifestName;
  const SweepManifest manifest = read_sweep_manifest(manifest_path);

  std::vector<LoadedVariant> variants;
  int counts[3] = {0, 0, 0};
  for (const auto& variant : manifest.variants) {
    LoadedVariant loaded{&variant, nullptr};
    ++counts[static_cast<int>(variant.status)];
    if (variant.status == VariantStatus::finished) {
      const auto run_dir = sweep_dir / variant.dir;
      try {
        loaded.run = std::make_unique<RunData>(load_run(run_dir));
      } catch (const InputError& error) {
        throw InputError(std::string(error.what()) + " (variant '" + variant.label + "', marked finished in " +
                         manifest_path.string() + ")");
      }
      write_run_report(run_dir);  // the table links to it
    }
    variants.push_back(std::move(loaded));
  }

  const auto modes = modes_in_order(variants);
  const std::string mode = !manifest.metric_mode.empty() ? manifest.metric_mode
                           : modes.empty()               ? std::string("finetuned")
                                                         : modes.front();
  const std::string title = manifest.title.empty() ? "Sweep report" : manifest.title;

  std::string body = "<header>\n<h1>" + xml_escape(title) + "</h1>\n";
  body += facts_list({
      {"directory", "<span class=\"path\">" + xml_escape(sweep_dir.string()) + "</span>"},
      {"variants", std::to_string(manifest.variants.size()) + " (" + std::to_string(counts[0]) + " finished, " +
                       std::to_string(counts[1]) + " failed, " + std::to_string(counts[2]) + " pending)"},
      {"curves show", "validation accuracy of the <code>" + xml_escape(mode) + "</code> transfer, per epoch"},
  });
  body += "</header>\n";
  if (manifest.variants.empty()) body += "<p class=\"note\">The manifest lists no variants yet.</p>\n";

  std::map<std::string, int> used_stems;
  for (const auto& study : studies_in_order(manifest)) {
    std::vector<const LoadedVariant*> members;
    for (const auto& loaded : variants)
      if (loaded.variant->study == study) members.push_back(&loaded);
    body += study_section(sweep_dir, study, members, mode, modes, used_stems);
  }

  const auto report = sweep_dir / artefacts::kReportFile;
  write_file_atomically(report, html_page(title, body));
  return report;
}

}  // namespace pretext::report
