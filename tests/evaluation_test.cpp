// kNN accuracy and the linear probe on frozen features: hand-predictable
// synthetic features, real conv4 feature shapes, the [evaluation] options and
// the summary of a tiny run.
#include "pipeline/train/evaluation.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <sstream>

#include "pipeline/config/section.hpp"
#include "common/errors.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/train/job.hpp"
#include "support/synthetic_idx.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

constexpr double kDegree = 3.14159265358979323846 / 180.0;

// 2-D unit features at the given angles (degrees), one row each.
torch::Tensor at_angles(const std::vector<double>& degrees) {
  auto out = torch::empty({static_cast<std::int64_t>(degrees.size()), 2}, torch::kFloat);
  for (std::size_t i = 0; i < degrees.size(); ++i) {
    out[static_cast<std::int64_t>(i)][0] = std::cos(degrees[i] * kDegree);
    out[static_cast<std::int64_t>(i)][1] = std::sin(degrees[i] * kDegree);
  }
  return out;
}

torch::Tensor labels_of(const std::vector<std::int64_t>& labels) { return torch::tensor(labels, torch::kLong); }

std::int64_t knn_label(const torch::Tensor& bank, const std::vector<std::int64_t>& labels, double query_degrees,
                       std::int64_t k, std::int64_t classes = 3) {
  return knn_predict(bank, labels_of(labels), at_angles({query_degrees}), k, classes)[0].item<std::int64_t>();
}

// Noisy copies of one direction per class, scaled at random (cosine
// similarity must not care about the length).
LabelledTensors class_directions(const torch::Tensor& directions, std::int64_t per_class, double noise) {
  const std::int64_t classes = directions.size(0);
  const auto labels = torch::arange(classes, torch::kLong).repeat({per_class});
  const auto lengths = torch::rand({labels.size(0), 1}) * 4 + 0.5;
  const auto features =
      (directions.index_select(0, labels) + noise * torch::randn({labels.size(0), directions.size(1)})) * lengths;
  return {features, labels};
}

TEST(Knn, NoisyCopiesOfClassDirectionsAreAllRecognised) {
  torch::manual_seed(0);
  const auto directions = torch::randn({4, 16});
  const auto bank = class_directions(directions, 10, 0.1);
  // 3,000 queries, shuffled: several similarity chunks, each with its own labels.
  const auto unshuffled = class_directions(directions, 750, 0.1);
  const auto order = torch::randperm(3000, torch::kLong);
  const LabelledTensors queries{unshuffled.images.index_select(0, order), unshuffled.labels.index_select(0, order)};
  const auto predicted = knn_predict(bank.images, bank.labels, queries.images, 5, 4);
  ASSERT_EQ(predicted.size(0), 3000);
  EXPECT_DOUBLE_EQ(accuracy(predicted, queries.labels), 1.0);
}

TEST(Knn, KDecidesBetweenTheNearestAndTheMajority) {
  // Query at 3 degrees: class 0 at 0 is nearest; class 1 at 10 and 15 comes next.
  const auto bank = at_angles({0, 10, 15, 90, 100});
  const std::vector<std::int64_t> labels = {0, 1, 1, 2, 2};
  EXPECT_EQ(knn_label(bank, labels, 3, 1), 0);
  EXPECT_EQ(knn_label(bank, labels, 3, 3), 1);
  EXPECT_EQ(knn_label(bank, labels, 95, 3), 2);
  // k beyond the bank: all five vote; classes 1 and 2 tie 2:2, and class 1's
  // neighbours are far more similar.
  EXPECT_EQ(knn_label(bank, labels, 3, 1000), 1);
}

TEST(Knn, TiedVotesGoToTheClassMoreSimilarInSum) {
  // k = 4 around 0 degrees: class A at 5 and 40 (sum cos 1.76), class B at 10
  // and 12 (1.96). 2:2 votes; B wins though A holds the nearest neighbour.
  const auto bank = at_angles({5, 40, 10, 12, 90, 95});
  EXPECT_EQ(knn_label(bank, {0, 0, 1, 1, 2, 2}, 0, 4), 1);
  EXPECT_EQ(knn_label(bank, {1, 1, 0, 0, 2, 2}, 0, 4), 0);  // not the lower class: the more similar one
  // The bank's order does not matter.
  const auto reordered = at_angles({12, 90, 40, 5, 95, 10});
  EXPECT_EQ(knn_label(reordered, {1, 2, 0, 0, 2, 1}, 0, 4), 1);
}

