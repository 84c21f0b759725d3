#include "stages/epoch_graph.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
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
    set.labels[i] = static_cast<pretext::data::Label>(i % 10);
  }
  return set;
}

std::vector<std::uint32_t> iota_indices(std::size_t n) {
  std::vector<std::uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0U);
  return v;
}

int source_of(const Batch& batch, std::int64_t i) {
  return static_cast<int>(std::lround(batch.pixels()[static_cast<std::size_t>(i) * batch.shape.numel()] * 255.0F));
}

// Four copies, labelled 0..3, the copy's label also written into pixel 1.
class FourViews final : public ViewMaker {
 public:
  [[nodiscard]] int views_per_image() const override { return 4; }
  void make_views(ConstImageView image, std::int64_t, SampleRng&, const ViewSlots& views) const override {
    for (int v = 0; v < 4; ++v) {
      copy_image(image, views.view(v));
      views.set_label(v, v);
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
  spec.graph.max_batches_in_flight = 3;
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

TEST(EpochGraph, InFlightBatchesNeverPassTheLimit) {
  const auto set = numbered_images(200);
  auto spec = spec_for(set);
  spec.graph.max_batches_in_flight = 3;
  spec.batch_size = 4;
  // A slow consumer makes the producers run ahead as far as they are allowed.
  const auto stats = run_epoch(spec, [](const Batch&) { std::this_thread::sleep_for(std::chrono::microseconds(300)); });
  EXPECT_EQ(stats.batch_limit, 3U);
  EXPECT_GE(stats.max_batches_in_flight, 2U);  // it did fill up
  EXPECT_LE(stats.max_batches_in_flight, stats.batch_limit);
}

TEST(EpochGraph, ViewsOfOneImageMaySpanTwoBatchesAndStayInOrder) {
  // 4 views per image and batches of 9: most images are split between two
  // batches. Sample k of the epoch must be view k % 4 of image order[k / 4].
  const auto set = numbered_images(23);
  FourViews views;
  auto spec = spec_for(set);
  spec.views = &views;
  spec.batch_size = 9;
  std::size_t k = 0;
  const auto stats = run_epoch(spec, [&](const Batch& b) {
    EXPECT_EQ(b.count, std::min<std::int64_t>(9, 92 - static_cast<std::int64_t>(k)));
    for (std::int64_t i = 0; i < b.count; ++i, ++k) {
      EXPECT_EQ(source_of(b, i), static_cast<int>(spec.plan.order[k / 4])) << "sample " << k;
      EXPECT_EQ(b.labels[static_cast<std::size_t>(i)], static_cast<std::int64_t>(k % 4)) << "sample " << k;
    }
  });
  EXPECT_EQ(k, 92U);
  EXPECT_EQ(stats.batches, 11U);  // 10 of 9, then 2
}

TEST(EpochGraph, BatchBuffersAreAlignedAndRecycled) {
  const auto set = numbered_images(400);
  auto spec = spec_for(set);
  spec.buffers = BufferPool::create(8 * 16);
  spec.graph.max_batches_in_flight = 2;
  run_epoch(spec, [&](const Batch& b) { EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.pixels()) % 64, 0U); });
  // 50 batches through a graph that holds at most two at once (plus one the
  // source may have made ahead): the same few buffers went round and round.
  EXPECT_GE(spec.buffers->allocated(), 1U);
  EXPECT_LE(spec.buffers->allocated(), 3U);
}

TEST(EpochGraph, AConsumerMayKeepABatchAndItIsNotOverwritten) {
  const auto set = numbered_images(64);
  auto spec = spec_for(set);
  std::vector<Batch> kept;
  std::vector<std::vector<float>> copies;
  run_epoch(spec, [&](const Batch& b) {
    kept.push_back(b);  // holds a reference to the buffer, as a tensor over it would
    copies.emplace_back(b.pixels(), b.pixels() + b.numel());
  });
  ASSERT_EQ(kept.size(), 8U);
  for (std::size_t i = 0; i < kept.size(); ++i)
    EXPECT_EQ(std::vector<float>(kept[i].pixels(), kept[i].pixels() + kept[i].numel()), copies[i]) << "batch " << i;
  // Eight buffers are alive at once, so the pool had to make eight.
  for (std::size_t i = 1; i < kept.size(); ++i) EXPECT_NE(kept[i].pixels(), kept[i - 1].pixels());
}

TEST(BufferPool, ReusesReleasedBuffersAndOutlivesItsOwner) {
  auto pool = BufferPool::create(100);
  const float* first = nullptr;
  {
    auto a = pool->acquire();
    first = a.get();
  }
  auto b = pool->acquire();
  EXPECT_EQ(b.get(), first);  // the released buffer came back
  auto c = pool->acquire();
  EXPECT_NE(c.get(), b.get());
  EXPECT_EQ(pool->allocated(), 2U);
  pool.reset();  // the buffers still out keep the pool alive
  c.get()[99] = 1.0F;
  c.reset();
  b.reset();
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
  run_epoch(spec, [&](const Batch& b) { out.insert(out.end(), b.pixels(), b.pixels() + b.numel()); });
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

namespace pretext::stages {
namespace {

// ---- joint epochs and per-view stages (FixMatch's weak/strong pairs) ------

// Adds 0.5 to pixel 1 of the image: a strong view is recognisable.
class MarkPixel final : public Stage {
 public:
  void apply(ImageView image, SampleRng&) const override { image.data[1] += 0.5F; }
};

TEST(EpochGraph, PairsOfViewsComeAdjacentInOrderEachWithItsOwnStages) {
  const auto set = numbered_images(40);
  const RepeatedViews pairs(2);
  EpochSpec spec = spec_for(set);
  spec.views = &pairs;
  spec.batch_size = 6;  // an odd number of pairs per batch... and batches that end mid-epoch
  spec.view_stages = {{}, {std::make_shared<MarkPixel>()}};
  std::vector<int> sources;
  std::vector<float> marks;
  std::vector<std::int64_t> labels;
  run_epoch(spec, [&](const Batch& b) {
    for (std::int64_t i = 0; i < b.count; ++i) {
      sources.push_back(source_of(b, i));
      marks.push_back(b.pixels()[static_cast<std::size_t>(i) * b.shape.numel() + 1] -
                      b.pixels()[static_cast<std::size_t>(i) * b.shape.numel()]);
      labels.push_back(b.labels[static_cast<std::size_t>(i)]);
    }
  });
  ASSERT_EQ(sources.size(), 80U);
  for (std::size_t i = 0; i < 40; ++i) {
    const std::uint32_t image = spec.plan.order[i];
    EXPECT_EQ(sources[2 * i], static_cast<int>(image)) << "weak view of the image at position " << i;
    EXPECT_EQ(sources[2 * i + 1], static_cast<int>(image)) << "strong view, right after its weak view";
    EXPECT_FLOAT_EQ(marks[2 * i], 0.0F) << "the weak view went through the weak stages only";
    EXPECT_FLOAT_EQ(marks[2 * i + 1], 0.5F) << "the strong view went through the strong stages";
    EXPECT_EQ(labels[2 * i], set.labels[image]);
    EXPECT_EQ(labels[2 * i + 1], set.labels[image]);
  }
}

TEST(EpochGraph, EachViewDrawsFromItsOwnRandomStream) {
  const auto set = numbered_images(16);
  const RepeatedViews pairs(2);
  EpochSpec spec = spec_for(set);
  spec.views = &pairs;
  const auto jitter = std::make_shared<Jitter>();
  spec.view_stages = {{jitter}, {jitter}};  // the same stage on both views
  std::size_t differing = 0;
  run_epoch(spec, [&](const Batch& b) {
    const std::size_t n = b.shape.numel();
    for (std::int64_t i = 0; i + 1 < b.count; i += 2)
      if (!std::equal(b.pixels() + i * n, b.pixels() + (i + 1) * n, b.pixels() + (i + 1) * n)) ++differing;
  });
  // Image 0 is black, which no jitter changes; each of the other 15 pairs differs.
  EXPECT_EQ(differing, 15U) << "the two views of an image were jittered alike";
}

TEST(EpochGraph, ViewStagesMustMatchTheViews) {
  const auto set = numbered_images(8);
  const RepeatedViews pairs(2);
  EpochSpec spec = spec_for(set);
  spec.views = &pairs;
  spec.view_stages = {{}};
  EXPECT_THROW(run_epoch(spec, [](const Batch&) {}), std::invalid_argument);
}

TEST(EpochGraph, AJointEpochHandsOverBatchKOfEveryPartTogether) {
  const auto labelled = numbered_images(30);
  const auto unlabelled = numbered_images(100);
  const RepeatedViews pairs(2);
  EpochSpec first = spec_for(labelled);
  first.batch_size = 4;
  first.drop_last = true;
  EpochSpec second = spec_for(unlabelled, 1);
  second.views = &pairs;
  second.batch_size = 12;
  second.drop_last = true;
  second.view_stages = {{}, {std::make_shared<MarkPixel>()}};
  // Alone, each part makes these batches.
  std::vector<std::vector<int>> alone_first;
  std::vector<std::vector<int>> alone_second;
  auto sources_of = [](const Batch& b) {
    std::vector<int> s;
    for (std::int64_t i = 0; i < b.count; ++i) s.push_back(source_of(b, i));
    return s;
  };
  run_epoch(first, [&](const Batch& b) { alone_first.push_back(sources_of(b)); });
  run_epoch(second, [&](const Batch& b) { alone_second.push_back(sources_of(b)); });
  ASSERT_EQ(alone_first.size(), 7U);    // 30 / 4
  ASSERT_EQ(alone_second.size(), 16U);  // 200 / 12

  std::uint64_t expected_seq = 0;
  const EpochStats stats = run_joint_epoch({&first, &second}, [&](const std::vector<const Batch*>& parts) {
    ASSERT_EQ(parts.size(), 2U);
    EXPECT_EQ(parts[0]->seq, expected_seq);
    EXPECT_EQ(parts[1]->seq, expected_seq);
    EXPECT_EQ(sources_of(*parts[0]), alone_first[expected_seq]);
    EXPECT_EQ(sources_of(*parts[1]), alone_second[expected_seq]);
    ++expected_seq;
  });
  EXPECT_EQ(expected_seq, 7U) << "the joint epoch ends with its shortest part";
  EXPECT_EQ(stats.batches, 7U);
  EXPECT_EQ(stats.samples, 7U * (4 + 12));
}

TEST(EpochGraph, KeyingByPositionAugmentsARepeatedImageAfresh) {
  const auto set = numbered_images(4);
  EpochSpec spec = spec_for(set);
  spec.plan.order = {2, 2, 2, 2};
  spec.batch_size = 4;
  spec.stages.push_back(std::make_shared<Jitter>());
  auto distinct_views = [&] {
    std::vector<std::vector<float>> seen;
    run_epoch(spec, [&](const Batch& b) {
      for (std::int64_t i = 0; i < b.count; ++i)
        seen.emplace_back(b.pixels() + i * b.shape.numel(), b.pixels() + (i + 1) * b.shape.numel());
    });
    std::sort(seen.begin(), seen.end());
    return std::unique(seen.begin(), seen.end()) - seen.begin();
  };
  EXPECT_EQ(distinct_views(), 1) << "keyed by dataset index: four visits, one augmentation";
  spec.plan.key_by_position = true;
  EXPECT_EQ(distinct_views(), 4);
}

}  // namespace
}  // namespace pretext::stages
