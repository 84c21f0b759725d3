// The semi-supervised transfer modes (FixMatch): the pseudo-label loss on
// hand-made logits, the weight average, and, on a synthetic set where two
// labels per class are not enough but the unlabelled images lie along clear
// clusters, semi-supervised training against labelled-only training.
#include "pipeline/train/semi_supervised.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "pipeline/config/section.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/report/metrics_reader.hpp"
#include "pipeline/train/job.hpp"
#include "pipeline/train/transfer.hpp"
#include "support/synthetic_idx.hpp"
#include "support/test_images.hpp"

namespace pretext {
namespace {

TEST(PseudoLabels, ExactlyTheRowsAtOrAboveTheThresholdCountAndTheLossIsTheirMeanCrossEntropy) {
  // Weak-view probabilities: row 0 sure of class 0 (0.96), row 1 unsure
  // (uniform), row 2 sure of class 1 (0.98), row 3 just below the threshold (0.89).
  const auto weak =
      torch::log(
          torch::tensor(
              {{0.96F, 0.02F, 0.02F}, {1.0F / 3, 1.0F / 3, 1.0F / 3}, {0.01F, 0.98F, 0.01F}, {0.055F, 0.055F, 0.89F}}))
          .requires_grad_(true);
  // Strong-view logits: row 0 uniform (CE = ln 3), row 2 with p(class 1) = 3/5 (CE = ln 5/3).
  const auto strong = torch::tensor({{0.0F, 0.0F, 0.0F},
                                     {5.0F, 0.0F, 0.0F},
                                     {0.0F, static_cast<float>(std::log(3.0)), 0.0F},
                                     {0.0F, 0.0F, -7.0F}})
                          .requires_grad_(true);
  const PseudoLabels pseudo = pseudo_label_loss(weak, strong, 0.9);
  EXPECT_TRUE(torch::equal(pseudo.mask, torch::tensor({1.0F, 0.0F, 1.0F, 0.0F})));
  EXPECT_EQ(pseudo.kept, 2);
  EXPECT_EQ(pseudo.targets[0].item<std::int64_t>(), 0);
  EXPECT_EQ(pseudo.targets[2].item<std::int64_t>(), 1);
  // Mean over all four rows, the masked ones contributing 0.
  const double expected = (std::log(3.0) + std::log(5.0 / 3.0)) / 4.0;
  EXPECT_NEAR(pseudo.loss.item<double>(), expected, 1e-6);

  pseudo.loss.backward();
  EXPECT_FALSE(weak.grad().defined()) << "the pseudo-labels are targets: no gradient flows into the weak view";
  ASSERT_TRUE(strong.grad().defined());
  EXPECT_EQ(strong.grad()[1].abs().sum().item<float>(), 0.0F) << "a masked row trains nothing";
  EXPECT_EQ(strong.grad()[3].abs().sum().item<float>(), 0.0F);
  EXPECT_GT(strong.grad()[0].abs().sum().item<float>(), 0.0F);

  EXPECT_EQ(pseudo_label_loss(weak, strong, 1.0).kept, 0) << "nothing is that sure";
  EXPECT_EQ(pseudo_label_loss(weak, strong, 0.3).kept, 4);
}

TEST(SelfAdaptiveThreshold, FollowsTheConfidenceGloballyAndPerClassAsHandComputed) {
  SelfAdaptiveThreshold threshold(2, 0.5);
  EXPECT_DOUBLE_EQ(threshold.global_level(), 0.5) << "starts at 1 / classes";
  // Rows predict class 0 (0.9) and class 1 (0.7). Batch: mean top 0.8, class means 0.6 and 0.4.
  const torch::Tensor p = torch::tensor({0.9F, 0.1F, 0.3F, 0.7F}).reshape({2, 2});
  const torch::Tensor t = threshold(p);
  // global 0.5 * 0.5 + 0.5 * 0.8 = 0.65; classes 0.55 and 0.45; class 1 scaled by 0.45 / 0.55.
  EXPECT_NEAR(threshold.global_level(), 0.65, 1e-6);  // float probabilities
  ASSERT_EQ(t.size(0), 2);
  EXPECT_NEAR(t[0].item<double>(), 0.65, 1e-6);
  EXPECT_NEAR(t[1].item<double>(), 0.65 * 0.45 / 0.55, 1e-6);
  // A second batch moves the averages on: only class 0, all sure.
  const torch::Tensor sure = torch::tensor({1.0F, 0.0F}).reshape({1, 2});
  const torch::Tensor t2 = threshold(sure);
  EXPECT_NEAR(threshold.global_level(), 0.5 * 0.65 + 0.5 * 1.0, 1e-6);
  EXPECT_NEAR(t2[0].item<double>(), 0.825, 1e-6) << "class 0 now leads, so its bar is the global level";
}

TEST(SelfAdaptiveThreshold, LowersTheBarForTheClassTheModelIsUnsureOf) {
  SelfAdaptiveThreshold threshold(2, 0.5);
  const torch::Tensor weak_logits = torch::log(torch::tensor({0.9F, 0.1F, 0.3F, 0.7F}).reshape({2, 2}));
  const torch::Tensor strong_logits = torch::zeros({2, 2});
  // A fixed 0.95 keeps neither row; the adaptive bars (0.65 and 0.53) keep both.
  EXPECT_EQ(pseudo_label_loss(weak_logits, strong_logits, 0.95).kept, 0);
  const PseudoLabels adaptive =
      pseudo_label_loss(weak_logits, strong_logits, [&](const torch::Tensor& p) { return threshold(p); });
  EXPECT_EQ(adaptive.kept, 2);
  EXPECT_NEAR(adaptive.loss.item<double>(), std::log(2.0), 1e-6) << "uniform strong logits: CE ln 2 per kept row";
}

TEST(DistributionAlignment, ScalesByTheTargetOverTheMovingAverageAsHandComputed) {
  DistributionAlignment align(torch::tensor({1.0, 1.0}), 0.5);  // normalised to 0.5, 0.5
  EXPECT_FALSE(align.average().defined()) << "no batch seen yet";
  // Batch mean 0.7, 0.3: the first batch sets the average.
  const torch::Tensor a = align(torch::tensor({0.8F, 0.2F, 0.6F, 0.4F}).reshape({2, 2}));
  EXPECT_TRUE(torch::allclose(align.average(), torch::tensor({0.7, 0.3}, torch::kDouble)));
  // Row 0: (0.8 / 0.7, 0.2 / 0.3) x 0.5 = (0.5714, 0.3333), renormalised; row 1 likewise.
  EXPECT_NEAR(a[0][0].item<double>(), (0.8 / 0.7) / (0.8 / 0.7 + 0.2 / 0.3), 1e-6);
  EXPECT_NEAR(a[1][0].item<double>(), (0.6 / 0.7) / (0.6 / 0.7 + 0.4 / 0.3), 1e-6);
  EXPECT_EQ(a.argmax(1)[1].item<std::int64_t>(), 1) << "the over-predicted class 0 loses row 1";
  EXPECT_TRUE(torch::allclose(a.sum(1), torch::ones({2})));
  // Second batch (0.5, 0.5): average 0.5 x (0.7, 0.3) + 0.5 x (0.5, 0.5) = (0.6, 0.4).
  const torch::Tensor b = align(torch::tensor({0.5F, 0.5F}).reshape({1, 2}));
  EXPECT_TRUE(torch::allclose(align.average(), torch::tensor({0.6, 0.4}, torch::kDouble)));
  EXPECT_NEAR(b[0][0].item<double>(), (0.5 / 0.6) / (0.5 / 0.6 + 0.5 / 0.4), 1e-6);  // 0.4
}

TEST(DistributionAlignment, PullsThePseudoLabelsToTheLabelledClassProportions) {
  // Every row leans to class 0; the labelled images are half and half.
  const torch::Tensor p = torch::tensor({0.9F, 0.1F, 0.8F, 0.2F, 0.7F, 0.3F, 0.6F, 0.4F}).reshape({4, 2});
  const torch::Tensor strong = torch::zeros({4, 2});
  const PseudoLabels plain = pseudo_label_loss_from_probabilities(p, strong, torch::scalar_tensor(0.0));
  EXPECT_EQ(plain.targets.sum().item<std::int64_t>(), 0) << "all four pseudo-labels say class 0";
  // Average (0.75, 0.25): class 0 scaled by 2/3, class 1 by 2, so rows 2 and 3 turn.
  DistributionAlignment balanced(torch::tensor({250.0, 250.0}), 0.0);
  const PseudoLabels aligned = pseudo_label_loss_from_probabilities(balanced(p), strong, torch::scalar_tensor(0.0));
  EXPECT_TRUE(torch::equal(aligned.targets, torch::tensor({0, 0, 1, 1}, torch::kLong)));
  // A labelled set of 3 to 1 asks for that share: the same batch then stays with class 0 but for row 3.
  DistributionAlignment skewed(torch::tensor({3.0, 1.0}), 0.0);
  EXPECT_TRUE(torch::equal(skewed(p).argmax(1), torch::tensor({0, 0, 0, 0}, torch::kLong)));
  EXPECT_TRUE(torch::allclose(skewed(torch::tensor({0.5F, 0.5F}).reshape({1, 2})), torch::tensor({{0.75F, 0.25F}})))
      << "momentum 0: the average is this batch's, and a uniform prediction becomes the target";
}

TEST(DistributionAlignment, RefusesATargetWithNoWeightAndProbabilitiesOfTheWrongWidth) {
  EXPECT_THROW(DistributionAlignment(torch::tensor({0.0, 0.0}), 0.9), std::invalid_argument);
  EXPECT_THROW(DistributionAlignment(torch::tensor({1.0, -1.0}), 0.9), std::invalid_argument);
  DistributionAlignment align(torch::tensor({1.0, 1.0, 1.0}), 0.9);
  EXPECT_THROW(align(torch::full({2, 2}, 0.5F)), std::invalid_argument);
}

TEST(WeightAverage, MovesEachParameterAndStatisticTowardsTheCurrentOneAndCopiesCounters) {
  torch::nn::BatchNorm1d average(2);
  torch::nn::BatchNorm1d current(2);
  {
    torch::NoGradGuard no_grad;
    average->weight.fill_(1.0F);
    current->weight.fill_(3.0F);
    current->running_mean.fill_(7.0F);
    current->num_batches_tracked.fill_(5);
  }
  update_weight_average(*average, *current, 0.9);
  EXPECT_TRUE(torch::allclose(average->weight, torch::full({2}, 1.2F)));        // 0.9 * 1 + 0.1 * 3
  EXPECT_TRUE(torch::allclose(average->running_mean, torch::full({2}, 0.7F)));  // 0.9 * 0 + 0.1 * 7
  EXPECT_EQ(average->num_batches_tracked.item<std::int64_t>(), 5);
  EXPECT_TRUE(torch::equal(current->weight, torch::full({2}, 3.0F))) << "the current weights are left alone";
}

TEST(WeightAverageDecay, WithWarmupRampsUpAsTensorFlowsNumUpdatesAndHoldsAtTheDecay) {
  WeightAverageDecay warm(0.999, /*warmup=*/true);
  EXPECT_DOUBLE_EQ(warm.next(), 0.1);         // update 0: (1 + 0) / (10 + 0)
  EXPECT_DOUBLE_EQ(warm.next(), 2.0 / 11.0);  // update 1
  for (int t = 2; t < 90; ++t) warm.next();
  EXPECT_DOUBLE_EQ(warm.next(), 0.91);  // update 90: 91 / 100
  for (int t = 91; t < 8990; ++t) warm.next();
  EXPECT_DOUBLE_EQ(warm.next(), 0.999);  // update 8990: 8991 / 9000 = 0.999 exactly
  EXPECT_DOUBLE_EQ(warm.next(), 0.999) << "held at ema_decay from there on";

  WeightAverageDecay plain(0.999, /*warmup=*/false);
  EXPECT_DOUBLE_EQ(plain.next(), 0.999);
  EXPECT_DOUBLE_EQ(plain.next(), 0.999);

  WeightAverageDecay low(0.5, /*warmup=*/true);
  EXPECT_DOUBLE_EQ(low.next(), 0.1);
  for (int t = 1; t < 8; ++t) low.next();
  EXPECT_DOUBLE_EQ(low.next(), 0.5) << "update 8: 9 / 18, the decay reached";
}

// ---- two moons drawn as images -------------------------------------------

constexpr int kSide = 16;

/// A bright blob at a point of one of two interleaved half-moons (the
/// classic two-moons set), rendered into a 16x16 image: the class is the
/// moon. Two labelled points per moon say little about where the moons run;
/// the unlabelled images trace them out.
data::ImageSet two_moons(std::size_t per_class, std::uint32_t seed) {
  data::ImageSet set;
  set.shape = {1, kSide, kSide};
  set.origin = "two moons";
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> angle(0.0, 3.14159265358979323846);
  std::normal_distribution<double> jitter(0.0, 0.06);
  for (std::size_t i = 0; i < 2 * per_class; ++i) {
    const int moon = static_cast<int>(i % 2);
    const double t = angle(rng);
    const double x = (moon == 0 ? std::cos(t) : 1.0 - std::cos(t)) + jitter(rng);
    const double y = (moon == 0 ? std::sin(t) : 0.5 - std::sin(t)) + jitter(rng);
    const double px = 2.0 + (x + 1.0) / 3.0 * (kSide - 5);
    const double py = 2.0 + (y + 0.5) / 1.5 * (kSide - 5);
    for (int r = 0; r < kSide; ++r)
      for (int c = 0; c < kSide; ++c) {
        const double d2 = (r - py) * (r - py) + (c - px) * (c - px);
        set.pixels.push_back(static_cast<std::uint8_t>(std::lround(255.0 * std::exp(-d2 / 2.0))));
      }
    set.labels.push_back(moon);
  }
  return set;
}

class SemiSupervisedTransfer : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("semi");
    train_ = two_moons(400, 5);
    // One conv block keeps an 8x8 map of where the blob is, fine enough to tell the moons apart.
    // Two labelled images per moon; 200 for validation; the rest unlabelled.
    for (std::uint32_t i = 0; i < train_.size(); ++i) {
      auto& part = i < 4 ? split_.labelled : i < 204 ? split_.validation : split_.unlabelled;
      part.push_back(i);
    }
    validation_ = decode_subset(train_, split_.validation);
    auto model_document = config::Document::parse("width = 16\nblocks = 1\ndropout = 0.0\n", "model.toml");
    config::Section model_options(model_document, "");
    host_.set_search_path({PRETEXT_BUILTIN_PLUGIN_DIR});
    model_ = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), model_options);
    auto loss_document = config::Document::parse("", "loss.toml");
    config::Section loss_options(loss_document, "");
    loss_ = host_.make_loss(host_.resolve(ComponentKind::loss, "cross_entropy"), loss_options);
    options_.pipeline.threads = 1;
    options_.transfer.batch_size = 4;
    options_.transfer.head_lr = options_.transfer.optimizer.lr = 0.003;
    options_.transfer.semi.mu = 8;
    options_.transfer.semi.ema_decay = 0.0;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  TransferResult transfer(const std::string& mode) {
    torch::manual_seed(1);
    TransferInputs in;
    in.mode = mode;
    in.options = &options_;
    in.model = model_.get();
    in.loss = loss_.get();
    in.stages = &weak_;
    in.strong_stages = &strong_;
    in.train = &train_;
    in.split = &split_;
    in.validation = &validation_;
    in.compute.channels_last = false;
    in.classes = 2;
    artefacts::RunDirectory dir(dir_ / mode);
    std::ostringstream log;
    Progress progress(log, false);
    return run_transfer(in, dir, progress);
  }

  /// A fresh semi_scratch transfer's `metric`, one value an epoch, from its metrics.csv.
  std::vector<double> semi_scratch_metric(const std::string& metric) {
    std::filesystem::remove_all(dir_ / "semi_scratch");
    transfer("semi_scratch");
    const auto metrics = report::read_metrics_csv(dir_ / "semi_scratch" / "metrics.csv");
    const auto* series = metrics.find("transfer.semi_scratch", metric);
    EXPECT_NE(series, nullptr) << metric << " is recorded";
    std::vector<double> by_epoch;
    if (series != nullptr)
      for (const auto& point : *series) by_epoch.push_back(point.value);
    return by_epoch;
  }

  std::filesystem::path dir_;
  data::ImageSet train_;
  data::Split split_;
  LabelledTensors validation_;
  PluginHost host_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<Loss> loss_;
  std::vector<std::shared_ptr<const Stage>> weak_;
  std::vector<std::shared_ptr<const Stage>> strong_;
  RunOptions options_;
};

