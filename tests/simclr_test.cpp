// The "simclr" pretext plugin and the "nt_xent" loss, loaded as a user would.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>

#include "pipeline/config/section.hpp"
#include "common/errors.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/train/job.hpp"
#include "pipeline/train/training_context.hpp"
#include "pretext/image_ops.hpp"
#include "support/builtin_plugin_fixture.hpp"
#include "support/synthetic_idx.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

class SimclrPlugin : public testing::BuiltinPluginTest {
 protected:
  std::shared_ptr<PretextTask> task(const std::string& toml) {
    auto options = section(toml);
    return host_.make_pretext(host_.resolve(ComponentKind::pretext, "simclr"), options);
  }
  std::shared_ptr<Loss> nt_xent(const std::string& toml) {
    auto options = section(toml);
    return host_.make_loss(host_.resolve(ComponentKind::loss, "nt_xent"), options);
  }
  /// Two views of `image` (C, H, W) and their labels.
  static std::pair<std::vector<float>, std::vector<std::int64_t>> views_of(const PretextTask& task,
                                                                           const std::vector<float>& image,
                                                                           ImageShape shape, std::uint64_t index) {
    std::vector<float> out(2 * shape.numel(), -1.0F);
    ImageView views[2] = {{out.data(), shape}, {out.data() + shape.numel(), shape}};
    std::vector<std::int64_t> labels(2, -1);
    SampleRng rng(5, 0, index, 0, 0);
    task.make_views({image.data(), shape}, -1, rng, ViewSlots(views, labels.data(), 2));
    return {out, labels};
  }
};

// ---------------------------------------------------------------- views -----

constexpr const char* kIdentityCrop = "min_scale = 1.0\nmax_scale = 1.0\nmin_ratio = 1.0\nmax_ratio = 1.0\n";

std::vector<float> counting_image() {
  std::vector<float> image(16);
  std::iota(image.begin(), image.end(), 0.0F);
  return image;
}

