// End-to-end: a tiny run from a TOML file on synthetic data the test writes.
#include "pipeline/train/job.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "common/errors.hpp"
#include "pipeline/artefacts/png_grid.hpp"
#include "pipeline/train/assembled_run.hpp"
#include "pipeline/train/sample.hpp"
#include "pipeline/train/trainer.hpp"
#include "support/diverging_run.hpp"
#include "support/run_files.hpp"
#include "support/synthetic_idx.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

class TinyRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("job");
    train_ = testing::write_synthetic_idx(dir_, "train", 400, 16, 4, 1);
    test_ = testing::write_synthetic_idx(dir_, "test", 100, 16, 4, 2);
    config_ = dir_ / "tiny.toml";
    std::ofstream(config_) << "seed = 3\nthreads = 2\n"
                           << "[data]\nsource = \"idx\"\npath = \"" << train_.images.string() << "\"\n"
                           << "test_path = \"" << test_.images.string() << "\"\n"
                           << "labelled = 60\nvalidation = 60\npad_to = 16\n"
                           << "[pipeline]\nthreads = 2\n"
                           << "[trainer]\nautocast = \"none\"\n"
                           << "[model]\nplugin = \"conv4\"\nwidth = 8\n"
                           << "[pretext]\nplugin = \"rotation\"\nepochs = 3\nbatch_size = 32\nlr = 0.003\n"
                           << "stages = [{ name = \"color_jitter\" }]\n"
                           << "[transfer]\nmodes = [\"fixed\", \"finetuned\", \"scratch\"]\nepochs = 2\n"
                           << "batch_size = 16\n"
                           << "[transfer.loss]\nlabel_smoothing = 0.1\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  toml::table run(const fs::path& out, std::vector<std::string> overrides = {}) {
    Job job(JobRequest{config_, std::move(overrides), out});
    std::ostringstream log;
    Progress progress(log, false);
    return job.run(progress);
  }

  fs::path dir_;
  testing::SyntheticIdx train_;
  testing::SyntheticIdx test_;
  fs::path config_;
};

using testing::deterministic_metrics;
std::string read(const fs::path& file) { return testing::read_file(file); }

std::map<int, double> pretext_losses(const fs::path& file) {
  std::istringstream in(read(file));
  std::string line;
  std::map<int, double> losses;
  while (std::getline(in, line)) {
    if (line.rfind("pretext,", 0) != 0) continue;
    std::istringstream row(line);
    std::string phase, epoch, metric, value;
    std::getline(row, phase, ',');
    std::getline(row, epoch, ',');
    std::getline(row, metric, ',');
    std::getline(row, value, ',');
    if (metric == "loss") losses[std::stoi(epoch)] = std::stod(value);
  }
  return losses;
}

TEST_F(TinyRun, CompletesWithAFullRunDirectoryAndFallingPretextLoss) {
  const auto out = dir_ / "run";
  const auto summary = run(out);
  for (const char* name : {"config.toml", "metrics.csv", "pretext.pt", "backbone.pt", "summary.json", "summary.toml",
                           "report.html", "charts/transfer-val-accuracy.svg"})
    EXPECT_TRUE(fs::exists(out / name)) << name;

  for (const char* mode : {"fixed", "finetuned", "scratch"}) {
    const auto* m = summary["transfer"][mode].as_table();
    ASSERT_NE(m, nullptr) << mode;
    for (const char* key : {"val_accuracy", "test_accuracy"}) {
      const auto v = (*m)[key].value<double>();
      ASSERT_TRUE(v.has_value()) << mode << "." << key;
      EXPECT_GE(*v, 0.0);
      EXPECT_LE(*v, 1.0);
    }
  }
  EXPECT_TRUE(summary["pretext"]["final_loss"].value<double>().has_value());
  EXPECT_GT(summary["pretext"]["images_per_second"].value<double>().value_or(0.0), 0.0);
  EXPECT_TRUE(summary["wall_seconds"].value<double>().has_value());
  EXPECT_TRUE(summary["data_wait_fraction"].value<double>().has_value());

  const auto losses = pretext_losses(out / "metrics.csv");
  ASSERT_EQ(losses.size(), 3U);
  EXPECT_LT(losses.at(3), losses.at(1));

  // The written summary is the one returned, and the resolved config re-runs.
  EXPECT_NE(read(out / "summary.json").find("\"val_accuracy\""), std::string::npos);
  const auto resolved = toml::parse_file((out / "config.toml").string());
  EXPECT_EQ(resolved["transfer"]["loss"]["label_smoothing"].value<double>(), 0.1);
  EXPECT_EQ(resolved["model"]["dropout"].value<double>(), 0.3);  // a default, written out
}