TEST_F(SemiSupervisedTransfer, BeatsLabelledOnlyTrainingWhenTheUnlabelledImagesTraceTheClasses) {
  // The same number of steps for both: 200 steps over the 4 labelled images.
  options_.transfer.epochs = 200;
  const TransferResult labelled_only = transfer("scratch");
  options_.transfer.semi.epochs = 4;
  options_.transfer.semi.steps_per_epoch = 50;
  const TransferResult semi = transfer("semi_scratch");
  std::cout << "two moons, 2 labels a class: labelled only " << labelled_only.val_accuracy << ", semi-supervised "
            << semi.val_accuracy << '\n';
  // Measured: 0.775 and 0.895; without the unlabelled loss (unlabelled_weight = 0) the
  // semi-supervised mode gets 0.73.
  EXPECT_GE(semi.val_accuracy, labelled_only.val_accuracy + 0.08);
  EXPECT_GE(semi.val_accuracy, 0.85);
}

TEST_F(SemiSupervisedTransfer, WithDistributionAlignmentItStillBeatsLabelledOnlyTraining) {
  options_.transfer.epochs = 200;
  const TransferResult labelled_only = transfer("scratch");
  options_.transfer.semi.epochs = 4;
  options_.transfer.semi.steps_per_epoch = 50;
  options_.transfer.semi.distribution_alignment = true;
  options_.transfer.semi.alignment_momentum = 0.99;
  const TransferResult semi = transfer("semi_scratch");
  std::cout << "two moons, aligned pseudo-labels: labelled only " << labelled_only.val_accuracy << ", semi-supervised "
            << semi.val_accuracy << '\n';
  // Measured: 0.775 and 0.90 (0.895 unaligned, the test above).
  EXPECT_GE(semi.val_accuracy, labelled_only.val_accuracy + 0.08);
}

