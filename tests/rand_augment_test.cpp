// The rand_augment stage (stages/rand_augment.*): each operation on tiny
// images with hand-computed results, the identity at magnitude 0, the
// stage's determinism per sample and across thread counts, and its options.
#include "stages/rand_augment.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "pipeline/config/document.hpp"
#include "pipeline/config/section.hpp"
#include "stages/builtin_stages.hpp"
#include "stages/epoch_graph.hpp"

namespace pretext::stages {
namespace {

using augment::kFill;

constexpr float kTol = 1e-5F;

// A 1-channel h x w image holding `values` row by row.
struct Plane {
  int h;
  int w;
  std::vector<float> pixels;
  Plane(int height, int width, std::vector<float> values) : h(height), w(width), pixels(std::move(values)) {}
  ImageView view() { return {pixels.data(), {1, h, w}}; }
  [[nodiscard]] float at(int y, int x) const {
    return pixels[static_cast<std::size_t>(y) * static_cast<std::size_t>(w) + static_cast<std::size_t>(x)];
  }
};

void expect_pixels(const std::vector<float>& actual, const std::vector<float>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) EXPECT_NEAR(actual[i], expected[i], kTol) << "pixel " << i;
}

// Levels k / 255 from a fixed pseudo-random sequence, like decoded images.
std::vector<float> levels(std::size_t n, std::uint64_t salt) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(SampleRng::mix(i * 31 + salt) % 256) / 255.0F;
  return v;
}

// ---- translate -------------------------------------------------------------

TEST(RandAugmentOps, TranslateXMovesContentAndFillsGrey) {
  Plane p(2, 4, {0.0F, 0.1F, 0.2F, 0.3F, 0.4F, 0.5F, 0.6F, 0.7F});
  augment::translate_x_by(p.view(), 1);
  expect_pixels(p.pixels, {kFill, 0.0F, 0.1F, 0.2F, kFill, 0.4F, 0.5F, 0.6F});
  Plane q(2, 4, {0.0F, 0.1F, 0.2F, 0.3F, 0.4F, 0.5F, 0.6F, 0.7F});
  augment::translate_x_by(q.view(), -2);
  expect_pixels(q.pixels, {0.2F, 0.3F, kFill, kFill, 0.6F, 0.7F, kFill, kFill});
  Plane r(1, 3, {0.1F, 0.2F, 0.3F});
  augment::translate_x_by(r.view(), 5);  // further than the width: all grey
  expect_pixels(r.pixels, {kFill, kFill, kFill});
}

TEST(RandAugmentOps, TranslateYMovesRowsOfEveryChannel) {
  std::vector<float> px{0.1F, 0.2F, 0.3F, 0.4F, 0.5F, 0.6F,    // channel 0, 3 rows of 2
                        0.7F, 0.8F, 0.9F, 1.0F, 0.0F, 0.05F};  // channel 1
  augment::translate_y_by({px.data(), {2, 3, 2}}, -1);
  expect_pixels(px, {0.3F, 0.4F, 0.5F, 0.6F, kFill, kFill, 0.9F, 1.0F, 0.0F, 0.05F, kFill, kFill});
  augment::translate_y_by({px.data(), {2, 3, 2}}, 2);
  expect_pixels(px, {kFill, kFill, kFill, kFill, 0.3F, 0.4F, kFill, kFill, kFill, kFill, 0.9F, 1.0F});
}

TEST(RandAugmentOps, TranslateAtFullMagnitudeShiftsThreeTenthsOfTheWidth) {
  // width 10: round(0.3 * 10) = 3 pixels, left or right.
  std::vector<float> row(10);
  std::iota(row.begin(), row.end(), 0.0F);
  for (float& v : row) v /= 10.0F;
  const std::vector<float> right{kFill, kFill, kFill, 0.0F, 0.1F, 0.2F, 0.3F, 0.4F, 0.5F, 0.6F};
  const std::vector<float> left{0.3F, 0.4F, 0.5F, 0.6F, 0.7F, 0.8F, 0.9F, kFill, kFill, kFill};
  int seen_left = 0;
  int seen_right = 0;
  for (std::uint64_t key = 0; key < 16; ++key) {
    std::vector<float> px = row;
    SampleRng rng(1, 0, key, 0, 0);
    augment::translate_x({px.data(), {1, 1, 10}}, 1.0, rng);
    if (px[0] == kFill) {
      ++seen_right;
      expect_pixels(px, right);
    } else {
      ++seen_left;
      expect_pixels(px, left);
    }
  }
  EXPECT_GT(seen_left, 0);  // the sign is random
  EXPECT_GT(seen_right, 0);
}