TEST_F(TinyRun, SameSeedSameMetrics) {
  const std::vector<std::string> shorter = {"pretext.epochs=1", "transfer.modes=[\"finetuned\"]"};
  run(dir_ / "a", shorter);
  run(dir_ / "b", shorter);
  const auto a = deterministic_metrics(dir_ / "a" / "metrics.csv");
  EXPECT_GT(a.size(), 100U);
  EXPECT_EQ(a, deterministic_metrics(dir_ / "b" / "metrics.csv"));
}

TEST_F(TinyRun, AnotherSeedOtherMetrics) {
  const std::vector<std::string> shorter = {"pretext.epochs=1", "transfer.modes=[\"finetuned\"]"};
  run(dir_ / "a", shorter);
  auto other = shorter;
  other.push_back("seed=4");
  run(dir_ / "b", other);
  EXPECT_NE(deterministic_metrics(dir_ / "a" / "metrics.csv"), deterministic_metrics(dir_ / "b" / "metrics.csv"));
}

TEST_F(TinyRun, UnknownKeyFailsBeforeAnythingIsWritten) {
  const auto out = dir_ / "never";
  try {
    Job job(JobRequest{config_, {"transfer.epohcs=3"}, out});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'transfer.epochs'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(TinyRun, UnknownPluginOptionIsRejected) {
  try {
    Job job(JobRequest{config_, {"model.widht=3"}, dir_ / "never"});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'model.width'"), std::string::npos) << e.what();
  }
}

TEST_F(TinyRun, SplitLargerThanTheDataIsAnInputError) {
  try {
    Job job(JobRequest{config_, {"data.labelled=300", "data.validation=200"}, dir_ / "never"});
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("train-images-idx3-ubyte"), std::string::npos) << e.what();
  }
}

TEST_F(TinyRun, LabelledDrawPerClassTakesTheSameNumberOfEachClass) {
  // write_synthetic_idx labels image i as i % 4.
  const auto counts = [](const std::vector<std::uint32_t>& labelled) {
    std::vector<int> per_class(4, 0);
    for (const auto i : labelled) ++per_class[i % 4];
    return per_class;
  };
  const Job per_class(JobRequest{config_, {"data.labelled_draw=per_class"}, dir_ / "never"});
  EXPECT_EQ(counts(per_class.split().labelled), (std::vector<int>{15, 15, 15, 15}));
  EXPECT_EQ(per_class.split().validation.size(), 60U);
  const Job uniform(JobRequest{config_, {}, dir_ / "never"});  // the default: the study's uniform draw
  EXPECT_NE(counts(uniform.split().labelled), (std::vector<int>{15, 15, 15, 15}));
  EXPECT_EQ(uniform.split().labelled.size(), 60U);
  try {
    Job bad(JobRequest{config_, {"data.labelled_draw=balanced"}, dir_ / "never"});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.labelled_draw"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("per_class"), std::string::npos) << e.what();
  }
}

TEST_F(TinyRun, MissingDataFileIsAnInputError) {
  EXPECT_THROW(Job(JobRequest{config_, {"data.path=" + (dir_ / "nope-images-idx3-ubyte").string()}, dir_ / "x"}),
               InputError);
}

}  // namespace
}  // namespace pretext