TEST_F(SemiSupervisedTransfer, TheAuxiliaryRotationHeadLearnsAndItsLossIsRecorded) {
  options_.transfer.semi.epochs = 4;
  options_.transfer.semi.steps_per_epoch = 60;
  options_.transfer.semi.rotation_weight = 1.0;
  transfer("semi_scratch");
  const report::RunMetrics metrics = report::read_metrics_csv(dir_ / "semi_scratch" / "metrics.csv");
  const auto* rotation = metrics.find("transfer.semi_scratch", "rotation_loss");
  ASSERT_NE(rotation, nullptr) << "rotation_loss is recorded";
  ASSERT_EQ(rotation->size(), 4U) << "one a semi-supervised epoch";
  for (const auto& point : *rotation)
    std::cout << "rotation loss, epoch " << point.epoch << ": " << point.value << '\n';
  // Chance is ln 4 = 1.386 for four turns; a blob on a moon shows its turn.
  EXPECT_LT(rotation->back().value, rotation->front().value);
  EXPECT_LT(rotation->back().value, 1.2);
}

/// Every parameter of a transfer's networks, one flat vector.
torch::Tensor flat_weights(const TransferResult& result) {
  std::vector<torch::Tensor> parts;
  for (const auto& p : result.backbone->parameters()) parts.push_back(p.detach().flatten());
  for (const auto& p : result.head->parameters()) parts.push_back(p.detach().flatten());
  return torch::cat(parts);
}

