// Reports: metrics.csv and summary.toml in, SVG charts and polyglot HTML out.
// The outputs are parsed with a real XML parser (libxml2) and checked by
// structure: series, points, legend, table rows, links.
#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "pipeline/report/html_report.hpp"
#include "pipeline/report/markup.hpp"
#include "pipeline/report/metrics_reader.hpp"
#include "pipeline/report/svg_chart.hpp"
#include "pipeline/artefacts/run_directory.hpp"

#include "support/run_files.hpp"

namespace pretext::report {
namespace {

namespace fs = std::filesystem;

constexpr const char* kXhtml = "http://www.w3.org/1999/xhtml";
constexpr const char* kSvg = "http://www.w3.org/2000/svg";

/// An empty directory of its own, removed with everything in it at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(fs::temp_directory_path() / ("pretext-report-test-" + name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read(const fs::path& path) { return testing::read_file(path); }

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The message of the InputError that `action` throws; fails the test if none.
std::string input_error(const std::function<void()>& action) {
  try {
    action();
  } catch (const InputError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return {};
}

// ---- A parsed XML document with XPath queries (h: XHTML, s: SVG) ----------

class Xml {
 public:
  explicit Xml(const std::string& text, const std::string& name)
      : doc_(xmlReadMemory(text.data(), static_cast<int>(text.size()), name.c_str(), "UTF-8", XML_PARSE_NONET),
             xmlFreeDoc) {}
  static Xml file(const fs::path& path) { return Xml(read(path), path.string()); }

  [[nodiscard]] bool ok() const { return doc_ != nullptr; }

  [[nodiscard]] std::vector<xmlNodePtr> select(const std::string& xpath, xmlNodePtr context = nullptr) const {
    std::vector<xmlNodePtr> nodes;
    if (!doc_) return nodes;
    std::unique_ptr<xmlXPathContext, decltype(&xmlXPathFreeContext)> ctx(xmlXPathNewContext(doc_.get()),
                                                                         xmlXPathFreeContext);
    xmlXPathRegisterNs(ctx.get(), BAD_CAST "h", BAD_CAST kXhtml);
    xmlXPathRegisterNs(ctx.get(), BAD_CAST "s", BAD_CAST kSvg);
    if (context != nullptr) ctx->node = context;
    std::unique_ptr<xmlXPathObject, decltype(&xmlXPathFreeObject)> result(
        xmlXPathEvalExpression(BAD_CAST xpath.c_str(), ctx.get()), xmlXPathFreeObject);
    EXPECT_NE(result, nullptr) << "bad XPath " << xpath;
    if (result && result->nodesetval)
      for (int i = 0; i < result->nodesetval->nodeNr; ++i) nodes.push_back(result->nodesetval->nodeTab[i]);
    return nodes;
  }

  static std::string attribute(xmlNodePtr node, const char* name) {
    xmlChar* value = xmlGetProp(node, BAD_CAST name);
    std::string text = value ? reinterpret_cast<const char*>(value) : "";
    xmlFree(value);
    return text;
  }

  static std::string text(xmlNodePtr node) {
    xmlChar* value = xmlNodeGetContent(node);
    std::string out = value ? reinterpret_cast<const char*>(value) : "";
    xmlFree(value);
    return out;
  }

  [[nodiscard]] std::vector<std::string> texts(const std::string& xpath, xmlNodePtr context = nullptr) const {
    std::vector<std::string> out;
    for (auto* node : select(xpath, context)) out.push_back(text(node));
    return out;
  }

 private:
  std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)> doc_;
};

/// Coordinate pairs in a polyline's points attribute; -1 if any is not "x,y".
int coordinate_pairs(const std::string& points) {
  std::istringstream in(points);
  std::string pair;
  int count = 0;
  while (in >> pair) {
    const auto comma = pair.find(',');
    if (comma == std::string::npos || pair.find(',', comma + 1) != std::string::npos) return -1;
    char* end = nullptr;
    std::strtod(pair.c_str(), &end);
    if (end != pair.c_str() + comma) return -1;
    std::strtod(pair.c_str() + comma + 1, &end);
    if (*end != '\0') return -1;
    ++count;
  }
  return count;
}

std::vector<double> polyline_ys(const std::string& points) {
  std::vector<double> ys;
  std::istringstream in(points);
  std::string pair;
  while (in >> pair) ys.push_back(std::stod(pair.substr(pair.find(',') + 1)));
  return ys;
}

/// Nothing that a browser would fetch: the namespace names are the only URLs.
void expect_self_contained(const std::string& text) {
  std::string rest = text;
  for (const std::string& ns : {std::string("xmlns=\"") + kXhtml + "\"", std::string("xmlns=\"") + kSvg + "\""})
    for (auto at = rest.find(ns); at != std::string::npos; at = rest.find(ns)) rest.erase(at, ns.size());
  EXPECT_FALSE(contains(rest, "http")) << "a URL other than a namespace";
  EXPECT_FALSE(contains(rest, "<script"));
  EXPECT_FALSE(contains(rest, "<link"));
  EXPECT_FALSE(contains(rest, "<img"));
  EXPECT_FALSE(contains(rest, "url("));
  EXPECT_FALSE(contains(rest, "@import"));
}

// ---- Fake runs, written the way pretext run writes them --------------------

struct FakeRun {
  int pretext_epochs = 3;
  int transfer_epochs = 5;
  std::vector<std::string> modes = {"fixed", "finetuned"};
  double quality = 0.8;  // the validation accuracy the curves approach
  bool evaluation = true;
};

double val_accuracy(const FakeRun& run, std::size_t mode, int epoch) {
  return run.quality * (1.0 - 0.5 / epoch) - 0.01 * static_cast<double>(mode);
}

void write_fake_run(const fs::path& dir, const FakeRun& run) {
  artefacts::RunDirectory out(dir);
  out.write_resolved_config("seed = 7\n[model]\nplugin = \"conv4\"\n[pretext]\nplugin = \"rotation\"\n");
  for (int e = 1; e <= run.pretext_epochs; ++e) {
    out.add_metric("pretext", e, "loss", 1.0 / e);
    out.add_metric("pretext", e, "accuracy", 0.5 + 0.1 * e);
    out.add_metric("pretext", e, "images_per_second", 1000.0);
    out.add_metric("pretext", e, "data_wait_fraction", 0.01);
  }
  toml::table transfer;
  for (std::size_t m = 0; m < run.modes.size(); ++m) {
    const std::string phase = "transfer." + run.modes[m];
    for (int e = 1; e <= run.transfer_epochs; ++e) {
      out.add_metric(phase, e, "train_loss", 2.0 / (e + static_cast<double>(m)));
      out.add_metric(phase, e, "train_accuracy", 0.9);
      out.add_metric(phase, e, "val_accuracy", val_accuracy(run, m, e));
    }
    const double last = val_accuracy(run, m, run.transfer_epochs);
    transfer.insert(run.modes[m], toml::table{{"val_accuracy", last},
                                              {"best_val_accuracy", last},
                                              {"best_epoch", run.transfer_epochs},
                                              {"test_accuracy", last - 0.005},
                                              {"seconds", 12.5}});
  }
  out.flush_metrics();
  toml::table summary{{"seed", 7}, {"threads", 2}, {"wall_seconds", 312.0}, {"data_wait_fraction", 0.006}};
  summary.insert("pretext", toml::table{{"final_loss", 0.25}, {"final_accuracy", 0.8}, {"seconds", 100.0}});
  summary.insert("transfer", std::move(transfer));
  if (run.evaluation)
    summary.insert(
        "evaluation",
        toml::table{{"knn", toml::table{{"val_accuracy", run.quality - 0.1}, {"test_accuracy", run.quality - 0.12}}},
                    {"linear_probe", toml::table{{"val_accuracy", run.quality - 0.05}}}});
  out.write_summary(summary);
}

// ---- metrics.csv -----------------------------------------------------------

TEST(MetricsCsv, SeriesByPhaseAndMetricInRunOrder) {
  const RunMetrics metrics = parse_metrics_csv(
      "phase,epoch,metric,value\r\npretext,2,loss,0.5\npretext,1,loss,0.75\ntransfer.scratch,1,val_accuracy,0.25\n"
      "transfer.fixed,1,val_accuracy,nan\n\n",
      "m.csv");
  EXPECT_EQ(metrics.phases(), (std::vector<std::string>{"pretext", "transfer.scratch", "transfer.fixed"}));
  EXPECT_EQ(metrics.transfer_modes(), (std::vector<std::string>{"scratch", "fixed"}));
  const auto* loss = metrics.find("pretext", "loss");
  ASSERT_NE(loss, nullptr);
  ASSERT_EQ(loss->size(), 2u);
  EXPECT_EQ((*loss)[0].epoch, 1);  // sorted by epoch
  EXPECT_DOUBLE_EQ((*loss)[0].value, 0.75);
  EXPECT_TRUE(std::isnan(metrics.find("transfer.fixed", "val_accuracy")->front().value));
  EXPECT_EQ(metrics.find("pretext", "accuracy"), nullptr);
}

TEST(MetricsCsv, MalformedRowsNameFileAndLine) {
  const TempDir temp("csv");
  const fs::path& dir = temp.path();
  write(dir / "metrics.csv", "phase,epoch,metric,value\npretext,1,loss,0.5\npretext,2,loss\n");
  std::string message = input_error([&] { read_metrics_csv(dir / "metrics.csv"); });
  EXPECT_TRUE(contains(message, (dir / "metrics.csv").string() + ":3:")) << message;
  EXPECT_TRUE(contains(message, "4 comma-separated fields")) << message;

  message = input_error([] { parse_metrics_csv("phase,epoch,metric,value\npretext,one,loss,0.5\n", "m.csv"); });
  EXPECT_TRUE(contains(message, "m.csv:2:") && contains(message, "epoch 'one'")) << message;
  message = input_error([] { parse_metrics_csv("phase,epoch,metric,value\npretext,1,loss,0.5x\n", "m.csv"); });
  EXPECT_TRUE(contains(message, "m.csv:2:") && contains(message, "value '0.5x'")) << message;
  message = input_error([] { parse_metrics_csv("epoch,value\n1,2\n", "m.csv"); });
  EXPECT_TRUE(contains(message, "m.csv:1:") && contains(message, "header")) << message;
  message = input_error([] { parse_metrics_csv("", "m.csv"); });
  EXPECT_TRUE(contains(message, "m.csv:1:")) << message;
  message = input_error([&] { read_metrics_csv(dir / "absent.csv"); });
  EXPECT_TRUE(contains(message, "absent.csv")) << message;
}

TEST(Summary, WrittenAsTomlAndReadBack) {
  const TempDir temp("summary");
  const fs::path& dir = temp.path();
  write_fake_run(dir, FakeRun{});
  const auto summary = read_summary(dir);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ((*summary)["seed"].value<std::int64_t>(), 7);
  EXPECT_DOUBLE_EQ(*(*summary).at_path("transfer.fixed.test_accuracy").value<double>(),
                   val_accuracy(FakeRun{}, 0, 5) - 0.005);
  EXPECT_TRUE(fs::exists(dir / "summary.json"));

  write(dir / "summary.toml", "seed = = 1\n");
  const std::string message = input_error([&] { read_summary(dir); });
  EXPECT_TRUE(contains(message, "summary.toml:1:")) << message;
  fs::remove(dir / "summary.toml");
  EXPECT_FALSE(read_summary(dir).has_value());
}

// ---- Charts ----------------------------------------------------------------

TEST(NiceTicks, StepsAreOneTwoOrFiveAndCoverTheData) {
  struct Case {
    double lo, hi;
    int target;
    bool integers;
  };
  for (const Case& c :
       {Case{0.61, 0.834, 5, false}, Case{1, 50, 7, true}, Case{1, 5, 7, true}, Case{0.0007, 0.0093, 5, false},
        Case{-3.2, 18.9, 6, false}, Case{42, 42, 5, false}, Case{3, 3, 7, true}}) {
    const AxisTicks t = nice_ticks(c.lo, c.hi, c.target, c.integers);
    EXPECT_LE(t.lo, c.lo);
    EXPECT_GE(t.hi, c.hi);
    EXPECT_LT(t.lo, t.hi);
    const double mantissa = t.step / std::pow(10.0, std::floor(std::log10(t.step) + 1e-9));
    EXPECT_TRUE(std::abs(mantissa - 1) < 1e-9 || std::abs(mantissa - 2) < 1e-9 || std::abs(mantissa - 5) < 1e-9)
        << "step " << t.step;
    if (c.integers) {
      EXPECT_EQ(t.step, std::round(t.step));
    }
    EXPECT_GE(t.values.size(), 2u);
    EXPECT_LE(t.values.size(), static_cast<std::size_t>(2 * c.target + 2));
    for (std::size_t i = 1; i < t.values.size(); ++i) EXPECT_NEAR(t.values[i] - t.values[i - 1], t.step, 1e-9);
  }
  const AxisTicks accuracy = nice_ticks(61, 83.4, 5, false);
  EXPECT_EQ(accuracy.values, (std::vector<double>{60, 65, 70, 75, 80, 85}));
  EXPECT_EQ(nice_ticks(0.61, 0.834, 5, false).decimals, 2);
}

TEST(SvgChart, OneGroupPerSeriesWithItsPointsLegendAndAxes) {
  ChartSpec spec("Val <accuracy> & co", "epoch", "validation accuracy (%)");
  spec.series.push_back({"a<b & \"c\"", {{1, 60}, {2, 70}, {3, 80}}});
  spec.series.push_back({"long", {}});
  for (int e = 1; e <= 40; ++e) spec.series.back().points.emplace_back(e, 50 + e * 0.1);
  spec.series.push_back({"empty", {}});
  spec.series.push_back({"gap", {{1, 55}, {2, std::nan("")}, {3, 57}}});
  const std::string svg = render_svg_chart(spec);
  const Xml xml(svg, "chart.svg");
  ASSERT_TRUE(xml.ok()) << svg;
  expect_self_contained(svg);

  const auto groups = xml.select("//s:g[@class='series']");
  ASSERT_EQ(groups.size(), 3u);  // the empty series is left out
  EXPECT_EQ(Xml::attribute(groups[0], "data-label"), "a<b & \"c\"");
  const std::vector<int> expected_points = {3, 40, 2};
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const auto lines = xml.select("s:polyline", groups[i]);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(coordinate_pairs(Xml::attribute(lines[0], "points")), expected_points[i]);
  }
  // Higher values are drawn higher up: SVG y grows downwards.
  const auto ys = polyline_ys(Xml::attribute(xml.select("s:polyline", groups[0])[0], "points"));
  EXPECT_GT(ys[0], ys[1]);
  EXPECT_GT(ys[1], ys[2]);
  EXPECT_EQ(xml.select("s:circle", groups[0]).size(), 3u);  // few points: marked
  EXPECT_EQ(xml.select("s:circle", groups[1]).size(), 0u);  // many points: the line alone
  EXPECT_NE(Xml::attribute(xml.select("s:polyline", groups[0])[0], "stroke"),
            Xml::attribute(xml.select("s:polyline", groups[1])[0], "stroke"));