namespace pretext {
namespace {

TEST_F(TinyRun, GanRunWritesSampleGridsAndGanMetrics) {
  const auto out = dir_ / "gan";
  const auto summary = run(out, {"pretext.plugin=gan", "pretext.epochs=2", "pretext.stages=[]", "pretext.latent_dim=8",
                                 "pretext.generator_width=4", "transfer.modes=[\"fixed\"]", "transfer.epochs=1"});
  for (const char* name : {"samples-epoch-1.png", "samples-epoch-2.png"}) {
    ASSERT_TRUE(fs::exists(out / name)) << name;
    const auto info = artefacts::read_png_info(out / name);
    EXPECT_EQ(info.width, 8U * 16U + 7U * 2U);  // 8 columns of 16 px, 2 px gaps
    EXPECT_EQ(info.height, 8U * 16U + 7U * 2U);
    EXPECT_EQ(info.channels, 1);
  }
  const std::string metrics = read(out / "metrics.csv");
  for (const char* metric : {"d_loss", "g_loss", "d_real", "d_fake"})
    EXPECT_NE(metrics.find(std::string("pretext,1,") + metric), std::string::npos) << metric;
  EXPECT_TRUE(summary["transfer"]["fixed"]["val_accuracy"].value<double>().has_value());

  // The generator is in the checkpoint: sample from the finished run, with
  // its data moved away (sampling reads config.toml, model.toml and pretext.pt only).
  fs::rename(train_.images, dir_ / "moved-images");
  fs::rename(test_.images, dir_ / "moved-test-images");
  sample_from_run(out, 10, dir_ / "ten.png");
  const auto info = artefacts::read_png_info(dir_ / "ten.png");
  EXPECT_EQ(info.width, 8U * 16U + 7U * 2U);
  EXPECT_EQ(info.height, 2U * 16U + 2U);  // two rows
  // The same draw twice: the sampler is seeded from the run's seed.
  sample_from_run(out, 10, dir_ / "ten-again.png");
  EXPECT_EQ(read(dir_ / "ten.png"), read(dir_ / "ten-again.png"));
}

TEST_F(TinyRun, ACosinePretextScheduleChangesTrainingAndIsRefusedForATaskThatMakesItsOwnOptimisers) {
  const std::vector<std::string> pretext_only = {"transfer.modes=[\"fixed\"]", "transfer.epochs=1"};
  auto with = [&](std::vector<std::string> overrides, const std::vector<std::string>& more) {
    overrides.insert(overrides.end(), more.begin(), more.end());
    return overrides;
  };
  run(dir_ / "constant", pretext_only);
  run(dir_ / "cosine", with(pretext_only, {"pretext.lr_schedule=\"cosine\""}));
  const auto constant = pretext_losses(dir_ / "constant" / "metrics.csv");
  const auto cosine = pretext_losses(dir_ / "cosine" / "metrics.csv");
  ASSERT_EQ(constant.size(), 3U);
  ASSERT_EQ(cosine.size(), 3U);
  // The first step is at the full rate either way; by the last epoch the
  // cosine run's rate is below a quarter of it, so its losses differ.
  EXPECT_NE(cosine.at(3), constant.at(3));
  EXPECT_NE(read(dir_ / "cosine" / "config.toml").find("lr_schedule = 'cosine'"), std::string::npos);

  // The GAN makes its two Adams itself: the host's schedule cannot reach them.
  try {
    run(dir_ / "gan", with(pretext_only, {"pretext.plugin=gan", "pretext.stages=[]", "pretext.latent_dim=8",
                                          "pretext.generator_width=4", "pretext.lr_schedule=\"cosine\""}));
    FAIL() << "a cosine schedule for the GAN was accepted";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("pretext.lr_schedule"), std::string::npos) << what;
    EXPECT_NE(what.find("'gan'"), std::string::npos) << what;
    EXPECT_NE(what.find("TrainingContext::make_optimizer"), std::string::npos) << what;
  }
}

TEST_F(TinyRun, AssemblingARunReadsNoData) {
  const std::vector<std::string> moved{"data.path=" + (dir_ / "gone-images-idx3-ubyte").string()};
  const AssembledRun run(config_, moved);  // config, options, plugins and components only
  ASSERT_NE(run.task(), nullptr);
  EXPECT_EQ(run.pretext_stages().size(), 1U);
  EXPECT_NE(run.resolved_config().find("gone-images"), std::string::npos);
  EXPECT_THROW(Job(JobRequest{config_, moved, dir_ / "never"}), InputError);  // a Job loads it
  // The model alone, for export and embed: the task's keys are not checked there.
  const AssembledRun model_only(config_, {"pretext.unknown_key=1"}, AssembledRun::Components::model);
  EXPECT_EQ(model_only.task(), nullptr);
  EXPECT_THROW(AssembledRun(config_, {"pretext.unknown_key=1"}), ConfigError);
}

TEST_F(TinyRun, RotationRunWritesNoSampleGrid) {
  const auto out = dir_ / "rotation";
  run(out, {"pretext.epochs=1", "transfer.modes=[]"});
  EXPECT_FALSE(fs::exists(out / "samples-epoch-1.png"));
  EXPECT_THROW(sample_from_run(out, 4, dir_ / "none.png"), InputError);
}

}  // namespace
}  // namespace pretext