TEST_F(SemiSupervisedTransfer, EmaWarmupLetsTheAverageOfAFreshBackboneForgetItsFirstWeights) {
  // 100 updates at 0.999: without warm-up the untrained first weights keep
  // 0.999^100 = 90 % of the average; with it, the decay is still at most 0.92
  // and the average holds recent weights. The average does not feed back into
  // training, so ema_decay = 0 returns the live weights both averaged.
  options_.transfer.semi.epochs = 2;
  options_.transfer.semi.steps_per_epoch = 50;
  options_.transfer.semi.ema_decay = 0.0;
  const torch::Tensor live = flat_weights(transfer("semi_scratch"));
  options_.transfer.semi.ema_decay = 0.999;
  options_.transfer.semi.ema_warmup = false;
  const torch::Tensor plain = flat_weights(transfer("semi_scratch"));
  options_.transfer.semi.ema_warmup = true;
  const torch::Tensor warm = flat_weights(transfer("semi_scratch"));
  const double plain_lag = (plain - live).norm().item<double>();
  const double warm_lag = (warm - live).norm().item<double>();
  std::cout << "distance of the average from the live weights after 100 updates: without warm-up " << plain_lag
            << ", with it " << warm_lag << '\n';
  EXPECT_GT(plain_lag, 0.0);
  EXPECT_LT(warm_lag, 0.5 * plain_lag) << "the warmed-up average keeps closer to the live weights";
}