  std::vector<std::string> legend;
  for (auto* entry : xml.select("//s:g[@class='legend-entry']")) legend.push_back(Xml::attribute(entry, "data-label"));
  EXPECT_EQ(legend, (std::vector<std::string>{"a<b & \"c\"", "long", "gap"}));
  EXPECT_EQ(xml.texts("//s:text[@class='x-label']"), std::vector<std::string>{"epoch"});
  EXPECT_EQ(xml.texts("//s:text[@class='y-label']"), std::vector<std::string>{"validation accuracy (%)"});
  EXPECT_EQ(xml.texts("//s:text[@class='chart-title']"), std::vector<std::string>{"Val <accuracy> & co"});
}

TEST(SvgChart, NoDataStillDrawsAxes) {
  const std::string svg = render_svg_chart(ChartSpec("Nothing", "epoch", "loss"));
  const Xml xml(svg, "empty.svg");
  ASSERT_TRUE(xml.ok());
  EXPECT_TRUE(xml.select("//s:g[@class='series']").empty());
  EXPECT_TRUE(contains(svg, "no data"));
}

TEST(SvgChart, PercentAxisStopsAtOneHundred) {
  auto top_tick = [](const ChartSpec& spec) {
    const Xml xml(render_svg_chart(spec), "percent.svg");
    const auto labels = xml.texts("//s:g[@class='tick-labels']/s:text[@text-anchor='end']");
    return labels.empty() ? std::string() : labels.back();
  };
  ChartSpec spec("Accuracy", "epoch", "accuracy (%)");
  spec.series.push_back({"one epoch", {{1, 96.9}}});
  EXPECT_EQ(top_tick(spec), "110");  // the nice axis, unbounded
  spec.y_floor = 0.0;
  spec.y_ceiling = 100.0;
  EXPECT_EQ(top_tick(spec), "100");
  spec.series.back().points.emplace_back(2, 104.0);  // data beyond the bound still fits on the axis
  EXPECT_GE(std::stod(top_tick(spec)), 104.0);
}

// ---- Run report ------------------------------------------------------------

TEST(RunReport, ChartsTableAndStandaloneSvg) {
  const TempDir temp("run");
  const fs::path& dir = temp.path();
  write_fake_run(dir, FakeRun{});
  const fs::path report = write_report(dir);
  EXPECT_EQ(report, dir / "report.html");
  const std::string html = read(report);
  const Xml xml(html, report.string());
  ASSERT_TRUE(xml.ok());
  expect_self_contained(html);
  EXPECT_EQ(xml.select("/h:html/h:head/h:title").size(), 1u);

  // Validation accuracy: one curve per mode, in training order, one point per epoch.
  const auto val = xml.select("//s:svg[s:title='Transfer: validation accuracy']");
  ASSERT_EQ(val.size(), 1u);
  const auto curves = xml.select(".//s:g[@class='series']", val[0]);
  ASSERT_EQ(curves.size(), 2u);
  EXPECT_EQ(Xml::attribute(curves[0], "data-label"), "fixed");
  EXPECT_EQ(Xml::attribute(curves[1], "data-label"), "finetuned");
  for (auto* curve : curves)
    EXPECT_EQ(coordinate_pairs(Xml::attribute(xml.select("s:polyline", curve)[0], "points")), 5);
  EXPECT_EQ(xml.texts(".//s:text[@class='y-label']", val[0]), std::vector<std::string>{"validation accuracy (%)"});
  EXPECT_EQ(xml.select("//s:svg[s:title='Transfer: training loss']//s:g[@class='series']").size(), 2u);
  const auto pretext = xml.select("//s:svg[s:title='Pretext task: training loss']//s:g[@class='series']/s:polyline");
  ASSERT_EQ(pretext.size(), 1u);
  EXPECT_EQ(coordinate_pairs(Xml::attribute(pretext[0], "points")), 3);
  EXPECT_EQ(xml.select("//s:svg[s:title='Pretext task: training accuracy']").size(), 1u);
  EXPECT_TRUE(xml.select("//s:svg[s:title='Pretext task: other metrics']").empty());  // throughput is not a curve

  // Results: transfer modes first, then every evaluation found in the summary.
  const auto rows = xml.texts("//h:table[contains(@class,'results')]/h:tbody/h:tr/h:th");
  EXPECT_EQ(rows, (std::vector<std::string>{"transfer: fixed", "transfer: finetuned", "evaluation: knn",
                                            "evaluation: linear probe"}));
  const auto knn = xml.texts("//h:tr[h:th='evaluation: knn']/h:td");
  EXPECT_TRUE(std::find(knn.begin(), knn.end(), format_percent(FakeRun{}.quality - 0.12)) != knn.end());
  const auto fixed = xml.texts("//h:tr[h:th='transfer: fixed']/h:td");
  EXPECT_TRUE(std::find(fixed.begin(), fixed.end(), format_percent(val_accuracy(FakeRun{}, 0, 5)) + " @ 5") !=
              fixed.end());
  EXPECT_TRUE(contains(html, "rotation on conv4"));
  EXPECT_TRUE(contains(html, "5 min 12 s"));

  for (const char* chart : {"transfer-val-accuracy", "transfer-train-loss", "pretext-loss", "pretext-accuracy"}) {
    const auto svg = dir / "charts" / (std::string(chart) + ".svg");
    ASSERT_TRUE(fs::exists(svg)) << svg;
    EXPECT_TRUE(Xml::file(svg).ok()) << svg;
    EXPECT_EQ(xml.select("//h:figcaption/h:a[@href='charts/" + std::string(chart) + ".svg']").size(), 1u);
  }
}

TEST(RunReport, WithoutSummaryUsesTheMetrics) {
  const TempDir temp("unfinished");
  const fs::path& dir = temp.path();
  write_fake_run(dir, FakeRun{});
  fs::remove(dir / "summary.toml");
  const Xml xml = Xml::file(write_run_report(dir));
  ASSERT_TRUE(xml.ok());
  EXPECT_EQ(xml.texts("//h:table/h:tbody/h:tr/h:th"),
            (std::vector<std::string>{"transfer: fixed", "transfer: finetuned"}));
  const auto cells = xml.texts("//h:tr[h:th='transfer: finetuned']/h:td");
  EXPECT_TRUE(std::find(cells.begin(), cells.end(), format_percent(val_accuracy(FakeRun{}, 1, 5)) + " @ 5") !=
              cells.end());
}

TEST(RunReport, OnePretextEpochIsATableNotACurve) {
  const TempDir temp("one-epoch");
  const fs::path& dir = temp.path();
  FakeRun run;
  run.pretext_epochs = 1;
  write_fake_run(dir, run);
  const Xml xml = Xml::file(write_run_report(dir));
  ASSERT_TRUE(xml.ok());
  EXPECT_TRUE(xml.select("//s:svg[starts-with(s:title,'Pretext')]").empty());
  EXPECT_FALSE(fs::exists(dir / "charts" / "pretext-loss.svg"));
  EXPECT_EQ(xml.texts("//h:tr[h:th='images per second']/h:td"), (std::vector<std::string>{"1", "1000"}));
  EXPECT_EQ(xml.select("//s:svg[s:title='Transfer: validation accuracy']").size(), 1u);
}

TEST(Report, DirectoryWithoutRunOrSweepIsAnInputError) {
  const TempDir temp("nothing");
  const fs::path& dir = temp.path();
  const std::string message = input_error([&] { write_report(dir); });
  EXPECT_TRUE(contains(message, dir.string()) && contains(message, "metrics.csv") &&
              contains(message, "sweep-manifest.toml"))
      << message;
  EXPECT_TRUE(contains(input_error([&] { write_report(dir / "absent"); }), "absent"));
}

// ---- Sweep report ----------------------------------------------------------

constexpr const char* kManifest = R"(title = "Study: batch size"
metric_mode = "finetuned"
[[variants]]
study = "batch size"
label = "batch 32"
dir = "batch-32"
status = "finished"
[[variants]]
study = "batch size"
label = "batch <64>"
dir = "batch 64"
status = "finished"
[[variants]]
study = "batch size"
label = "batch 128"
dir = "batch-128"
status = "failed"
[[variants]]
study = "learning rate"
label = "lr 0.1"
dir = "lr-0.1"
status = "finished"
)";