namespace pretext {
namespace {

TEST_F(TinyRun, DivergingLossStopsTheRunAndKeepsTheLastGoodCheckpoint) {
  const auto out = dir_ / "diverging";
  // 280 unlabelled images in batches of 32: 8 steps an epoch; step 13 is epoch 2, step 5.
  const std::vector<std::string> overrides = {"plugins.search_path=[\"" PRETEXT_TEST_PLUGIN_DIR "\"]",
                                              "pretext.plugin=diverging", "pretext.nan_after_steps=12",
                                              "pretext.epochs=3", "pretext.stages=[]"};
  const std::string message = testing::run_until_diverged(JobRequest{config_, overrides, out});
  ASSERT_FALSE(message.empty()) << "expected TrainingDiverged";
  EXPECT_NE(message.find("loss is nan"), std::string::npos) << message;
  EXPECT_NE(message.find("epoch 2, step 5"), std::string::npos) << message;
  EXPECT_NE(message.find("from epoch 1"), std::string::npos) << message;
  ASSERT_TRUE(fs::exists(out / "pretext.pt"));
  torch::serialize::InputArchive archive;
  archive.load_from((out / "pretext.pt").string());
  torch::Tensor steps;
  archive.read("steps", steps);
  EXPECT_EQ(steps.item<std::int64_t>(), 8);  // the state after epoch 1, not a half-diverged one
  EXPECT_FALSE(fs::exists(out / "summary.json"));
}

}  // namespace
}  // namespace pretext