TEST_F(SemiSupervisedTransfer, AnAveragePseudoLabellerLabelsWithTheAverageNotTheLiveWeights) {
  // A fixed threshold of 0.5 keeps every two-class pseudo-label. The live
  // weights learn the moons from the labelled images, so their labels are
  // mostly right. An average at decay 0.999999 without warm-up stays where
  // the fresh backbone began; labelling with it keeps the untrained
  // weights' labels, little better than chance, all run long.
  options_.transfer.semi.epochs = 3;
  options_.transfer.semi.steps_per_epoch = 50;
  options_.transfer.semi.threshold = 0.5;
  options_.transfer.semi.ema_decay = 0.999999;
  const auto pseudo_label_accuracy = [&](const std::string& labeller) {
    options_.transfer.semi.pseudo_labeller = labeller;
    return semi_scratch_metric("pseudo_label_accuracy");
  };
  const std::vector<double> live = pseudo_label_accuracy("live");
  const std::vector<double> average = pseudo_label_accuracy("average");
  ASSERT_EQ(live.size(), 3U);
  ASSERT_EQ(average.size(), 3U);
  std::cout << "pseudo-labels right, epochs 1-3: live " << live[0] << ' ' << live[1] << ' ' << live[2]
            << "; a near-frozen average " << average[0] << ' ' << average[1] << ' ' << average[2] << '\n';
  // Measured: live 0.80, 0.79, 0.77; the average 0.62, 0.61, 0.61. With the
  // option ignored, the second run repeats the first.
  EXPECT_GE(live.back(), 0.7);
  EXPECT_LT(average.back(), live.back() - 0.1) << "the untrained average's labels, not the live weights'";
  EXPECT_NEAR(average.back(), average.front(), 0.05) << "the labeller hardly moves";
}