TEST(Knn, ExactTiesGoToTheLowerClassWhateverTheOrder) {
  const auto bank = at_angles({10, -10, 90});  // mirror images: equal similarity to 0 degrees
  EXPECT_EQ(knn_label(bank, {1, 0, 2}, 0, 2), 0);
  EXPECT_EQ(knn_label(bank, {0, 1, 2}, 0, 2), 0);
  EXPECT_EQ(knn_label(bank, {2, 1, 0}, 0, 2), 1);
}

// Three classes, separable in three of six dimensions, on wildly different
// scales and offsets: only standardised features train well in few steps.
LabelledTensors separable(std::int64_t per_class) {
  const auto labels = torch::arange(3, torch::kLong).repeat({per_class});
  auto features = 2.0 * torch::eye(3, 6).index_select(0, labels) + 0.3 * torch::randn({labels.size(0), 6});
  features = features * torch::tensor({1000.0F, 0.001F, 1.0F, 50.0F, 1.0F, 1.0F}) +
             torch::tensor({5000.0F, 0.5F, -20.0F, 100.0F, 0.0F, 3.0F});
  return {features, labels};
}

TEST(LinearProbe, SeparableFeaturesAreAllClassifiedHeldOutToo) {
  torch::manual_seed(1);
  const auto train = separable(20);
  const auto test = separable(200);
  const auto probe = LinearProbe::fit(train.images, train.labels, 3, 1e-4, 100);
  EXPECT_DOUBLE_EQ(accuracy(probe.predict(train.images), train.labels), 1.0);
  EXPECT_DOUBLE_EQ(accuracy(probe.predict(test.images), test.labels), 1.0);
}

TEST(LinearProbe, FeaturesWithoutSignalFitTheTrainingSetButPredictAtChance) {
  torch::manual_seed(2);
  const auto train_labels = torch::arange(4, torch::kLong).repeat({25});
  const auto train = torch::randn({100, 64});
  const auto probe = LinearProbe::fit(train, train_labels, 4, 1e-4, 200);
  EXPECT_GT(accuracy(probe.predict(train), train_labels), 0.9);  // 260 parameters for 100 points
  const auto test_labels = torch::arange(4, torch::kLong).repeat({1000});
  const double held_out = accuracy(probe.predict(torch::randn({4000, 64})), test_labels);
  EXPECT_GT(held_out, 0.2);
  EXPECT_LT(held_out, 0.3);
}

TEST(LinearProbe, SameDataSameProbe) {
  torch::manual_seed(3);
  const auto train = separable(10);
  const auto train_noise = train.images + 2000.0 * torch::randn_like(train.images);  // not separable
  const auto a = LinearProbe::fit(train_noise, train.labels, 3, 1e-3, 30);
  torch::manual_seed(99);  // the global RNG plays no part
  const auto b = LinearProbe::fit(train_noise, train.labels, 3, 1e-3, 30);
  EXPECT_EQ(a.final_loss(), b.final_loss());
  const auto probe_points = torch::randn({50, 6}) * 3000 + 5000;
  EXPECT_TRUE(torch::equal(a.predict(probe_points), b.predict(probe_points)));
  EXPECT_GT(a.final_loss(), 0.0);
}

TEST(LinearProbe, IterationsAndTheL2PenaltyShapeTheObjective) {
  torch::manual_seed(4);
  const auto train = separable(20);
  auto loss_after = [&](std::int64_t iterations) {
    return LinearProbe::fit(train.images, train.labels, 3, 1e-3, iterations).final_loss();
  };
  const double one = loss_after(1);
  const double three = loss_after(3);
  const double many = loss_after(50);
  EXPECT_LT(one, std::log(3.0));  // below the zero start's loss
  EXPECT_GT(three, many + 0.05);
  EXPECT_NEAR(many, loss_after(200), 1e-4);  // converged: the problem is convex
  // A heavy penalty keeps the weights, and so the margin, small.
  const double penalised = LinearProbe::fit(train.images, train.labels, 3, 10.0, 50).final_loss();
  EXPECT_GT(penalised, 2 * many);
}