TEST(SweepReport, OneChartPerStudyOneCurvePerFinishedVariant) {
  const TempDir temp("sweep");
  const fs::path& dir = temp.path();
  write_fake_run(dir / "batch-32", FakeRun{3, 5, {"fixed", "finetuned"}, 0.8, true});
  write_fake_run(dir / "batch 64", FakeRun{3, 4, {"fixed", "finetuned"}, 0.85, true});
  write_fake_run(dir / "lr-0.1", FakeRun{3, 6, {"fixed", "finetuned"}, 0.7, false});
  fs::create_directories(dir / "batch-128");  // failed early: no metrics
  write(dir / "sweep-manifest.toml", kManifest);

  const fs::path report = write_report(dir);
  const std::string html = read(report);
  const Xml xml(html, report.string());
  ASSERT_TRUE(xml.ok());
  expect_self_contained(html);
  EXPECT_EQ(xml.texts("//h:h1"), std::vector<std::string>{"Study: batch size"});

  const auto studies = xml.select("//h:section[@class='study']");
  ASSERT_EQ(studies.size(), 2u);
  EXPECT_EQ(xml.texts("h:h2", studies[0]), std::vector<std::string>{"batch size"});

  // The batch-size chart: the two finished variants, with their epochs; the failed one is left out.
  const auto charts = xml.select(".//s:svg", studies[0]);
  ASSERT_EQ(charts.size(), 1u);
  const auto curves = xml.select(".//s:g[@class='series']", charts[0]);
  std::vector<std::string> labels, legend;
  for (auto* curve : curves) labels.push_back(Xml::attribute(curve, "data-label"));
  for (auto* entry : xml.select(".//s:g[@class='legend-entry']", charts[0]))
    legend.push_back(Xml::attribute(entry, "data-label"));
  EXPECT_EQ(labels, (std::vector<std::string>{"batch 32", "batch <64>"}));
  EXPECT_EQ(legend, labels);
  ASSERT_EQ(curves.size(), 2u);
  EXPECT_EQ(coordinate_pairs(Xml::attribute(xml.select("s:polyline", curves[0])[0], "points")), 5);
  EXPECT_EQ(coordinate_pairs(Xml::attribute(xml.select("s:polyline", curves[1])[0], "points")), 4);
  EXPECT_EQ(xml.texts(".//s:text[@class='x-label']", charts[0]), std::vector<std::string>{"epoch"});
  EXPECT_EQ(xml.texts(".//s:text[@class='y-label']", charts[0]), std::vector<std::string>{"validation accuracy (%)"});
  EXPECT_TRUE(contains(xml.texts(".//s:text[@class='chart-title']", charts[0]).at(0), "finetuned"));

  // The table: one row per variant, failed included, finished ones linked to their run reports.
  const auto rows = xml.select(".//h:table/h:tbody/h:tr", studies[0]);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(xml.texts("h:th", rows[2]), std::vector<std::string>{"batch 128"});
  EXPECT_EQ(xml.texts("h:td[@class='status']", rows[2]), std::vector<std::string>{"failed"});
  EXPECT_TRUE(xml.select("h:th/h:a", rows[2]).empty());
  const auto links = xml.select(".//h:tbody/h:tr/h:th/h:a", studies[0]);
  ASSERT_EQ(links.size(), 2u);
  EXPECT_EQ(Xml::attribute(links[0], "href"), "batch-32/report.html");
  EXPECT_EQ(Xml::attribute(links[1], "href"), "batch%2064/report.html");
  EXPECT_TRUE(Xml::file(dir / "batch-32" / "report.html").ok());
  EXPECT_TRUE(Xml::file(dir / "batch 64" / "report.html").ok());

  // Columns: every mode found and the evaluations; the better variant's accuracies are in bold.
  const auto groups = xml.texts(".//h:thead/h:tr/h:th[@class='group']", studies[0]);
  EXPECT_EQ(groups, (std::vector<std::string>{"transfer: fixed (%)", "transfer: finetuned (%)", "evaluation: knn (%)",
                                              "evaluation: linear probe (%)"}));
  EXPECT_EQ(xml.texts("h:td/h:strong", rows[0]).size(), 0u);
  EXPECT_EQ(xml.texts("h:td/h:strong", rows[1]).size(), 9u);  // 2 modes x 3 columns, knn x 2, linear probe
  const auto first_row = xml.texts("h:td", rows[0]);
  EXPECT_EQ(first_row.back(), "5 min 12 s");

  // The second study has its own chart and table, without evaluation columns (that run has none).
  EXPECT_EQ(xml.select(".//s:g[@class='series']", studies[1]).size(), 1u);
  EXPECT_EQ(xml.select(".//h:table/h:tbody/h:tr", studies[1]).size(), 1u);
  EXPECT_EQ(xml.texts(".//h:thead/h:tr/h:th[@class='group']", studies[1]).size(), 2u);

  for (const char* chart : {"batch-size", "learning-rate"}) {
    const auto svg = dir / "charts" / (std::string(chart) + ".svg");
    ASSERT_TRUE(fs::exists(svg)) << svg;
    EXPECT_TRUE(Xml::file(svg).ok());
  }
}