namespace pretext {
namespace {

// Every shipped config must stay valid: keys, values and plugins. The data
// paths are pointed at the synthetic files (the real ones may be absent).
// ---- the semi-supervised modes ----------------------------------------------

// A mode of no epochs reports its starting networks' validation accuracy
// (best epoch 0), not a 0 that was never measured.
TEST_F(TinyRun, ATransferOfNoEpochsReportsTheAccuracyOfTheNetworksItStartsWith) {
  const auto summary =
      run(dir_ / "none", {"pretext.epochs=1", R"(transfer.modes=["fixed", "semi"])", "transfer.epochs=0",
                          "transfer.semi.epochs=0", R"(transfer.semi.strong_stages=[{ name = "rand_augment" }])"});
  for (const char* mode : {"fixed", "semi"}) {
    const auto* result = summary["transfer"][mode].as_table();
    ASSERT_NE(result, nullptr) << mode;
    EXPECT_GT((*result)["val_accuracy"].value_or(0.0), 0.0) << mode;
    EXPECT_EQ((*result)["best_epoch"].value_or(std::int64_t{-1}), 0) << mode;
    EXPECT_EQ((*result)["best_val_accuracy"].value_or(-1.0), (*result)["val_accuracy"].value_or(-2.0)) << mode;
  }
}

TEST_F(TinyRun, SemiSupervisedModesRecordMaskRateAndPseudoLabelAccuracyAndSaveTheirNetworks) {
  const auto out = dir_ / "semi";
  const auto summary =
      run(out, {"pretext.epochs=1", R"(transfer.modes=["semi", "semi_scratch"])", "transfer.semi.epochs=2",
                "transfer.semi.steps_per_epoch=3", "transfer.semi.mu=2", "transfer.semi.threshold=0.3",
                R"(transfer.semi.strong_stages=[{ name = "rand_augment" }])"});
  for (const char* mode : {"semi", "semi_scratch"}) {
    SCOPED_TRACE(mode);
    ASSERT_TRUE(summary["transfer"][mode]["val_accuracy"].value<double>().has_value());
    ASSERT_TRUE(summary["transfer"][mode]["test_accuracy"].value<double>().has_value());
    EXPECT_TRUE(fs::exists(artefacts::RunLayout(out).transfer_networks(mode)));
  }
  const std::string metrics = read(out / "metrics.csv");
  for (const char* row : {"transfer.semi,1,mask_rate,", "transfer.semi,2,mask_rate,",
                          "transfer.semi,2,pseudo_label_accuracy,", "transfer.semi_scratch,2,val_accuracy,",
                          "transfer.semi,2,live_val_accuracy,"})  // ema_decay's default: the average is evaluated
    EXPECT_NE(metrics.find(row), std::string::npos) << row << " missing from\n" << metrics;
}

/// The ConfigError message of a run whose config ends with `extra`.
std::string config_error(const fs::path& config, const std::string& extra, const fs::path& out) {
  std::ofstream(config, std::ios::app) << extra;
  try {
    Job job(JobRequest{config, {}, out});
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no ConfigError)";
}

TEST_F(TinyRun, SemiSupervisedMistakesAreConfigErrorsNamingFileLineAndKey) {
  const std::string base = read(config_);
  const int next_line = static_cast<int>(std::count(base.begin(), base.end(), '\n')) + 1;
  struct Case {
    std::string extra;
    int line;  // of the bad key, counted from the end of the base config
    std::string key;
  };
  const std::vector<Case> cases = {
      {"[transfer.semi]\nthreshold = 0.0\n", 1, "transfer.semi.threshold"},
      {"[transfer.semi]\nthreshold = 1.5\n", 1, "transfer.semi.threshold"},
      {"[transfer.semi]\nmu = 0\n", 1, "transfer.semi.mu"},
      {"[transfer.semi]\ndistribution_alignment = \"yes\"\n", 1, "transfer.semi.distribution_alignment"},
      {"[transfer.semi]\nalignment_momentum = 1.0\n", 1, "transfer.semi.alignment_momentum"},
      {"[transfer.semi]\nlabelled_view = \"strongest\"\n", 1, "transfer.semi.labelled_view"},
      {"[transfer.semi]\npseudo_labeller = \"teacher\"\n", 1, "transfer.semi.pseudo_labeller"},
      {"[transfer.semi]\nema_decay = 0.0\npseudo_labeller = \"average\"\n", 2, "transfer.semi.pseudo_labeller"},
      {"[transfer.semi]\nstrong_stages = [{ name = \"rand_augment\", magnitude = 11 }]\n", 1,
       "transfer.semi.strong_stages[0].magnitude"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.extra);
    std::ofstream(config_) << base;
    const std::string message = config_error(config_, c.extra, dir_ / "never");
    EXPECT_NE(message.find("tiny.toml:" + std::to_string(next_line + c.line) + ":"), std::string::npos) << message;
    EXPECT_NE(message.find(c.key), std::string::npos) << message;
  }
  // A semi-supervised mode needs a strong view.
  std::ofstream(config_) << base;
  const std::string no_strong = config_error(config_, "", dir_ / "never");  // the base has no semi mode: fine
  EXPECT_EQ(no_strong, "(no ConfigError)");
  try {
    Job job(JobRequest{config_, {R"(transfer.modes=["semi"])"}, dir_ / "never"});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("transfer.semi.strong_stages: expected the strong view's stages"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "never"));
}

TEST_F(TinyRun, ASemiSupervisedModeWithNoUnlabelledImagesIsAConfigError) {
  // 400 images: 200 labelled and 200 for validation leave none unlabelled.
  try {
    Job job(
        JobRequest{config_,
                   {"pretext.epochs=0", "data.labelled=200", "data.validation=200",
                    R"(transfer.modes=["semi_scratch"])", R"(transfer.semi.strong_stages=[{ name = "rand_augment" }])"},
                   dir_ / "never"});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("transfer.modes: the semi-supervised mode 'semi_scratch' trains on unlabelled images"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("--set transfer.modes="), std::string::npos) << "names where the mode was set: " << message;
  }
  EXPECT_FALSE(fs::exists(dir_ / "never"));
}

TEST_F(TinyRun, ShippedConfigsAreValid) {
  std::size_t checked = 0;
  for (const auto& entry : fs::directory_iterator(PRETEXT_SOURCE_DIR "/configs")) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    Job job(
        JobRequest{entry.path(),
                   {"data.source=idx", "data.path=" + train_.images.string(), "data.test_path=" + test_.images.string(),
                    "data.labelled=60", "data.validation=60", "data.pad_to=16"},
                   dir_ / "unused"});
    EXPECT_NE(job.resolved_config().find("[transfer]"), std::string::npos);
    ++checked;
  }
  EXPECT_GE(checked, 4U);
}

}  // namespace
}  // namespace pretext