/// Blanks the image: a view that went through it carries nothing to learn from.
class BlankImage final : public Stage {
 public:
  void apply(ImageView image, SampleRng&) const override { std::fill_n(image.data, image.shape.numel(), 0.0F); }
};

TEST_F(SemiSupervisedTransfer, LabelledViewStrongPassesTheLabelledImagesThroughTheStrongStages) {
  // The strong stages blank the image. With labelled_view = "weak" the four
  // labelled images are fitted; with "strong" they all look alike, so the
  // labelled batch's accuracy stays near one class's share (a half).
  strong_ = {std::make_shared<BlankImage>()};
  options_.transfer.semi.epochs = 2;
  options_.transfer.semi.steps_per_epoch = 50;
  const auto last_train_accuracy = [&](const std::string& view) {
    options_.transfer.semi.labelled_view = view;
    const std::vector<double> accuracy = semi_scratch_metric("train_accuracy");
    return accuracy.empty() ? -1.0 : accuracy.back();
  };
  const double weak = last_train_accuracy("weak");
  const double strong = last_train_accuracy("strong");
  std::cout << "labelled batches' accuracy in epoch 2: weak view " << weak << ", blanked strong view " << strong
            << '\n';
  // Measured: 1 and 0.5; with the option ignored, 1 and 1.
  EXPECT_GE(weak, 0.95);
  EXPECT_LE(strong, 0.75);
}

