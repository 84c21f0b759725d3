// The built-in plugins: conv4, rotation, cross_entropy, loaded as a user would.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <set>

#include "pipeline/config/section.hpp"
#include "common/errors.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/train/training_context.hpp"
#include "pretext/image_ops.hpp"
#include "support/builtin_plugin_fixture.hpp"

namespace pretext {
namespace {

class BuiltinPlugins : public testing::BuiltinPluginTest {};

TEST_F(BuiltinPlugins, Conv4ShapesFollowTheStudy) {
  auto options = section("");
  auto model = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), options);
  auto backbone = model->make_backbone({{3, 32, 32}});
  const auto features = backbone->forward(torch::rand({2, 3, 32, 32}));
  EXPECT_EQ(features.sizes(), (std::vector<std::int64_t>{2, 64, 2, 2}));
  const auto shape = backbone->feature_shape();
  EXPECT_EQ(shape.channels, 64);
  EXPECT_EQ(shape.height, 2);
  auto head = model->make_head(shape, 10);
  EXPECT_EQ(head->forward(features).sizes(), (std::vector<std::int64_t>{2, 10}));
  // 4 conv + 4 bn (weight, bias each) + head conv (weight, bias)
  EXPECT_EQ(backbone->parameters().size(), 16U);
  EXPECT_EQ(head->parameters().size(), 2U);
}

TEST_F(BuiltinPlugins, Conv4OptionsAreValidated) {
  auto options = section("dropout_after = [2, 5]\n");
  try {
    host_.make_model(host_.resolve(ComponentKind::model, "conv4"), options);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("dropout_after[1]"), std::string::npos) << e.what();
  }
}

TEST_F(BuiltinPlugins, Conv4LeakyReluAndWidth) {
  auto options = section("width = 8\nactivation = \"leaky_relu\"\n");
  auto model = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), options);
  auto backbone = model->make_backbone({{1, 16, 16}});
  EXPECT_EQ(backbone->forward(torch::rand({1, 1, 16, 16})).sizes(), (std::vector<std::int64_t>{1, 8, 1, 1}));
}

TEST_F(BuiltinPlugins, Conv4WidthsGiveEachBlockItsOwnFilters) {
  auto options = section("widths = [4, 8, 16]\nblocks = 3\n");
  auto model = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), options);
  auto backbone = model->make_backbone({{1, 16, 16}});
  EXPECT_EQ(backbone->forward(torch::rand({2, 1, 16, 16})).sizes(), (std::vector<std::int64_t>{2, 16, 2, 2}));
  EXPECT_EQ(backbone->feature_shape().channels, 16);
  std::vector<std::int64_t> filters;
  for (const auto& item : backbone->named_parameters())
    if (item.key().find("conv") == 0 && item.key().find(".weight") != std::string::npos)
      filters.push_back(item.value().size(0));
  EXPECT_EQ(filters, (std::vector<std::int64_t>{4, 8, 16}));
}

TEST_F(BuiltinPlugins, Conv4WidthsNeedOneCountPerBlock) {
  auto options = section("widths = [32, 64]\n");  // 4 blocks by default
  try {
    host_.make_model(host_.resolve(ComponentKind::model, "conv4"), options);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("widths"), std::string::npos) << message;
    EXPECT_NE(message.find("one filter count per block: 4 of them, not 2"), std::string::npos) << message;
  }
}