class Conv4Features : public ::testing::Test {
 protected:
  void SetUp() override {
    auto document = config::Document::parse("width = 8\ndropout = 0.5\n", "model.toml");
    config::Section options(document, "");
    host_.set_search_path({PRETEXT_BUILTIN_PLUGIN_DIR});
    model_ = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), options);
    torch::manual_seed(0);
    backbone_ = model_->make_backbone({ImageShape{1, 32, 32}});
    backbone_->train();
    backbone_->forward(torch::rand({8, 1, 32, 32}));  // non-trivial batch-norm statistics
    data_.images = torch::rand({20, 1, 32, 32});
    data_.labels = torch::zeros({20}, torch::kLong);
  }

  PluginHost host_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<Backbone> backbone_;
  LabelledTensors data_;
};

TEST_F(Conv4Features, FlattenIsChannelsTimesHeightTimesWidthAndAvgPoolItsChannelMeans) {
  Compute compute;  // channels-last, as runs use by default
  const auto flat = extract_features(*backbone_, data_, compute, FeaturePooling::flatten, 7);
  const auto pooled = extract_features(*backbone_, data_, compute, FeaturePooling::avg_pool, 7);
  ASSERT_EQ(flat.sizes(), (std::vector<std::int64_t>{20, 8 * 2 * 2}));
  ASSERT_EQ(pooled.sizes(), (std::vector<std::int64_t>{20, 8}));
  EXPECT_EQ(flat.dtype(), torch::kFloat);
  EXPECT_TRUE(flat.device().is_cpu());
  EXPECT_FALSE(flat.requires_grad());
  const auto maps = extract_feature_maps(*backbone_, data_, compute, 6);
  ASSERT_EQ(maps.sizes(), (std::vector<std::int64_t>{20, 8, 2, 2}));
  EXPECT_TRUE(torch::allclose(pool_features(maps, FeaturePooling::avg_pool), pooled, 1e-5, 1e-6));
  // (C, H, W) order, whatever the memory layout.
  EXPECT_TRUE(torch::allclose(pooled, flat.view({20, 8, 4}).mean(2), 1e-5, 1e-6));
  Compute contiguous;
  contiguous.channels_last = false;
  EXPECT_TRUE(
      torch::allclose(flat, extract_features(*backbone_, data_, contiguous, FeaturePooling::flatten), 1e-4, 1e-5));
}

TEST_F(Conv4Features, EvalModeMakesFeaturesDeterministicAndBatchIndependentThenRestoresTraining) {
  Compute compute;
  const auto whole = extract_features(*backbone_, data_, compute, FeaturePooling::flatten, 500);
  const auto batched = extract_features(*backbone_, data_, compute, FeaturePooling::flatten, 3);
  EXPECT_TRUE(torch::allclose(whole, batched, 1e-5, 1e-6));  // dropout off, running batch-norm statistics
  EXPECT_TRUE(backbone_->is_training());
  EXPECT_EQ(extract_features(*backbone_, LabelledTensors{}, compute, FeaturePooling::avg_pool).sizes(),
            (std::vector<std::int64_t>{0, 8}));
}

// ----------------------------------------------------------- options -------

std::string config_error(const std::string& toml) {
  auto document = config::Document::parse(toml, "run.toml");
  try {
    RunSections sections(document);
    read_run_options(sections);
    sections.finish();
  } catch (const ConfigError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected a ConfigError for " << toml;
  return {};
}

TEST(EvaluationOptions, DefaultsAreBothEvaluationsOnCheapSettings) {
  auto document = config::Document::parse("", "run.toml");
  RunSections sections(document);
  const EvaluationOptions e = read_run_options(sections).evaluation;
  EXPECT_TRUE(e.knn);
  EXPECT_TRUE(e.linear_probe);
  EXPECT_TRUE(e.random_init);
  EXPECT_EQ(e.knn_k, 20);
  EXPECT_EQ(e.knn_features, "flatten");
  EXPECT_EQ(e.linear_probe_features, "avg_pool");
  EXPECT_DOUBLE_EQ(e.linear_probe_l2, 1e-4);
  EXPECT_EQ(e.linear_probe_iterations, 200);
}

TEST(EvaluationOptions, BadValuesAreRejectedWithFileLineAndKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"knn_k = 0", "evaluation.knn_k: expected an integer in [1, 1000]"},
      {"knn_k = 1001", "evaluation.knn_k"},
      {"knn = \"yes\"", "evaluation.knn"},
      {"knn_features = \"max_pool\"", "evaluation.knn_features"},
      {"linear_probe_features = \"mean\"", "evaluation.linear_probe_features"},
      {"linear_probe_l2 = -1.0", "evaluation.linear_probe_l2"},
      {"linear_probe_iterations = 0", "evaluation.linear_probe_iterations"},
      {"linear_probe_iterations = 10001", "evaluation.linear_probe_iterations"},
  };
  for (const auto& [line, expected] : cases) {
    const std::string message = config_error("seed = 1\n[evaluation]\n" + line + "\n");
    EXPECT_EQ(message.rfind("run.toml:3:", 0), 0U) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
  const std::string unknown = config_error("[evaluation]\nknn_kk = 3\n");
  EXPECT_NE(unknown.find("did you mean 'evaluation.knn_k'"), std::string::npos) << unknown;
}