// ---- shear and rotate --------------------------------------------------------

// v(x, y) = x / 10 + y / 100: bilinear sampling reproduces it exactly inside.
Plane ramp(int h, int w) {
  std::vector<float> v;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) v.push_back(static_cast<float>(x) / 10.0F + static_cast<float>(y) / 100.0F);
  return {h, w, v};
}

TEST(RandAugmentOps, ShearXSamplesRowsShiftedByFactorTimesRowCentre) {
  // Factor 0.25: row y reads the source at x + 0.25 (y + 1/2), i.e. shifted by
  // 0.125, 0.375, 0.625, 0.875; source points at or past x = 4 are grey.
  Plane p = ramp(4, 4);
  augment::shear_x_by(p.view(), 0.25);
  EXPECT_NEAR(p.at(0, 0), 0.0125F, kTol);          // 0.125 / 10
  EXPECT_NEAR(p.at(0, 3), 0.3F, kTol);             // 3.125: past the last centre, edge repeated
  EXPECT_NEAR(p.at(1, 1), 0.1375F + 0.01F, kTol);  // x 1.375
  EXPECT_NEAR(p.at(2, 1), 0.1625F + 0.02F, kTol);  // x 1.625
  EXPECT_EQ(p.at(2, 3), kFill);                    // source x 4.125
  EXPECT_NEAR(p.at(3, 2), 0.2875F + 0.03F, kTol);  // x 2.875
  EXPECT_EQ(p.at(3, 3), kFill);
}

TEST(RandAugmentOps, ShearYSamplesColumnsShiftedTheOtherWay) {
  Plane p = ramp(4, 4);
  augment::shear_y_by(p.view(), -0.25);            // column x reads y - 0.25 (x + 1/2)
  EXPECT_NEAR(p.at(0, 0), 0.0F, kTol);             // source y -0.125 + 0.5 = 0.375 >= 0: edge row
  EXPECT_NEAR(p.at(2, 1), 0.1F + 0.01625F, kTol);  // y 2 - 0.375 = 1.625
  EXPECT_EQ(p.at(0, 2), kFill);                    // source y 0.5 - 0.625 < 0
  EXPECT_NEAR(p.at(3, 3), 0.3F + 0.02125F, kTol);  // y 2.125
}

TEST(RandAugmentOps, RotateTurnsCounterClockwiseAboutTheCentre) {
  // 5 x 5, 30 degrees: the output pixel right of the centre, at (+1, 0) from
  // it, reads the source at (cos 30, sin 30) from the centre (below right),
  // the one above it, (0, -1), reads (sin 30, -cos 30) (above right).
  Plane p = ramp(5, 5);
  augment::rotate_by(p.view(), 30.0);
  const double c = std::sqrt(3.0) / 2.0;
  const double s = 0.5;
  EXPECT_NEAR(p.at(2, 2), 0.22F, kTol);  // the centre stays
  EXPECT_NEAR(p.at(2, 3), (2.0 + c) / 10.0 + (2.0 + s) / 100.0, kTol);
  EXPECT_NEAR(p.at(1, 2), (2.0 + s) / 10.0 + (2.0 - c) / 100.0, kTol);
  // The corners turn away: (0, 0) reads y = 2.5 - 2 s - 2 c < 0, (4, 0) x = 2.5 + 2 c + 2 s > 5.
  EXPECT_EQ(p.at(0, 0), kFill);
  EXPECT_EQ(p.at(0, 4), kFill);
}

// ---- colour ------------------------------------------------------------------

