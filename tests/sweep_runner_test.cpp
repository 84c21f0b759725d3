// pretext sweep end to end on tiny synthetic data: validation before anything
// runs, child runs, resume, changed configs, failures, and the report.
#include "pipeline/sweep/sweep_runner.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "common/errors.hpp"
#include "pipeline/sweep/child_process.hpp"
#include "pipeline/train/job.hpp"
#include "support/run_files.hpp"
#include "support/synthetic_idx.hpp"

#ifndef PRETEXT_BINARY
#error "PRETEXT_BINARY must name the pretext executable (tests/CMakeLists.txt)"
#endif

namespace pretext::sweep {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& file) { return testing::read_file(file); }

class SweepRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("sweep");
    const auto train = testing::write_synthetic_idx(dir_, "train", 240, 16, 4, 1);
    std::ofstream(dir_ / "base.toml") << "seed = 1\nthreads = 1\n"
                                      << "[data]\nsource = \"idx\"\npath = \"" << train.images.string() << "\"\n"
                                      << "test_path = \"\"\nlabelled = 40\nvalidation = 40\npad_to = 16\n"
                                      << "[pipeline]\nthreads = 1\n"
                                      << "[trainer]\nautocast = \"none\"\n"
                                      << "[model]\nplugin = \"conv4\"\nwidth = 8\n"
                                      << "[pretext]\nplugin = \"rotation\"\nepochs = 1\nbatch_size = 32\n"
                                      << "[transfer]\nmodes = [\"fixed\"]\nepochs = 2\nbatch_size = 16\n";
    out_ = dir_ / "out";
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write_sweep(const std::string& variants) {
    const fs::path file = dir_ / "sweep.toml";
    std::ofstream(file) << "title = \"tiny\"\nbase = \"base.toml\"\nchart_mode = \"fixed\"\n" << variants;
    return file;
  }

  SweepOutcome run(const fs::path& sweep, int jobs = 1) {
    SweepRequest request;
    request.sweep_file = sweep;
    request.out = out_;
    request.jobs = jobs;
    request.executable = PRETEXT_BINARY;
    request.hardware_threads = 2;
    Progress progress(log_, false);
    return run_sweep(request, progress);
  }

  static constexpr const char* kTwoVariants =
      "[[variants]]\nlabel = \"lr 0.01\"\nset = { \"transfer.head_lr\" = 0.01 }\n"
      "[[variants]]\nlabel = \"lr 0.001\"\nset = { \"transfer.head_lr\" = 0.001 }\n";

  fs::path dir_;
  fs::path out_;
  std::ostringstream log_;
};

TEST_F(SweepRun, UnknownKeyInAVariantIsRejectedBeforeAnythingRuns) {
  const auto sweep = write_sweep(std::string(kTwoVariants) +
                                 "[[variants]]\nlabel = \"typo\"\nset = { \"transfer.head_lrr\" = 0.1 }\n");
  try {
    run(sweep);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("variant 'typo' (" + sweep.string() + ":"), std::string::npos) << message;
    EXPECT_NE(message.find("head_lrr"), std::string::npos) << message;
    EXPECT_NE(message.find("head_lr"), std::string::npos) << message;
  }
  EXPECT_FALSE(fs::exists(out_)) << "nothing may run or be written before every variant validates";
}

TEST_F(SweepRun, RunsEveryVariantSideBySideThenResumesWithoutRerunning) {
  const auto sweep = write_sweep(kTwoVariants);
  const auto first = run(sweep, /*jobs=*/2);
  EXPECT_EQ(first.finished, 2);
  EXPECT_EQ(first.failed, 0);
  EXPECT_EQ(first.skipped, 0);
  EXPECT_TRUE(fs::exists(first.report));
  for (const char* slug : {"lr-0.01", "lr-0.001"}) {
    EXPECT_TRUE(fs::exists(out_ / slug / "summary.json")) << slug;
    // --jobs 2 on 2 hardware threads: one LibTorch thread each.
    const auto config = toml::parse_file((out_ / slug / "config.toml").string());
    EXPECT_EQ(config["threads"].value<std::int64_t>(), 1);
  }
  const auto manifest = toml::parse_file((out_ / "sweep-manifest.toml").string());
  ASSERT_EQ(manifest["variants"].as_array()->size(), 2U);
  EXPECT_EQ(manifest["variants"][0]["status"].value<std::string>(), "finished");
  EXPECT_EQ(manifest["variants"][1]["dir"].value<std::string>(), "lr-0.001");

  const std::string summary = read(out_ / "lr-0.01" / "summary.json");
  const auto written = fs::last_write_time(out_ / "lr-0.01" / "summary.json");
  // Interrupt the second variant: its directory exists, its summary does not.
  fs::remove(out_ / "lr-0.001" / "summary.json");
  std::ofstream(out_ / "lr-0.001" / "partial.tmp") << "left by a killed run";

  const auto second = run(sweep, /*jobs=*/1);  // another --jobs is not another experiment
  EXPECT_EQ(second.finished, 2);
  EXPECT_EQ(second.skipped, 1);
  EXPECT_EQ(read(out_ / "lr-0.01" / "summary.json"), summary);
  EXPECT_EQ(fs::last_write_time(out_ / "lr-0.01" / "summary.json"), written);
  EXPECT_TRUE(fs::exists(out_ / "lr-0.001" / "summary.json"));
  EXPECT_FALSE(fs::exists(out_ / "lr-0.001" / "partial.tmp")) << "an interrupted variant restarts from scratch";
}