TEST_F(BuiltinPlugins, RotationMakesFourLabelledRotations) {
  auto options = section("");
  auto task = host_.make_pretext(host_.resolve(ComponentKind::pretext, "rotation"), options);
  ASSERT_EQ(task->views_per_image(), 4);
  std::vector<float> image(16);
  std::iota(image.begin(), image.end(), 0.0F);
  std::vector<float> out(64);
  std::vector<ImageView> views;
  for (int v = 0; v < 4; ++v) views.push_back({out.data() + 16 * v, {1, 4, 4}});
  std::vector<std::int64_t> labels(4, -1);
  SampleRng rng(0, 0, 0, 0, 0);
  task->make_views({image.data(), {1, 4, 4}}, 7, rng, ViewSlots(views.data(), labels.data(), 4));
  EXPECT_EQ(labels, (std::vector<std::int64_t>{0, 1, 2, 3}));
  for (int k = 0; k < 4; ++k) {
    std::vector<float> expected(16);
    ops::rotate90({image.data(), {1, 4, 4}}, {expected.data(), {1, 4, 4}}, k);
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), out.begin() + 16 * k)) << "rotation " << k;
  }
  // Counter-clockwise quarter turn: the top-left of view 1 is the input's top-right.
  EXPECT_EQ(out[16], 3.0F);
}

TEST_F(BuiltinPlugins, RotationRandomModeMakesOneConsistentView) {
  auto options = section("rotations = \"random\"\n");
  auto task = host_.make_pretext(host_.resolve(ComponentKind::pretext, "rotation"), options);
  ASSERT_EQ(task->views_per_image(), 1);
  std::vector<float> image(16);
  std::iota(image.begin(), image.end(), 0.0F);
  std::set<std::int64_t> seen;
  for (std::uint64_t i = 0; i < 40; ++i) {
    std::vector<float> out(16);
    ImageView view{out.data(), {1, 4, 4}};
    std::int64_t label = -1;
    SampleRng rng(1, 0, i, 0, 0);
    task->make_views({image.data(), {1, 4, 4}}, -1, rng, ViewSlots(&view, &label, 1));
    ASSERT_GE(label, 0);
    ASSERT_LT(label, 4);
    std::vector<float> expected(16);
    ops::rotate90({image.data(), {1, 4, 4}}, {expected.data(), {1, 4, 4}}, static_cast<int>(label));
    EXPECT_EQ(out, expected);
    seen.insert(label);
  }
  EXPECT_EQ(seen.size(), 4U);
}

TEST_F(BuiltinPlugins, RotationRejectsNonSquareImages) {
  auto options = section("");
  auto task = host_.make_pretext(host_.resolve(ComponentKind::pretext, "rotation"), options);
  EXPECT_THROW((void)task->view_shape({1, 4, 8}), std::invalid_argument);
}

TEST_F(BuiltinPlugins, CrossEntropyLabelSmoothingMatchesTheFormula) {
  auto options = section("label_smoothing = 0.1\n");
  auto loss = host_.make_loss(host_.resolve(ComponentKind::loss, "cross_entropy"), options);
  const auto logits = torch::tensor({{2.0F, 0.0F, -1.0F}});
  const auto target = torch::tensor({0}, torch::kLong);
  const double z = std::exp(2.0) + std::exp(0.0) + std::exp(-1.0);
  const double nll[3] = {-std::log(std::exp(2.0) / z), -std::log(1.0 / z), -std::log(std::exp(-1.0) / z)};
  const double expected = 0.9 * nll[0] + 0.1 * (nll[0] + nll[1] + nll[2]) / 3.0;
  EXPECT_NEAR((*loss)(logits, target).item<double>(), expected, 1e-5);
}

TEST_F(BuiltinPlugins, CopyWeightsTransfersEveryTensorExactly) {
  auto options = section("");
  auto model = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), options);
  torch::manual_seed(1);
  auto source = model->make_backbone({{1, 32, 32}});
  source->train();
  source->forward(torch::rand({4, 1, 32, 32}));  // moves the batch-norm running statistics
  torch::manual_seed(2);
  auto target = model->make_backbone({{1, 32, 32}});
  copy_weights(*source, *target);
  const auto a = source->named_parameters();
  const auto b = target->named_parameters();
  for (const auto& item : a) EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << item.key();
  const auto ab = source->named_buffers();
  const auto bb = target->named_buffers();
  for (const auto& item : ab) EXPECT_TRUE(torch::equal(item.value(), bb[item.key()])) << item.key();
}

}  // namespace
}  // namespace pretext