TEST_F(SimclrPlugin, FullCropWithoutFlipGivesTheImageTwice) {
  auto simclr = task(std::string(kIdentityCrop) + "flip = 0.0\n");
  ASSERT_EQ(simclr->views_per_image(), 2);
  const auto image = counting_image();
  const auto [views, labels] = views_of(*simclr, image, {1, 4, 4}, 0);
  EXPECT_EQ(labels, (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(std::vector<float>(views.begin(), views.begin() + 16), image);
  EXPECT_EQ(std::vector<float>(views.begin() + 16, views.end()), image);
}

TEST_F(SimclrPlugin, FullCropWithCertainFlipGivesTheMirrorTwice) {
  auto simclr = task(std::string(kIdentityCrop) + "flip = 1.0\n");
  const auto [views, labels] = views_of(*simclr, counting_image(), {1, 4, 4}, 0);
  const std::vector<float> mirror{3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12};
  EXPECT_EQ(labels, (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(std::vector<float>(views.begin(), views.begin() + 16), mirror);
  EXPECT_EQ(std::vector<float>(views.begin() + 16, views.end()), mirror);
}

TEST_F(SimclrPlugin, DefaultViewsDifferFromEachOtherAndAreDeterministic) {
  auto simclr = task("");
  const ImageShape shape{1, 32, 32};
  std::vector<float> image(shape.numel());
  SampleRng pixels(1, 0, 0, 0, 0);
  for (auto& p : image) p = static_cast<float>(pixels.uniform());
  for (std::uint64_t index = 0; index < 5; ++index) {
    const auto [views, labels] = views_of(*simclr, image, shape, index);
    EXPECT_EQ(labels, (std::vector<std::int64_t>{0, 1}));
    const std::vector<float> first(views.begin(), views.begin() + 1024);
    const std::vector<float> second(views.begin() + 1024, views.end());
    EXPECT_NE(first, second) << "image " << index;
    EXPECT_NE(first, image) << "image " << index;
    for (float v : views) ASSERT_TRUE(v >= 0.0F && v <= 1.0F);
    EXPECT_EQ(views_of(*simclr, image, shape, index).first, views) << "same rng, same views";
  }
}

TEST_F(SimclrPlugin, RejectsAnEmptyScaleRange) {
  EXPECT_THROW(task("min_scale = 0.5\nmax_scale = 0.4\n"), ConfigError);
  EXPECT_THROW(task("min_ratio = 2.0\nmax_ratio = 1.0\n"), ConfigError);
}

// --------------------------------------------------------------- nt_xent ----

TEST_F(SimclrPlugin, NtXentMatchesAHandComputedExample) {
  // Rows (2, 0), (1, 1), (0, 1), (-3, 0); pairs {0, 1} and {2, 3}. Cosines:
  const double r = 1.0 / std::sqrt(2.0);
  const double cos[4][4] = {{1, r, 0, -1}, {r, 1, r, -r}, {0, r, 1, 0}, {-1, -r, 0, 1}};
  const int partner[4] = {1, 0, 3, 2};
  const double t = 0.25;
  double expected = 0.0;
  for (int i = 0; i < 4; ++i) {
    double denominator = 0.0;
    for (int k = 0; k < 4; ++k)
      if (k != i) denominator += std::exp(cos[i][k] / t);
    expected += -std::log(std::exp(cos[i][partner[i]] / t) / denominator) / 4.0;
  }
  auto loss = nt_xent("temperature = 0.25\n");
  const auto embeddings = torch::tensor({{2.0F, 0.0F}, {1.0F, 1.0F}, {0.0F, 1.0F}, {-3.0F, 0.0F}});
  EXPECT_NEAR((*loss)(embeddings, torch::tensor({0, 0, 1, 1}, torch::kLong)).item<double>(), expected, 1e-5);
  // Ids are names, not positions; bf16 input is computed in float32.
  EXPECT_NEAR((*loss)(embeddings, torch::tensor({7, 7, 3, 3}, torch::kLong)).item<double>(), expected, 1e-5);
  const auto bf16 = (*loss)(embeddings.to(torch::kBFloat16), torch::tensor({0, 0, 1, 1}, torch::kLong));
  EXPECT_EQ(bf16.scalar_type(), torch::kFloat);
  EXPECT_NEAR(bf16.item<double>(), expected, 1e-5);  // these inputs are exact in bf16
}

TEST_F(SimclrPlugin, NtXentGradientPullsPartnersTogether) {
  auto loss = nt_xent("");
  auto embeddings = torch::tensor({{1.0F, 0.2F}, {0.1F, 1.0F}, {-1.0F, 0.3F}, {0.2F, -1.0F}}).requires_grad_();
  const auto pairs = torch::tensor({0, 0, 1, 1}, torch::kLong);
  auto before = (*loss)(embeddings, pairs);
  before.backward();
  const auto stepped = (embeddings - 0.5 * embeddings.grad()).detach();
  EXPECT_LT((*loss)(stepped, pairs).item<double>(), before.item<double>());
  EXPECT_FALSE(torch::isnan(embeddings.grad()).any().item<bool>());
}

// The plugins throw std::invalid_argument; a loss made by the host hands it
// back as a PluginFault that names the plugin and keeps the message.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (const PluginFault& e) {
    return e.what();
  }
  return "(no std::invalid_argument or PluginFault)";
}

TEST_F(SimclrPlugin, NtXentRejectsIdsThatAreNotPairs) {
  auto loss = nt_xent("");
  const auto e = torch::rand({4, 3});
  auto with = [&](const torch::Tensor& ids) { return error_of([&] { (*loss)(e, ids); }); };
  EXPECT_NE(with(torch::tensor({0, 0, 1, 2}, torch::kLong)).find("id 1 at row 2 appears 1 time"), std::string::npos)
      << with(torch::tensor({0, 0, 1, 2}, torch::kLong));
  EXPECT_NE(with(torch::tensor({0, 0, 0, 0}, torch::kLong)).find("exactly twice"), std::string::npos);
  EXPECT_NE(with(torch::tensor({0, 0, 1}, torch::kLong)).find("1-D int64"), std::string::npos);
  EXPECT_NE(with(torch::tensor({0.0F, 0.0F, 1.0F, 1.0F})).find("1-D int64"), std::string::npos);
  const auto one_row = error_of([&] { (*loss)(torch::rand({1, 3}), torch::tensor({0}, torch::kLong)); });
  EXPECT_NE(one_row.find("M >= 2"), std::string::npos) << one_row;
  EXPECT_THROW(nt_xent("temperature = 0.0\n"), ConfigError);
}

// -------------------------------------------------------------- training ----

class SimclrTraining : public SimclrPlugin {
 protected:
  void SetUp() override {
    SimclrPlugin::SetUp();
    auto model_options = section("width = 8\ndropout = 0.0\n");
    model_ = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), model_options);
    Compute compute;
    compute.channels_last = false;
    context_ = std::make_unique<HostTrainingContext>(compute, ModelInput{{1, 32, 32}}, model_, nt_xent(""),
                                                     OptimizerOptions{}, "");
    task_ = task("hidden_dim = 32\nprojection_dim = 16\n");
    task_->setup(*context_);
  }
  static torch::Tensor pair_labels(std::int64_t n) { return torch::arange(n, torch::kLong).remainder(2); }

  std::shared_ptr<Model> model_;
  std::unique_ptr<HostTrainingContext> context_;
  std::shared_ptr<PretextTask> task_;
};

