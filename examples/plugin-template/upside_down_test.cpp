// Tests of the upside_down task through the pretext test kit: the built plugin
// is loaded as the host loads it, and each part of the task is called as the
// host calls it, with the kit's stand-ins for the config, the flow graph's
// view memory and the trainer. `ctest` in the build directory runs them.
//
// Lifetime: the plugin's code must stay loaded while anything it made is
// alive, so each test declares its LoadedPlugin before everything else.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "pretext/testing.hpp"

namespace {

namespace pt = pretext::testing;

// Not square, so a transpose instead of a half turn shows; three channels, so
// a mix-up between channels shows.
constexpr pretext::ImageShape kShape{3, 4, 5};

std::shared_ptr<pretext::PretextTask> make_task(const pt::LoadedPlugin& plugin, pt::FakeOptions& options) {
  return plugin.registrar.make_pretext("upside_down", options);
}

std::shared_ptr<pretext::PretextTask> make_task(const pt::LoadedPlugin& plugin, bool both_views) {
  pt::FakeOptions options({{"both_views", both_views}});
  return make_task(plugin, options);
}

bool same_pixels(pretext::ConstImageView a, pretext::ConstImageView b) {
  return a.shape == b.shape && std::equal(a.data, a.data + a.shape.numel(), b.data);
}

bool turned_half(pretext::ConstImageView image, pretext::ConstImageView view) {
  const auto [channels, height, width] = image.shape;
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        if (view.at(c, y, x) != image.at(c, height - 1 - y, width - 1 - x)) return false;
  return true;
}

TEST(UpsideDown, RegistersOnePretextTask) {
  const auto plugin = pt::load_plugin(PRETEXT_PLUGIN_FILE);
  EXPECT_EQ(plugin.registrar.names_of_pretexts(), std::vector<std::string>{"upside_down"});
  EXPECT_TRUE(plugin.registrar.names_of_models().empty());
  EXPECT_TRUE(plugin.registrar.names_of_losses().empty());
  EXPECT_TRUE(plugin.registrar.names_of_stages().empty());
}

TEST(UpsideDown, ViewsPerImageFollowsBothViews) {
  const auto plugin = pt::load_plugin(PRETEXT_PLUGIN_FILE);
  pt::FakeOptions defaults;
  EXPECT_EQ(make_task(plugin, defaults)->views_per_image(), 2);  // both_views defaults to true
  EXPECT_EQ(make_task(plugin, true)->views_per_image(), 2);
  EXPECT_EQ(make_task(plugin, false)->views_per_image(), 1);
}

TEST(UpsideDown, BothViewsAreTheImageAndItsHalfTurn) {
  const auto plugin = pt::load_plugin(PRETEXT_PLUGIN_FILE);
  const auto task = make_task(plugin, true);
  const pt::TestImage image = pt::make_test_image(kShape, 7);
  pt::ViewBuffers views(task->views_per_image(), task->view_shape(kShape));
  pretext::SampleRng rng(0, 0, 0, 0, 0);

  task->make_views(image.view(), -1, rng, views.slots());

  EXPECT_TRUE(views.all_written());
  EXPECT_TRUE(views.all_labelled());
  EXPECT_EQ(views.labels(), (std::vector<std::int64_t>{0, 1}));
  EXPECT_TRUE(same_pixels(views.view(0), image.view()));
  // By hand, in a 4x5 image: (y, x) goes to (3 - y, 4 - x).
  const pretext::ConstImageView turned = views.view(1);
  EXPECT_EQ(turned.at(0, 0, 0), image.at(0, 3, 4));
  EXPECT_EQ(turned.at(0, 3, 4), image.at(0, 0, 0));
  EXPECT_EQ(turned.at(1, 0, 4), image.at(1, 3, 0));
  EXPECT_EQ(turned.at(2, 1, 3), image.at(2, 2, 1));
  EXPECT_EQ(turned.at(2, 2, 2), image.at(2, 1, 2));
  EXPECT_TRUE(turned_half(image.view(), turned));
}

TEST(UpsideDown, OneRandomViewIsDeterministicPerSeed) {
  const auto plugin = pt::load_plugin(PRETEXT_PLUGIN_FILE);
  const auto task = make_task(plugin, false);
  const pt::TestImage image = pt::make_test_image(kShape, 3);
  int turned = 0;
  for (std::uint64_t seed = 0; seed < 32; ++seed) {
    pt::ViewBuffers first(1, kShape);
    pt::ViewBuffers second(1, kShape);
    pretext::SampleRng rng_first(seed, 0, 0, 0, 0);
    pretext::SampleRng rng_second(seed, 0, 0, 0, 0);
    task->make_views(image.view(), -1, rng_first, first.slots());
    task->make_views(image.view(), -1, rng_second, second.slots());

    ASSERT_TRUE(first.all_written() && first.all_labelled()) << "seed " << seed;
    EXPECT_EQ(first.label(0), second.label(0)) << "seed " << seed;
    EXPECT_TRUE(same_pixels(first.view(0), second.view(0))) << "seed " << seed;
    ASSERT_TRUE(first.label(0) == 0 || first.label(0) == 1) << "seed " << seed;
    // The label says what the view is.
    if (first.label(0) == 1) {
      ++turned;
      EXPECT_TRUE(turned_half(image.view(), first.view(0))) << "seed " << seed;
    } else {
      EXPECT_TRUE(same_pixels(image.view(), first.view(0))) << "seed " << seed;
    }
  }
  EXPECT_GT(turned, 0);  // both outcomes occur over 32 seeds
  EXPECT_LT(turned, 32);
}

TEST(UpsideDown, ReadsEveryKeyItIsGiven) {
  const auto plugin = pt::load_plugin(PRETEXT_PLUGIN_FILE);
  pt::FakeOptions right({{"both_views", "false"}});
  EXPECT_EQ(make_task(plugin, right)->views_per_image(), 1);
  EXPECT_TRUE(right.unread_keys().empty());

  // A misspelt key is not read (the host would reject it): the task keeps its default.
  pt::FakeOptions misspelt({{"both_view", "false"}});
  EXPECT_EQ(make_task(plugin, misspelt)->views_per_image(), 2);
  EXPECT_EQ(misspelt.unread_keys(), std::vector<std::string>{"both_view"});
}

TEST(UpsideDown, RejectsAValueThatIsNotABoolean) {
  const auto plugin = pt::load_plugin(PRETEXT_PLUGIN_FILE);
  pt::FakeOptions options({{"both_views", "maybe"}});
  try {
    make_task(plugin, options);
    FAIL() << "both_views = \"maybe\" was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("pretext.both_views"), std::string::npos) << error.what();
  }
}

/// A batch as the flow graph makes it: every view of `images` test images.
std::pair<torch::Tensor, torch::Tensor> make_batch(const pretext::PretextTask& task, int images) {
  std::vector<torch::Tensor> pixels;
  std::vector<torch::Tensor> labels;
  for (int i = 0; i < images; ++i) {
    const pt::TestImage image = pt::make_test_image(kShape, static_cast<std::uint64_t>(i));
    pt::ViewBuffers views(task.views_per_image(), task.view_shape(kShape));
    pretext::SampleRng rng(0, 0, static_cast<std::uint64_t>(i), 0, 0);
    task.make_views(image.view(), -1, rng, views.slots());
    pixels.push_back(views.images_tensor());
    labels.push_back(views.labels_tensor());
  }
  return {torch::cat(pixels), torch::cat(labels)};
}

TEST(UpsideDown, TrainingStepsGiveAFiniteLossAndChangeTheBackbone) {
  const auto plugin = pt::load_plugin(PRETEXT_PLUGIN_FILE);
  torch::manual_seed(0);
  pt::FakeTrainingContext context(kShape);
  const auto task = make_task(plugin, true);
  task->setup(context);
  EXPECT_EQ(context.backbones_made(), 1);
  EXPECT_EQ(context.optimizers_made(), 1);

  const auto [images, labels] = make_batch(*task, 4);  // 4 images x 2 views
  ASSERT_EQ(images.size(0), 8);
  std::vector<torch::Tensor> before;
  for (const auto& parameter : task->backbone()->parameters()) before.push_back(parameter.detach().clone());

  for (int step = 0; step < 3; ++step) {
    const pretext::StepResult result = task->train_step(images, labels);
    EXPECT_TRUE(std::isfinite(result.loss)) << "step " << step;
    EXPECT_EQ(result.count, 8);
    EXPECT_GE(result.correct, 0);
    EXPECT_LE(result.correct, 8);
  }
  bool changed = false;
  const auto after = task->backbone()->parameters();
  for (std::size_t i = 0; i < before.size(); ++i) changed = changed || !torch::equal(before[i], after[i]);
  EXPECT_TRUE(changed) << "three optimiser steps left every backbone parameter as it was";
}

TEST(UpsideDown, SaveThenLoadRestoresTheBackbone) {
  const auto plugin = pt::load_plugin(PRETEXT_PLUGIN_FILE);
  torch::manual_seed(0);
  pt::FakeTrainingContext context(kShape);
  const auto trained = make_task(plugin, true);
  trained->setup(context);
  const auto [images, labels] = make_batch(*trained, 4);
  trained->train_step(images, labels);  // moves weights and BatchNorm statistics off their initial values

  std::stringstream checkpoint;
  torch::serialize::OutputArchive out;
  trained->save(out);
  out.save_to(checkpoint);

  pt::FakeTrainingContext fresh_context(kShape);
  const auto restored = make_task(plugin, true);
  restored->setup(fresh_context);  // new, differently initialised networks
  torch::serialize::InputArchive in;
  in.load_from(checkpoint);
  restored->load(in);

  const auto want = trained->backbone()->named_parameters();
  const auto got = restored->backbone()->named_parameters();
  ASSERT_EQ(want.size(), got.size());
  for (const auto& item : want) EXPECT_TRUE(torch::equal(item.value(), got[item.key()])) << item.key();
  const auto want_buffers = trained->backbone()->named_buffers();
  const auto got_buffers = restored->backbone()->named_buffers();
  for (const auto& item : want_buffers) EXPECT_TRUE(torch::equal(item.value(), got_buffers[item.key()])) << item.key();
}

}  // namespace