// ----------------------------------------------------------- the job -------

class EvaluatedRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("evaluation");
    const auto train = testing::write_synthetic_idx(dir_, "train", 300, 16, 4, 1);
    const auto test = testing::write_synthetic_idx(dir_, "test", 80, 16, 4, 2);
    config_ = dir_ / "tiny.toml";
    std::ofstream(config_) << "seed = 5\nthreads = 2\n"
                           << "[data]\npath = \"" << train.images.string() << "\"\n"
                           << "test_path = \"" << test.images.string() << "\"\n"
                           << "labelled = 60\nvalidation = 60\npad_to = 16\n"
                           << "[pipeline]\nthreads = 2\n"
                           << "[model]\nwidth = 8\n"
                           << "[pretext]\nepochs = 1\nbatch_size = 32\n"
                           << "[transfer]\nmodes = []\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  toml::table run(const std::string& name, std::vector<std::string> overrides = {}) {
    Job job(JobRequest{config_, std::move(overrides), dir_ / name});
    Progress progress(log_, false);
    return job.run(progress);
  }
  std::string metrics(const std::string& name) const {
    std::ifstream in(dir_ / name / "metrics.csv");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  fs::path dir_;
  fs::path config_;
  std::ostringstream log_;
};

TEST_F(EvaluatedRun, SummaryMetricsAndLogHoldBothEvaluationsForPretextAndRandomInit) {
  const auto summary = run("run");
  const auto* evaluation = summary["evaluation"].as_table();
  ASSERT_NE(evaluation, nullptr);
  for (const char* name : {"knn", "linear_probe", "knn_random_init", "linear_probe_random_init"}) {
    for (const char* key : {"val_accuracy", "test_accuracy"}) {
      const auto value = (*evaluation)[name][key].value<double>();
      ASSERT_TRUE(value.has_value()) << name << "." << key;
      EXPECT_GE(*value, 0.0);
      EXPECT_LE(*value, 1.0);
    }
    EXPECT_NE(metrics("run").find(std::string(name) + ",0,val_accuracy,"), std::string::npos) << name;
    EXPECT_NE(log_.str().find(std::string(name) + " ("), std::string::npos) << log_.str();
  }
  EXPECT_EQ((*evaluation)["knn"]["k"].value<std::int64_t>(), 20);
  // The features are learnable: a kNN on the bar images beats chance (0.25) by far.
  EXPECT_GT((*evaluation)["knn"]["val_accuracy"].value<double>().value_or(0.0), 0.5);
}

TEST_F(EvaluatedRun, NoTestFileNoTestAccuracyAndKAtMostTheLabelledImages) {
  const auto summary = run("no-test", {"data.test_path=\"\"", "evaluation.knn_k=100", "evaluation.random_init=false",
                                       "evaluation.linear_probe=false"});
  const auto* knn = summary["evaluation"]["knn"].as_table();
  ASSERT_NE(knn, nullptr);
  EXPECT_TRUE((*knn)["val_accuracy"].value<double>().has_value());
  EXPECT_FALSE(knn->contains("test_accuracy"));
  EXPECT_EQ((*knn)["k"].value<std::int64_t>(), 60);
  EXPECT_FALSE(summary["evaluation"]["linear_probe"].as_table());
  EXPECT_FALSE(summary["evaluation"]["knn_random_init"].as_table());
}

TEST_F(EvaluatedRun, SwitchedOffLeavesNoEvaluationSection) {
  const auto summary = run("off", {"evaluation.knn=false", "evaluation.linear_probe=false"});
  EXPECT_FALSE(summary.contains("evaluation"));
  EXPECT_EQ(metrics("off").find("knn"), std::string::npos);
}

}  // namespace
}  // namespace pretext