TEST_F(SimclrTraining, StepsOnAFixedBatchLowerTheLoss) {
  // 8 images, each followed by a noisy copy: the pairs are learnable.
  const auto originals = torch::rand({8, 1, 32, 32});
  const auto images =
      torch::stack({originals, (originals + 0.1 * torch::randn_like(originals)).clamp(0, 1)}, 1).view({16, 1, 32, 32});
  const auto labels = pair_labels(16);
  std::vector<double> losses;
  std::vector<std::int64_t> found;
  for (int step = 0; step < 8; ++step) {
    const auto result = task_->train_step(images, labels);
    ASSERT_TRUE(std::isfinite(result.loss));
    EXPECT_EQ(result.count, 16);
    losses.push_back(result.loss);
    found.push_back(result.correct);
  }
  EXPECT_LT(losses.back(), losses.front() - 0.5) << "first " << losses.front() << ", last " << losses.back();
  // The untrained network confuses some pairs; a few steps find every partner.
  EXPECT_LT(found.front(), 16);
  EXPECT_EQ(found.back(), 16);
}

TEST_F(SimclrTraining, RejectsBatchesThatAreNotOrderedPairs) {
  const auto images = torch::rand({6, 1, 32, 32});
  const auto odd = error_of([&] { task_->train_step(images.narrow(0, 0, 5), pair_labels(5)); });
  EXPECT_NE(odd.find("pretext.batch_size must be even"), std::string::npos) << odd;
  EXPECT_NE(odd.find("5 samples (odd)"), std::string::npos) << odd;
  const auto swapped = error_of([&] { task_->train_step(images, torch::tensor({0, 1, 1, 0, 0, 1}, torch::kLong)); });
  EXPECT_NE(swapped.find("labels 0, 1, 0, 1"), std::string::npos) << swapped;
  EXPECT_NO_THROW(task_->train_step(images, pair_labels(6)));
}

TEST_F(SimclrTraining, SaveAndLoadRestoreEveryNetwork) {
  task_->train_step(torch::rand({8, 1, 32, 32}), pair_labels(8));
  torch::serialize::OutputArchive out;
  task_->save(out);
  std::ostringstream bytes;
  out.save_to(bytes);

  auto restored = task("hidden_dim = 32\nprojection_dim = 16\n");
  restored->setup(*context_);
  std::istringstream stream(bytes.str());
  torch::serialize::InputArchive in;
  in.load_from(stream);
  restored->load(in);
  for (const auto& item : task_->backbone()->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), restored->backbone()->named_parameters()[item.key()])) << item.key();
  // Same networks and optimiser state: the same update, so the loss after it
  // (a step's loss is measured before its update) is the same too.
  const auto images = torch::rand({8, 1, 32, 32});
  for (int step = 0; step < 2; ++step)
    EXPECT_DOUBLE_EQ(task_->train_step(images, pair_labels(8)).loss, restored->train_step(images, pair_labels(8)).loss)
        << "step " << step;
}

// ------------------------------------------------------- through a job ------

// The real batcher keeps both views of an image adjacent, and stages run on
// each view: a tiny pretext epoch goes through, an odd batch size does not.
TEST(SimclrJob, RunsThroughTheEpochGraphOnlyWithEvenBatches) {
  const auto dir = testing::fresh_temp_dir("simclr_job");
  const auto train = testing::write_synthetic_idx(dir, "train", 200, 16, 4, 1);
  const auto test = testing::write_synthetic_idx(dir, "test", 40, 16, 4, 2);
  const auto config = dir / "simclr.toml";
  std::ofstream(config) << "seed = 1\nthreads = 1\n"
                        << "[data]\nsource = \"idx\"\npath = \"" << train.images.string() << "\"\n"
                        << "test_path = \"" << test.images.string() << "\"\n"
                        << "labelled = 40\nvalidation = 40\n"
                        << "[pipeline]\nthreads = 2\n"
                        << "[trainer]\nautocast = \"none\"\n"
                        << "[model]\nplugin = \"conv4\"\nwidth = 8\n"
                        << "[pretext]\nplugin = \"simclr\"\nepochs = 1\nbatch_size = 32\n"
                        << "hidden_dim = 16\nprojection_dim = 8\n"
                        << "stages = [{ name = \"color_jitter\", brightness = 0.8, contrast = 0.8 }]\n"
                        << "[pretext.loss]\nplugin = \"nt_xent\"\n"
                        << "[transfer]\nmodes = [\"fixed\"]\nepochs = 1\nbatch_size = 16\n";
  {
    Job job(JobRequest{config, {}, dir / "even"});
    std::ostringstream log;
    Progress progress(log, false);
    job.run(progress);
    EXPECT_TRUE(fs::exists(dir / "even" / "summary.json")) << log.str();
  }
  try {
    Job job(JobRequest{config, {"pretext.batch_size=31"}, dir / "odd"});
    std::ostringstream log;
    Progress progress(log, false);
    job.run(progress);
    ADD_FAILURE() << "an odd batch size trained";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("pretext.batch_size must be even"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pretext