TEST(RandAugmentOps, AutocontrastStretchesEachChannelToFullRange) {
  std::vector<float> px{0.2F, 0.6F,  0.4F, 0.3F,   // channel 0: [0.2, 0.6]
                        0.5F, 0.5F,  0.5F, 0.5F,   // channel 1: flat, unchanged
                        0.0F, 0.25F, 0.5F, 0.1F};  // channel 2: [0, 0.5]
  augment::autocontrast({px.data(), {3, 2, 2}});
  expect_pixels(px, {0.0F, 1.0F, 0.5F, 0.25F, 0.5F, 0.5F, 0.5F, 0.5F, 0.0F, 0.5F, 1.0F, 0.2F});
}

TEST(RandAugmentOps, EqualizeFollowsPilOnEightBitLevels) {
  // 32 x 32 = 1024 pixels: 256 at level 10, 512 at 100, 256 at 200.
  // PIL: step = (1024 - 256) // 256 = 3; level i -> (1 + pixels below i) // 3:
  // 10 -> 0, 100 -> 257 // 3 = 85, 200 -> 769 // 3 = 256, clipped to 255.
  std::vector<float> px(1024);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<float>(i < 256 ? 10 : i < 768 ? 100 : 200) / 255.0F;
  augment::equalize({px.data(), {1, 32, 32}});
  EXPECT_EQ(px[0], 0.0F);
  EXPECT_NEAR(px[300], 85.0F / 255.0F, kTol);
  EXPECT_EQ(px[1000], 1.0F);
  // Two levels, half and half: the lower goes to 0, the upper to white.
  std::vector<float> two(1024);
  for (std::size_t i = 0; i < two.size(); ++i) two[i] = i % 2 == 0 ? 0.2F : 0.6F;
  augment::equalize({two.data(), {1, 32, 32}});
  for (std::size_t i = 0; i < two.size(); ++i) ASSERT_EQ(two[i], i % 2 == 0 ? 0.0F : 1.0F) << i;
}

TEST(RandAugmentOps, EqualizeLeavesSmallOrFlatImagesAlone) {
  // Fewer than 256 pixels below the top level: PIL's step is 0, no change.
  Plane p(2, 2, {0.2F, 0.6F, 0.2F, 0.6F});
  augment::equalize(p.view());
  expect_pixels(p.pixels, {0.2F, 0.6F, 0.2F, 0.6F});
}

TEST(RandAugmentOps, PosterizeKeepsTheTopBits) {
  // 153 = 0b10011001, 51 = 0b00110011, 255.
  Plane four(1, 3, {153.0F / 255.0F, 51.0F / 255.0F, 1.0F});
  augment::posterize(four.view(), 1.0);  // 8 - 4 = 4 bits
  expect_pixels(four.pixels, {144.0F / 255.0F, 48.0F / 255.0F, 240.0F / 255.0F});
  Plane six(1, 3, {153.0F / 255.0F, 51.0F / 255.0F, 1.0F});
  augment::posterize(six.view(), 0.5);  // 8 - 2 = 6 bits
  expect_pixels(six.pixels, {152.0F / 255.0F, 48.0F / 255.0F, 252.0F / 255.0F});
}

TEST(RandAugmentOps, SolarizeInvertsLevelsAtOrAboveThreshold) {
  // f = 0.5: threshold 256 - 128 = 128 on the 8-bit level.
  Plane p(1, 4, {127.0F / 255.0F, 128.0F / 255.0F, 1.0F, 0.0F});
  augment::solarize(p.view(), 0.5);
  expect_pixels(p.pixels, {127.0F / 255.0F, 127.0F / 255.0F, 0.0F, 0.0F});
  Plane all(1, 2, {0.0F, 0.3F});
  augment::solarize(all.view(), 1.0);  // threshold 0: everything
  expect_pixels(all.pixels, {1.0F, 0.7F});
  Plane none(1, 2, {1.0F, 0.3F});
  augment::solarize(none.view(), 0.0);  // threshold 256: nothing, not even white
  expect_pixels(none.pixels, {1.0F, 0.3F});
}