TEST_F(SweepRun, TwoSweepsNeverRunIntoOneDirectory) {
  fs::create_directories(out_);
  const DirectoryLock other_sweep(out_);
  try {
    run(write_sweep(kTwoVariants));
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("another pretext sweep is running in " + out_.string()), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(out_ / "lr-0.01"));
}

TEST_F(SweepRun, AFinishedVariantWithAChangedConfigIsRefused) {
  run(write_sweep(kTwoVariants));
  const auto changed = write_sweep("[[variants]]\nlabel = \"lr 0.01\"\nset = { \"transfer.head_lr\" = 0.02 }\n");
  try {
    run(changed);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("already ran in"), std::string::npos) << e.what();
  }
}

TEST_F(SweepRun, AFailingVariantIsReportedAndTheOthersStillRunAndIdenticalConfigsShareARun) {
  // Valid config, impossible data request: only the run itself can find out.
  const auto sweep = write_sweep(std::string(kTwoVariants) +
                                 "[[variants]]\nlabel = \"too many\"\nset = { \"data.labelled\" = 100000 }\n"
                                 "[[variants]]\nlabel = \"baseline again\"\nset = { \"transfer.head_lr\" = 0.01 }\n");
  const auto outcome = run(sweep);
  EXPECT_EQ(outcome.finished, 2);
  EXPECT_EQ(outcome.failed, 1);
  const auto manifest = toml::parse_file((out_ / "sweep-manifest.toml").string());
  EXPECT_EQ(manifest["variants"][2]["status"].value<std::string>(), "failed");
  EXPECT_EQ(manifest["variants"][2]["exit_code"].value<std::int64_t>(), 2);
  EXPECT_EQ(manifest["variants"][3]["dir"].value<std::string>(), "lr-0.01");
  EXPECT_EQ(manifest["variants"][3]["same_run_as"].value<std::string>(), "lr 0.01");
  EXPECT_EQ(manifest["variants"][3]["status"].value<std::string>(), "finished");
  EXPECT_FALSE(fs::exists(out_ / "baseline-again"));
  EXPECT_NE(read(out_ / "logs" / "too-many.log").find("labelled"), std::string::npos);
  EXPECT_TRUE(fs::exists(outcome.report));
}

// Every shipped study (configs/studies/) validates: each sweep file's every
// variant on its own base, and the studies written on one of the base
// configs in configs/studies/ (Fashion-MNIST and SVHN) on each of those,
// plugins included. Nothing runs and no data is read.
TEST(ShippedStudies, AreValidOnEveryBase) {
  std::vector<fs::path> sweeps;
  std::vector<fs::path> bases;
  for (const auto& entry : fs::directory_iterator(PRETEXT_SOURCE_DIR "/configs/studies")) {
    if (entry.path().extension() != ".toml") continue;
    (toml::parse_file(entry.path().string()).contains("base") ? sweeps : bases).push_back(entry.path());
  }
  ASSERT_GE(sweeps.size(), 2U);
  ASSERT_GE(bases.size(), 2U);
  for (const auto& sweep : sweeps) {
    SCOPED_TRACE(sweep.string());
    SweepRequest own;
    own.sweep_file = sweep;
    EXPECT_GE(validate_sweep(own), 2U);
    const fs::path own_base = fs::weakly_canonical(
        sweep.parent_path() / toml::parse_file(sweep.string())["base"].value_or(std::string()));
    if (std::none_of(bases.begin(), bases.end(),
                     [&](const fs::path& base) { return fs::weakly_canonical(base) == own_base; }))
      continue;  // written for a config outside studies/ (e.g. ../semi-supervised.toml)
    for (const auto& base : bases) {
      SCOPED_TRACE("on " + base.string());
      SweepRequest request;
      request.sweep_file = sweep;
      request.base = base;
      EXPECT_GE(validate_sweep(request), 2U);
    }
  }
}

}  // namespace
}  // namespace pretext::sweep
