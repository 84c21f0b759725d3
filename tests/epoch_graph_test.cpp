#include "stages/epoch_graph.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>
#include <thread>

#include "pretext/image_ops.hpp"

namespace pretext::stages {
namespace {

// Image i is filled with the value i, so a sample says where it came from.
data::ImageSet numbered_images(std::size_t count) {
  data::ImageSet set;
  set.shape = {1, 4, 4};
  set.pixels.resize(count * 16);
  set.labels.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::fill_n(set.pixels.begin() + static_cast<std::ptrdiff_t>(i * 16), 16, static_cast<std::uint8_t>(i));
    set.labels[i] = static_cast<std::int64_t>(i % 10);
  }
  return set;
}

std::vector<std::uint32_t> iota_indices(std::size_t n) {
  std::vector<std::uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0U);
  return v;
}

int source_of(const Batch& batch, std::int64_t i) {
  return static_cast<int>(std::lround(batch.pixels[static_cast<std::size_t>(i) * batch.shape.numel()] * 255.0F));
}

// Four copies, labelled 0..3, the copy's label also written into pixel 1.
class FourViews final : public ViewMaker {
 public:
  [[nodiscard]] int views_per_image() const override { return 4; }
  void make_views(ConstImageView image, std::int64_t, SampleRng&, ImageView* views,
                  std::int64_t* labels) const override {
    for (int v = 0; v < 4; ++v) {
      std::copy(image.data, image.data + image.shape.numel(), views[v].data);
      labels[v] = v;
    }
  }
};

EpochSpec spec_for(const data::ImageSet& set, std::uint64_t epoch = 0) {
  EpochSpec spec;
  spec.plan.images = &set;
  spec.plan.order = shuffled(iota_indices(set.size()), 7, epoch);
  spec.plan.seed = 7;
  spec.plan.epoch = epoch;
  spec.batch_size = 8;
  spec.graph.block_size = 5;
  spec.graph.max_blocks_in_flight = 3;
  spec.graph.threads = 2;
  return spec;
}

TEST(EpochGraph, DeliversEveryImageExactlyOnce) {
  const auto set = numbered_images(103);
  std::map<int, int> seen;
  const auto stats = run_epoch(spec_for(set), [&](const Batch& b) {
    for (std::int64_t i = 0; i < b.count; ++i) {
      const int src = source_of(b, i);
      ++seen[src];
      EXPECT_EQ(b.labels[static_cast<std::size_t>(i)], src % 10);
    }
  });
  ASSERT_EQ(seen.size(), 103U);
  for (auto& [index, count] : seen) EXPECT_EQ(count, 1) << "image " << index;
  EXPECT_EQ(stats.samples, 103U);
  EXPECT_EQ(stats.batches, 13U);  // 12 full batches of 8, then 7
}

TEST(EpochGraph, DropLastDropsOnlyThePartialBatch) {
  const auto set = numbered_images(103);
  auto spec = spec_for(set);
  spec.drop_last = true;
  std::int64_t total = 0;
  run_epoch(spec, [&](const Batch& b) {
    EXPECT_EQ(b.count, 8);
    total += b.count;
  });
  EXPECT_EQ(total, 96);
}

TEST(EpochGraph, EveryViewOfEveryImageOnce) {
  const auto set = numbered_images(30);
  FourViews views;
  auto spec = spec_for(set);
  spec.views = &views;
  std::map<std::pair<int, std::int64_t>, int> seen;
  run_epoch(spec, [&](const Batch& b) {
    for (std::int64_t i = 0; i < b.count; ++i) ++seen[{source_of(b, i), b.labels[static_cast<std::size_t>(i)]}];
  });
  ASSERT_EQ(seen.size(), 120U);
  for (auto& [key, count] : seen) EXPECT_EQ(count, 1);
}

TEST(EpochGraph, InFlightBlocksNeverPassTheLimit) {
  const auto set = numbered_images(200);
  auto spec = spec_for(set);
  spec.graph.block_size = 2;
  spec.graph.max_blocks_in_flight = 3;
  spec.batch_size = 4;
  // A slow consumer makes the producers run ahead as far as they are allowed.
  const auto stats = run_epoch(spec, [](const Batch&) { std::this_thread::sleep_for(std::chrono::microseconds(300)); });
  EXPECT_EQ(stats.block_limit, 3U);
  EXPECT_GE(stats.max_blocks_in_flight, 2U);  // it did fill up
  EXPECT_LE(stats.max_blocks_in_flight, stats.block_limit);
}

TEST(EpochGraph, LimitGrowsWhenABatchSpansMoreBlocks) {
  const auto set = numbered_images(50);
  auto spec = spec_for(set);
  spec.graph.block_size = 2;
  spec.graph.max_blocks_in_flight = 1;
  spec.batch_size = 9;  // needs 5 blocks of 2 images
  std::uint64_t samples = 0;
  const auto stats = run_epoch(spec, [&](const Batch& b) { samples += static_cast<std::uint64_t>(b.count); });
  EXPECT_EQ(stats.block_limit, 6U);
  EXPECT_EQ(samples, 50U);
}

class Jitter final : public Stage {
 public:
  void apply(ImageView image, SampleRng& rng) const override { ops::color_jitter(image, {0.5, 0.5, 0.0}, rng); }
};

std::vector<float> all_pixels(const data::ImageSet& set, int threads) {
  auto spec = spec_for(set, 3);
  spec.graph.threads = threads;
  spec.stages.push_back(std::make_shared<Jitter>());
  std::vector<float> out;
  run_epoch(spec, [&](const Batch& b) { out.insert(out.end(), b.pixels.begin(), b.pixels.end()); });
  return out;
}

TEST(EpochGraph, SameSeedSameBatchesWhateverTheThreads) {
  const auto set = numbered_images(97);
  const auto one = all_pixels(set, 1);
  EXPECT_EQ(one, all_pixels(set, 2));
  EXPECT_EQ(one, all_pixels(set, 2));
}

TEST(EpochGraph, ShuffleDependsOnEpoch) {
  const auto a = shuffled(iota_indices(50), 1, 0);
  EXPECT_EQ(a, shuffled(iota_indices(50), 1, 0));
  EXPECT_NE(a, shuffled(iota_indices(50), 1, 1));
  EXPECT_NE(a, iota_indices(50));
}

TEST(EpochGraph, ConsumerExceptionComesOut) {
  const auto set = numbered_images(64);
  int calls = 0;
  EXPECT_THROW(run_epoch(spec_for(set),
                         [&](const Batch&) {
                           if (++calls == 2) throw std::runtime_error("boom");
                         }),
               std::runtime_error);
}

class ThrowingStage final : public Stage {
 public:
  void apply(ImageView, SampleRng&) const override { throw std::runtime_error("stage failed"); }
};

TEST(EpochGraph, StageExceptionComesOut) {
  const auto set = numbered_images(64);
  auto spec = spec_for(set);
  spec.stages.push_back(std::make_shared<ThrowingStage>());
  EXPECT_THROW(run_epoch(spec, [](const Batch&) {}), std::runtime_error);
}

}  // namespace
}  // namespace pretext::stages