TEST(RandAugmentOps, SharpnessBlendsWithSmoothInteriorAndKeepsBorder) {
  // 3 x 3, centre 0.5, ring 0: SMOOTH(centre) = 5 * 0.5 / 13.
  Plane p(3, 3, {0, 0, 0, 0, 0.5F, 0, 0, 0, 0});
  augment::adjust_sharpness(p.view(), 0.5F);
  expect_pixels(p.pixels, {0, 0, 0, 0, 0.25F + 0.5F * 2.5F / 13.0F, 0, 0, 0, 0});
  Plane q(3, 3, {0, 0, 0, 0, 0.5F, 0, 0, 0, 0});
  augment::adjust_sharpness(q.view(), 0.0F);  // the smoothed image itself
  EXPECT_NEAR(q.at(1, 1), 2.5F / 13.0F, kTol);
  // 4 x 3: two interior pixels, each with the other as a neighbour.
  Plane r(3, 4, {0.1F, 0.1F, 0.1F, 0.1F, 0.1F, 0.9F, 0.3F, 0.1F, 0.1F, 0.1F, 0.1F, 0.1F});
  augment::adjust_sharpness(r.view(), 1.9F);
  const float smooth_a = (7 * 0.1F + 0.3F + 5 * 0.9F) / 13.0F;
  const float smooth_b = (7 * 0.1F + 0.9F + 5 * 0.3F) / 13.0F;
  EXPECT_NEAR(r.at(1, 1), 1.0F, kTol);  // 1.9 * 0.9 - 0.9 * smooth_a > 1: clamped
  EXPECT_NEAR(r.at(1, 2), 1.9F * 0.3F - 0.9F * smooth_b, kTol);
  EXPECT_NEAR(smooth_a, 0.4231F, 1e-4F);
  EXPECT_EQ(r.at(0, 1), 0.1F);
  EXPECT_EQ(r.at(1, 0), 0.1F);
  EXPECT_EQ(r.at(1, 3), 0.1F);
}

TEST(RandAugmentOps, BrightnessAndContrastUseFactorOnePlusOrMinusNineTenths) {
  for (std::uint64_t key = 0; key < 8; ++key) {
    Plane p(1, 2, {0.4F, 0.8F});
    SampleRng rng(3, 0, key, 0, 0);
    augment::brightness(p.view(), 1.0, rng);  // factor 1.9 or 0.1
    const bool up = p.at(0, 0) > 0.4F;
    expect_pixels(p.pixels, up ? std::vector<float>{0.76F, 1.0F} : std::vector<float>{0.04F, 0.08F});
  }
  for (std::uint64_t key = 0; key < 8; ++key) {
    Plane p(1, 2, {0.4F, 0.8F});  // mean 0.6
    SampleRng rng(3, 0, key, 0, 0);
    augment::contrast(p.view(), 0.5, rng);  // factor 1.45 or 0.55
    const bool up = p.at(0, 0) < 0.4F;
    expect_pixels(p.pixels, up ? std::vector<float>{0.6F - 1.45F * 0.2F, 0.6F + 1.45F * 0.2F}
                               : std::vector<float>{0.6F - 0.55F * 0.2F, 0.6F + 0.55F * 0.2F});
  }
}

// ---- cutout ------------------------------------------------------------------

// The pixels of a zero 1 x h x w image that cutout_at fills, as (y, x).
std::vector<std::pair<int, int>> cut(int h, int w, int side, int cy, int cx) {
  std::vector<float> px(static_cast<std::size_t>(h * w), 0.0F);
  augment::cutout_at({px.data(), {1, h, w}}, side, cy, cx);
  std::vector<std::pair<int, int>> filled;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const float v = px[static_cast<std::size_t>(y) * static_cast<std::size_t>(w) + static_cast<std::size_t>(x)];
      if (v != 0.0F) {
        EXPECT_EQ(v, kFill);
        filled.emplace_back(y, x);
      }
    }
  return filled;
}

TEST(RandAugmentOps, CutoutFillsTheSquareAroundTheCentreClippedAtTheBorder) {
  using Cells = std::vector<std::pair<int, int>>;
  // Side 3 around (2, 3): rows 1..3, columns 2..4.
  EXPECT_EQ(cut(6, 6, 3, 2, 3), (Cells{{1, 2}, {1, 3}, {1, 4}, {2, 2}, {2, 3}, {2, 4}, {3, 2}, {3, 3}, {3, 4}}));
  // Side 4 around (0, 5) of a 6 x 6: rows -2..1, columns 3..6, clipped to rows 0..1, columns 3..5.
  EXPECT_EQ(cut(6, 6, 4, 0, 5), (Cells{{0, 3}, {0, 4}, {0, 5}, {1, 3}, {1, 4}, {1, 5}}));
  EXPECT_TRUE(cut(4, 4, 0, 1, 1).empty());
}

