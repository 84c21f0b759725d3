// Results over seeds: mean and standard deviation against hand-computed
// values, the study detection, the refusal of runs that differ in more than
// the seed, and the sweep report's mean ± sd row.
#include "pipeline/report/seeds.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/report/html_report.hpp"
#include "support/run_files.hpp"

namespace pretext::report {
namespace {

namespace fs = std::filesystem;

// configs/study.toml's fine-tuned validation accuracies at seeds 0, 1 and 2 (issue 14).
const std::vector<double> kFinetuned = {0.8290, 0.8115, 0.8270};

TEST(Seeds, MeanAndSampleStandardDeviationByHand) {
  const MeanSd stats = mean_sd(kFinetuned);
  EXPECT_EQ(stats.n, 3U);
  EXPECT_NEAR(stats.mean, 0.8225, 1e-12);  // (0.8290 + 0.8115 + 0.8270) / 3
  // Deviations 0.0065, -0.0110, 0.0045: squares sum to 1.835e-4; / (3 - 1); sqrt.
  EXPECT_NEAR(stats.sd, 0.00957862, 1e-8);
  EXPECT_EQ(format_mean_sd_percent(stats), "82.25 ± 0.96");

  EXPECT_EQ(mean_sd({0.5}).sd, 0.0);  // one run: no spread to estimate
  EXPECT_EQ(mean_sd({}).n, 0U);
}

TEST(Seeds, AStudyIsOverSeedsWhenOnlyTheSeedDiffers) {
  EXPECT_TRUE(is_seeds_study({{"transfer.epochs=5", "seed=0"}, {"transfer.epochs=5", "seed=1"}}));
  EXPECT_FALSE(is_seeds_study({{"seed=0"}}));                                  // one run is not a repeat
  EXPECT_FALSE(is_seeds_study({{"seed=0"}, {"transfer.epochs=5"}}));           // one has no seed
  EXPECT_FALSE(is_seeds_study({{"seed=0", "model.width=8"}, {"seed=1", "model.width=16"}}));
}

SeedRun run(const std::string& label, const std::string& config) {
  return {label, fs::path(label) / "config.toml", toml::parse(config)};
}

TEST(Seeds, RunsThatDifferOnlyInSeedAndThreadsPass) {
  EXPECT_NO_THROW(check_differ_only_in_seed({run("a", "seed = 0\nthreads = 2\n[transfer]\nepochs = 50\n"),
                                             run("b", "seed = 1\nthreads = 1\n[transfer]\nepochs = 50\n"),
                                             run("c", "seed = 2\n[pipeline]\nthreads = 3\n[transfer]\nepochs = 50\n")}));
}

TEST(Seeds, RunsWithAnotherConfigAreRefusedNamingTheKey) {
  try {
    check_differ_only_in_seed({run("seed 0", "seed = 0\n[transfer]\nepochs = 50\nlr = 0.001\n"),
                               run("seed 1", "seed = 1\n[transfer]\nepochs = 30\nlr = 0.001\n")});
    FAIL() << "runs with different transfer.epochs were accepted";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'transfer.epochs': 50 vs 30"), std::string::npos) << message;
    EXPECT_NE(message.find("'seed 1' (seed 1/config.toml)"), std::string::npos) << message;
  }
  try {  // a key only one of them has
    check_differ_only_in_seed({run("a", "seed = 0\n"), run("b", "seed = 1\n[model]\nwidth = 8\n")});
    FAIL() << "runs with and without model.width were accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'model.width': (absent) vs 8"), std::string::npos) << e.what();
  }
}

// ---- The sweep report ------------------------------------------------------

class SeedsSweep : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pretext-seeds-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    for (int seed = 0; seed < 3; ++seed) write_run(seed, "[transfer]\nepochs = 50\n");
    std::ofstream(dir_ / "sweep-manifest.toml") << manifest();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_run(int seed, const std::string& rest) {
    artefacts::RunDirectory out(dir_ / ("seed-" + std::to_string(seed)));
    out.write_resolved_config("seed = " + std::to_string(seed) + "\n" + rest);
    out.add_metric("transfer.finetuned", 1, "val_accuracy", kFinetuned[static_cast<std::size_t>(seed)]);
    out.flush_metrics();
    toml::table summary{{"seed", seed}, {"wall_seconds", 300.0 + 30.0 * seed}};
    summary.insert("transfer",
                   toml::table{{"finetuned", toml::table{{"val_accuracy", kFinetuned[static_cast<std::size_t>(seed)]},
                                                         {"seconds", 10.0}}}});
    out.write_summary(summary);
  }

  static std::string manifest() {
    std::string text = "title = \"seeds\"\n";
    for (int seed = 0; seed < 3; ++seed)
      text += "[[variants]]\nstudy = \"seeds\"\nlabel = \"seed " + std::to_string(seed) + "\"\ndir = \"seed-" +
              std::to_string(seed) + "\"\nstatus = \"finished\"\noverrides = [\"seed=" + std::to_string(seed) +
              "\"]\n";
    return text;
  }

  fs::path dir_;
};

TEST_F(SeedsSweep, TheReportHasAMeanAndSdRow) {
  const std::string html = testing::read_file(write_report(dir_));
  const auto row = html.find("<tr class=\"seeds-mean\">");
  ASSERT_NE(row, std::string::npos) << html;
  const std::string text = html.substr(row, html.find("</tr>", row) - row);
  EXPECT_NE(text.find("mean ± sd over 3 seeds"), std::string::npos) << text;
  EXPECT_NE(text.find("82.25 ± 0.96"), std::string::npos) << text;
  EXPECT_NE(text.find("5 min 30 s"), std::string::npos) << text;  // the mean wall time
  EXPECT_EQ(html.find("<strong>"), std::string::npos);             // no "best" among seeds of one experiment
}

TEST_F(SeedsSweep, ARunWithAnotherConfigIsRefused) {
  write_run(2, "[transfer]\nepochs = 30\n");
  try {
    write_report(dir_);
    FAIL() << "a seeds report over runs with different configs was written";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'transfer.epochs': 50 vs 30"), std::string::npos) << e.what();
  }
}

TEST_F(SeedsSweep, AStudyThatVariesMoreThanTheSeedGetsNoMeanRow) {
  std::string text = manifest();
  text.replace(text.find("\"seed=2\""), 8, "\"seed=2\", \"model.width=8\"");
  std::ofstream(dir_ / "sweep-manifest.toml") << text;
  const std::string html = testing::read_file(write_report(dir_));
  EXPECT_EQ(html.find("seeds-mean"), std::string::npos);
}

}  // namespace
}  // namespace pretext::report