TEST(SweepReport, ManifestMistakesNameFileAndKey) {
  const TempDir temp("bad-sweep");
  const fs::path& dir = temp.path();
  write(dir / "sweep-manifest.toml",
        "[[variants]]\nlabel = \"a\"\ndir = \"a\"\nstatus = \"finished\"\n"
        "[[variants]]\ndir = \"b\"\nstatus = \"finished\"\n");
  std::string message = input_error([&] { write_report(dir); });
  EXPECT_TRUE(contains(message, "sweep-manifest.toml:5:") && contains(message, "variants[1].label")) << message;

  write(dir / "sweep-manifest.toml", "[[variants]]\nlabel = \"a\"\ndir = \"a\"\nstatus = \"done\"\n");
  message = input_error([&] { write_report(dir); });
  EXPECT_TRUE(contains(message, "sweep-manifest.toml:4:") && contains(message, "variants[0].status")) << message;

  // A variant marked finished must have its metrics.
  write(dir / "sweep-manifest.toml", "[[variants]]\nlabel = \"a\"\ndir = \"a\"\nstatus = \"finished\"\n");
  message = input_error([&] { write_report(dir); });
  EXPECT_TRUE(contains(message, "metrics.csv") && contains(message, "variant 'a'")) << message;
}

}  // namespace
}  // namespace pretext::report