TEST(RandAugmentOps, CutoutAtFullMagnitudeIsHalfTheShorterSideEveryChannel) {
  // 3 x 8 x 12 at f = 1: side round(0.5 * 8) = 4; a centre away from the
  // border keeps all 16 pixels, and every channel gets the same square.
  int full = 0;
  for (std::uint64_t key = 0; key < 32; ++key) {
    std::vector<float> px(3 * 8 * 12, 0.0F);
    SampleRng rng(5, 0, key, 0, 0);
    augment::cutout({px.data(), {3, 8, 12}}, 1.0, rng);
    std::size_t filled[3] = {0, 0, 0};
    for (std::size_t i = 0; i < px.size(); ++i) filled[i / 96] += px[i] == kFill ? 1 : 0;
    EXPECT_EQ(filled[0], filled[1]);
    EXPECT_EQ(filled[0], filled[2]);
    EXPECT_GE(filled[0], 4U);  // at worst a 2 x 2 corner
    EXPECT_LE(filled[0], 16U);
    EXPECT_EQ(std::memcmp(px.data(), px.data() + 96, 96 * sizeof(float)), 0);
    full += filled[0] == 16 ? 1 : 0;
  }
  EXPECT_GT(full, 0);
}

// ---- magnitude 0 ---------------------------------------------------------------

TEST(RandAugmentOps, MagnitudeZeroIsTheIdentityForEveryOpWithAMagnitude) {
  using augment::Op;
  for (Op op : {Op::translate_x, Op::translate_y, Op::shear_x, Op::shear_y, Op::rotate, Op::posterize, Op::solarize,
                Op::sharpness, Op::brightness, Op::contrast}) {
    for (std::uint64_t key = 0; key < 4; ++key) {  // both signs
      const std::vector<float> original = levels(3 * 5 * 7, key);
      std::vector<float> px = original;
      SampleRng rng(9, 0, key, 0, 0);
      augment::apply({px.data(), {3, 5, 7}}, op, 0.0, rng);
      EXPECT_EQ(std::memcmp(px.data(), original.data(), px.size() * sizeof(float)), 0) << augment::op_name(op);
    }
  }
  std::vector<float> px = levels(3 * 5 * 7, 1);
  const std::vector<float> original = px;
  SampleRng rng(9, 0, 0, 0, 0);
  augment::cutout({px.data(), {3, 5, 7}}, 0.0, rng);
  EXPECT_EQ(px, original);
}

// ---- the stage -------------------------------------------------------------------

std::vector<float> augmented(const RandAugmentStage& stage, const std::vector<float>& image, ImageShape shape,
                             std::uint64_t index) {
  std::vector<float> px = image;
  SampleRng rng(11, 0, index, 0, 0x100);
  stage.apply({px.data(), shape}, rng);
  return px;
}

TEST(RandAugmentStage, DeterministicPerSampleKey) {
  const RandAugmentStage stage(RandAugmentOptions{});
  const ImageShape shape{3, 16, 16};
  const std::vector<float> image = levels(shape.numel(), 2);
  const auto a = augmented(stage, image, shape, 4);
  const auto b = augmented(stage, image, shape, 4);
  const auto c = augmented(stage, image, shape, 5);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  EXPECT_NE(a, c);
  EXPECT_NE(a, image);
}

