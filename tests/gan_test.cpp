// The "gan" pretext plugin and the "bce_with_logits" loss, loaded as a user would.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>

#include "pipeline/config/section.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/train/training_context.hpp"

namespace pretext {
namespace {

// Every tensor under `archive`, by dotted name.
void flatten(torch::serialize::InputArchive& archive, const std::string& prefix,
             std::map<std::string, torch::Tensor>& out) {
  for (const auto& key : archive.keys()) {
    torch::Tensor tensor;
    torch::serialize::InputArchive sub;
    if (archive.try_read(key, tensor)) {
      out[prefix + key] = tensor.clone();
    } else if (archive.try_read(key, sub)) {
      flatten(sub, prefix + key + ".", out);
    }
  }
}

/// The tensors of one part ("backbone", "generator", ...) of a task's checkpoint.
std::map<std::string, torch::Tensor> saved_tensors(const PretextTask& task, const std::string& part) {
  torch::serialize::OutputArchive archive;
  task.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  std::istringstream stream(bytes.str());
  torch::serialize::InputArchive in;
  in.load_from(stream);
  torch::serialize::InputArchive sub;
  in.read(part, sub);
  std::map<std::string, torch::Tensor> tensors;
  flatten(sub, "", tensors);
  return tensors;
}

bool all_equal(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, tensor] : a)
    if (!torch::equal(tensor, b.at(name))) return false;
  return true;
}

class GanPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    host_.set_search_path({PRETEXT_BUILTIN_PLUGIN_DIR});
    model_doc_ = config::Document::parse("width = 8\n", "model.toml");
    task_doc_ = config::Document::parse("latent_dim = 16\ngenerator_width = 8\n", "pretext.toml");
    loss_doc_ = config::Document::parse("", "loss.toml");
    config::Section model_options(model_doc_, "");
    config::Section task_options(task_doc_, "");
    config::Section loss_options(loss_doc_, "");
    model_ = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), model_options);
    task_ = host_.make_pretext(host_.resolve(ComponentKind::pretext, "gan"), task_options);
    loss_ = host_.make_loss(host_.resolve(ComponentKind::loss, "bce_with_logits"), loss_options);
    Compute compute;
    compute.channels_last = false;
    context_ = std::make_unique<HostTrainingContext>(
        compute, ModelInput{{1, 16, 16}}, model_, nullptr, OptimizerOptions{}, "",
        [this](const std::string& name) -> std::shared_ptr<Loss> {
          EXPECT_EQ(name, "bce_with_logits");
          return loss_;
        });
    task_->setup(*context_);
  }

  PluginHost host_;
  config::Document model_doc_ = config::Document::parse("", "x");
  config::Document task_doc_ = config::Document::parse("", "x");
  config::Document loss_doc_ = config::Document::parse("", "x");
  std::shared_ptr<Model> model_;
  std::shared_ptr<PretextTask> task_;
  std::shared_ptr<Loss> loss_;
  std::unique_ptr<HostTrainingContext> context_;
};

TEST_F(GanPlugin, StepsChangeBothNetworksAndKeepLossesFinite) {
  const auto discriminator_before = saved_tensors(*task_, "backbone");
  const auto generator_before = saved_tensors(*task_, "generator");
  ASSERT_FALSE(discriminator_before.empty());
  ASSERT_FALSE(generator_before.empty());
  const auto images = torch::rand({8, 1, 16, 16});
  const auto labels = torch::zeros({8}, torch::kLong);
  for (int step = 0; step < 3; ++step) {
    const auto result = task_->train_step(images, labels);
    EXPECT_TRUE(std::isfinite(result.loss));
    ASSERT_EQ(result.extra.size(), 4U);
    for (const auto& [name, value] : result.extra) EXPECT_TRUE(std::isfinite(value)) << name;
  }
  EXPECT_FALSE(all_equal(saved_tensors(*task_, "backbone"), discriminator_before));
  EXPECT_FALSE(all_equal(saved_tensors(*task_, "generator"), generator_before));
}

TEST_F(GanPlugin, ReportsDiscriminatorProbabilities) {
  const auto result = task_->train_step(torch::rand({8, 1, 16, 16}), torch::zeros({8}, torch::kLong));
  for (const auto& [name, value] : result.extra) {
    if (name == "d_real" || name == "d_fake") {
      EXPECT_GE(value, 0.0) << name;
      EXPECT_LE(value, 1.0) << name;
    }
  }
}

TEST_F(GanPlugin, GeneratesImagesOfTheDataShapeInRange) {
  auto* sampler = dynamic_cast<Sampler*>(task_.get());
  ASSERT_NE(sampler, nullptr);
  const auto images = sampler->sample(5);
  EXPECT_EQ(images.sizes(), (std::vector<std::int64_t>{5, 1, 16, 16}));
  // tanh output in [-1, 1], mapped to the data's [0, 1].
  EXPECT_GE(images.min().item<float>(), 0.0F);
  EXPECT_LE(images.max().item<float>(), 1.0F);
  EXPECT_GT(images.std().item<float>(), 0.0F);
}

TEST_F(GanPlugin, TransferLoadsTheDiscriminatorsBackboneExactly) {
  task_->train_step(torch::rand({8, 1, 16, 16}), torch::zeros({8}, torch::kLong));
  const auto discriminator = task_->backbone();
  auto transferred = model_->make_backbone({{1, 16, 16}});
  const auto before = transferred->named_parameters();
  ASSERT_FALSE(torch::equal(before["conv1.weight"], discriminator->named_parameters()["conv1.weight"]));
  copy_weights(*discriminator, *transferred);  // what transfer does for fixed and finetuned
  for (const auto& item : discriminator->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), transferred->named_parameters()[item.key()])) << item.key();
  for (const auto& item : discriminator->named_buffers())
    EXPECT_TRUE(torch::equal(item.value(), transferred->named_buffers()[item.key()])) << item.key();
}

TEST_F(GanPlugin, TheTransferredBackboneIsTheDiscriminators) {
  auto backbone = task_->backbone();
  ASSERT_NE(backbone, nullptr);
  EXPECT_EQ(backbone->feature_shape().channels, 8);
}

TEST(BceWithLogits, MatchesTheFormula) {
  PluginHost host;
  host.set_search_path({PRETEXT_BUILTIN_PLUGIN_DIR});
  auto doc = config::Document::parse("", "loss.toml");
  config::Section options(doc, "");
  auto loss = host.make_loss(host.resolve(ComponentKind::loss, "bce_with_logits"), options);
  const auto logits = torch::tensor({{0.5F}, {-1.0F}});
  const auto targets = torch::tensor({{0.9F}, {0.0F}});
  auto bce = [](double x, double y) {
    const double p = 1.0 / (1.0 + std::exp(-x));
    return -(y * std::log(p) + (1.0 - y) * std::log(1.0 - p));
  };
  EXPECT_NEAR((*loss)(logits, targets).item<double>(), (bce(0.5, 0.9) + bce(-1.0, 0.0)) / 2.0, 1e-6);
}

}  // namespace
}  // namespace pretext