TEST(SemiSupervisedConfig, RunsUnchangedOnAFolderOfColourImages) {
  // Two classes of 16x16 RGB PNGs in class sub-folders: reddish and bluish noise.
  const auto dir = testing::fresh_temp_dir("semi-folder");
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> noise(0, 90);
  for (int label = 0; label < 2; ++label) {
    const auto class_dir = dir / (label == 0 ? "red" : "blue");
    std::filesystem::create_directories(class_dir);
    for (int i = 0; i < 30; ++i) {
      testing::PngSpec png;
      png.width = png.height = 16;
      for (int p = 0; p < 16 * 16; ++p) {
        const auto strong = static_cast<std::uint8_t>(160 + noise(rng));
        const auto weak = static_cast<std::uint8_t>(noise(rng));
        png.rows.insert(png.rows.end(), {label == 0 ? strong : weak, weak, label == 0 ? weak : strong});
      }
      testing::write_png(class_dir / ("img" + std::to_string(i) + ".png"), png);
    }
  }
  const std::vector<std::string> overrides = {"data.source=folder",
                                              "data.path=" + dir.string(),
                                              "data.test_path=" + dir.string(),
                                              "data.image_size=16",
                                              "data.channels=3",
                                              "data.labelled=10",
                                              "data.validation=10",
                                              "threads=1",
                                              "transfer.semi.epochs=1",
                                              "transfer.semi.steps_per_epoch=2",
                                              "transfer.semi.mu=2",
                                              "model.width=8"};
  Job job(JobRequest{PRETEXT_SOURCE_DIR "/configs/semi-supervised.toml", overrides, dir / "run"});
  std::ostringstream log;
  Progress progress(log, false);
  const toml::table summary = job.run(progress);
  EXPECT_TRUE(summary["transfer"]["semi"]["val_accuracy"].value<double>().has_value());
  EXPECT_TRUE(summary["transfer"]["semi"]["test_accuracy"].value<double>().has_value());
  const std::size_t epoch_line = log.str().find("transfer.semi epoch 1/1: ");
  ASSERT_NE(epoch_line, std::string::npos) << log.str();
  EXPECT_NE(log.str().find(" loss ", epoch_line), std::string::npos) << log.str();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pretext