TEST(RandAugmentStage, FinalCutoutAlwaysAppliedAfterIdentityOps) {
  // Magnitude 0 makes every op the identity on a black image (autocontrast
  // and equalize leave a flat channel alone), so only the cutout shows: a
  // square of side round(0.5 * 8) = 4, clipped at most to 2 x 2.
  RandAugmentOptions options;
  options.magnitude = 0.0;
  options.random_magnitude = false;
  options.ops = 11;
  const RandAugmentStage stage(options);
  for (std::uint64_t index = 0; index < 16; ++index) {
    const auto px = augmented(stage, std::vector<float>(64, 0.0F), {1, 8, 8}, index);
    std::size_t grey = 0;
    for (float v : px) {
      ASSERT_TRUE(v == 0.0F || v == kFill) << v;
      grey += v == kFill ? 1 : 0;
    }
    EXPECT_GE(grey, 4U);
    EXPECT_LE(grey, 16U);
  }
  options.cutout = 0.0;
  const RandAugmentStage no_cutout(options);
  EXPECT_EQ(augmented(no_cutout, std::vector<float>(64, 0.0F), {1, 8, 8}, 0), std::vector<float>(64, 0.0F));
}

TEST(RandAugmentStage, SameBatchesWithOneAndTwoThreads) {
  data::ImageSet set;
  set.shape = {3, 12, 10};
  set.labels.resize(37);
  set.pixels.resize(set.size() * set.shape.numel());
  for (std::size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = static_cast<std::uint8_t>(SampleRng::mix(i));
  std::vector<std::uint32_t> order(set.size());
  std::iota(order.begin(), order.end(), 0U);
  const std::shared_ptr<const Stage> stage = std::make_shared<RandAugmentStage>(RandAugmentOptions{});

  auto run = [&](int threads) {
    EpochSpec spec;
    spec.plan.images = &set;
    spec.plan.order = shuffled(order, 3, 1);
    spec.plan.seed = 3;
    spec.plan.epoch = 1;
    spec.stages = {stage};
    spec.batch_size = 5;
    spec.graph.threads = threads;
    spec.graph.max_batches_in_flight = 4;
    std::vector<float> all;
    run_epoch(spec, [&](const Batch& batch) { all.insert(all.end(), batch.pixels(), batch.pixels() + batch.numel()); });
    return all;
  };
  const auto one = run(1);
  const auto two = run(2);
  ASSERT_EQ(one.size(), set.pixels.size());
  ASSERT_EQ(two.size(), one.size());
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0);
}

// ---- options -----------------------------------------------------------------------

std::shared_ptr<Stage> make_from(config::Document& document) {
  config::Section section(document, "pretext.stages[0]");
  for (auto& [name, maker] : builtin_stages())
    if (name == section.string("name", "", "stage")) return maker(section);
  ADD_FAILURE() << "no such built-in stage";
  return nullptr;
}

std::string error_of(const std::string& toml) {
  config::Document document = config::Document::parse(toml, "run.toml");
  try {
    make_from(document);
  } catch (const ConfigError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return {};
}

TEST(RandAugmentStage, RegisteredWithDefaultsRecorded) {
  config::Document document =
      config::Document::parse("[[pretext.stages]]\nname = \"rand_augment\"\nops = 3\n", "run.toml");
  ASSERT_NE(make_from(document), nullptr);
  const auto& stage = document.resolved()["pretext"]["stages"][0];
  EXPECT_EQ(stage["ops"].value<std::int64_t>(), 3);
  EXPECT_EQ(stage["magnitude"].value<double>(), 10.0);
  EXPECT_EQ(stage["random_magnitude"].value<bool>(), true);
  EXPECT_EQ(stage["cutout"].value<double>(), 0.5);
}

TEST(RandAugmentStage, OutOfRangeOptionsNameFileLineAndKey) {
  EXPECT_EQ(error_of("[[pretext.stages]]\nname = \"rand_augment\"\nmagnitude = 11\n"),
            "run.toml:3:13: pretext.stages[0].magnitude: expected a number in [0, 10], found 11");
  EXPECT_EQ(error_of("[[pretext.stages]]\nname = \"rand_augment\"\nops = 0\n"),
            "run.toml:3:7: pretext.stages[0].ops: expected an integer in [1, 12], found 0");
  EXPECT_EQ(error_of("[[pretext.stages]]\nname = \"rand_augment\"\ncutout = 1.5\n"),
            "run.toml:3:10: pretext.stages[0].cutout: expected a number in [0, 1], found 1.5");
}

}  // namespace
}  // namespace pretext::stages
