// Self-contained HTML reports of a run or a sweep: inline CSS, charts inlined
// as SVG, no scripts and nothing fetched from anywhere, so a report can be
// mailed or archived as one file. The markup is polyglot (XHTML-compatible
// HTML5: every element closed, every attribute quoted), so tools can read it
// as XML. Each chart is also written as a standalone .svg under charts/.
#pragma once

#include <filesystem>

namespace pretext::report {

/// RUN_DIR/report.html from metrics.csv and summary.toml (the summary is
/// optional: a run still in progress gets what its metrics say), plus
/// RUN_DIR/charts/*.svg. Returns the report's path. Throws InputError when
/// metrics.csv is missing or malformed.
std::filesystem::path write_run_report(const std::filesystem::path& run_dir);

/// SWEEP_DIR/report.html from SWEEP_DIR/sweep-manifest.toml: one chart and
/// one table per study, plus SWEEP_DIR/charts/*.svg. Also (re)writes the run
/// report of every finished variant, so the links to them work. Returns the
/// report's path.
std::filesystem::path write_sweep_report(const std::filesystem::path& sweep_dir);

/// A sweep report when `dir` holds sweep-manifest.toml, a run report when it
/// holds metrics.csv; otherwise an InputError saying what was expected.
std::filesystem::path write_report(const std::filesystem::path& dir);

}  // namespace pretext::report
