#include "pretext/image_ops.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <numeric>
#include <set>
#include <stdexcept>
#include <vector>

#include "stages/builtin_stages.hpp"

namespace pretext::ops {
namespace {

// 4x4 single-channel image holding 0..15 row-major:
//    0  1  2  3
//    4  5  6  7
//    8  9 10 11
//   12 13 14 15
std::vector<float> counting_image() {
  std::vector<float> v(16);
  std::iota(v.begin(), v.end(), 0.0F);
  return v;
}

std::vector<float> rotated(int k) {
  auto src = counting_image();
  std::vector<float> dst(16, -1.0F);
  rotate90({src.data(), {1, 4, 4}}, {dst.data(), {1, 4, 4}}, k);
  return dst;
}

TEST(CopyRegion, CopiesARectangleInEveryChannelAndRowPointersAddressIt) {
  std::vector<float> source(2 * 4 * 5);
  std::iota(source.begin(), source.end(), 0.0F);
  std::vector<float> target(2 * 3 * 3, -1.0F);
  const ConstImageView src{source.data(), {2, 4, 5}};
  const ImageView dst{target.data(), {2, 3, 3}};
  copy_region(src, {1, 2, 2, 3}, dst, 1, 0);  // rows 1-2, columns 2-4 -> rows 1-2 of dst
  for (int c = 0; c < 2; ++c) {
    EXPECT_EQ(dst.at(c, 0, 0), -1.0F);  // untouched
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 3; ++x) EXPECT_EQ(dst.row(c, 1 + y)[x], src.at(c, 1 + y, 2 + x)) << c << y << x;
  }
  EXPECT_EQ(&src.at(1, 2, 3), src.row(1, 2) + 3);  // a const float&, not a copy
}

TEST(CopyRegion, ARegionThatDoesNotFitIsAMessageNotAStrayWrite) {
  std::vector<float> source(4 * 4);
  std::vector<float> target(4 * 4, -1.0F);
  const ConstImageView src{source.data(), {1, 4, 4}};
  const ImageView dst{target.data(), {1, 4, 4}};
  EXPECT_THROW(copy_region(src, {2, 0, 3, 4}, dst, 0, 0), std::out_of_range);        // past the source's bottom
  EXPECT_THROW(copy_region(src, {0, 0, 2, 2}, dst, 3, 3), std::out_of_range);        // past the target's corner
  EXPECT_THROW(copy_region(src, {-1, 0, 1, 1}, dst, 0, 0), std::out_of_range);       // negative offset
  EXPECT_THROW(copy_region(src, {INT_MAX, 0, 2, 1}, dst, 0, 0), std::out_of_range);  // top + height overflows int
  EXPECT_THROW(copy_region(src, {0, 0, 1, 1}, {target.data(), {2, 2, 4}}, 0, 0), std::out_of_range);  // channels
  EXPECT_TRUE(std::all_of(target.begin(), target.end(), [](float v) { return v == -1.0F; }));
  try {
    copy_region(src, {0, 0, 2, 2}, dst, 3, 3);
  } catch (const std::out_of_range& error) {
    EXPECT_STREQ(error.what(),
                 "copy_region: 2x2 at (0, 0) of a 1x4x4 image to 2x2 at (3, 3) of a 1x4x4 image does not fit");
  }
  EXPECT_THROW(copy_image(src, {target.data(), {1, 2, 8}}), std::out_of_range);
}

TEST(Rotate90, ZeroTurnsIsIdentity) { EXPECT_EQ(rotated(0), counting_image()); }

TEST(Rotate90, OneTurnIsCounterClockwiseLikeTorchRot90) {
  // torch.rot90(torch.arange(16.).view(4, 4), 1, [0, 1])
  EXPECT_EQ(rotated(1), (std::vector<float>{3, 7, 11, 15, 2, 6, 10, 14, 1, 5, 9, 13, 0, 4, 8, 12}));
}

TEST(Rotate90, TwoTurnsReversesTheImage) {
  EXPECT_EQ(rotated(2), (std::vector<float>{15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
}

TEST(Rotate90, ThreeTurnsIsClockwise) {
  EXPECT_EQ(rotated(3), (std::vector<float>{12, 8, 4, 0, 13, 9, 5, 1, 14, 10, 6, 2, 15, 11, 7, 3}));
}

TEST(Rotate90, EachChannelRotatesIndependently) {
  std::vector<float> src(32);
  std::iota(src.begin(), src.end(), 0.0F);
  std::vector<float> dst(32);
  rotate90({src.data(), {2, 4, 4}}, {dst.data(), {2, 4, 4}}, 1);
  EXPECT_EQ(dst[0], 3.0F);
  EXPECT_EQ(dst[16], 19.0F);
}

// The definition of a counter-clockwise quarter turn, one element at a time.
float rotated_reference(const std::vector<float>& src, int n, int c, int y, int x, int k) {
  int sy = y;
  int sx = x;
  for (int t = 0; t < k; ++t) {  // undo one turn: out[y][x] = in[x][n-1-y]
    const int py = sx;
    const int px = n - 1 - sy;
    sy = py;
    sx = px;
  }
  return src[(static_cast<std::size_t>(c) * n + sy) * n + sx];
}

TEST(Rotate90, TiledPathsMatchTheDefinitionForEverySizeAndTurn) {
  // 8, 16, 32: the 8 x 8 register tiles; 10 and 5: the element-by-element path.
  for (int n : {8, 16, 32, 10, 5}) {
    std::vector<float> src(static_cast<std::size_t>(3 * n * n));
    std::iota(src.begin(), src.end(), 0.0F);
    for (int k = 0; k < 4; ++k) {
      std::vector<float> dst(src.size(), -1.0F);
      rotate90({src.data(), {3, n, n}}, {dst.data(), {3, n, n}}, k);
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < n; ++y)
          for (int x = 0; x < n; ++x)
            ASSERT_EQ(dst[(static_cast<std::size_t>(c) * n + y) * n + x], rotated_reference(src, n, c, y, x, k))
                << "n " << n << ", turns " << k << ", channel " << c << ", y " << y << ", x " << x;
    }
  }
}

TEST(Rotate90, RejectsNonSquare) {
  std::vector<float> src(8);
  std::vector<float> dst(8);
  EXPECT_THROW(rotate90({src.data(), {1, 2, 4}}, {dst.data(), {1, 2, 4}}, 1), std::invalid_argument);
}

std::vector<float> ramp_rgb() {
  std::vector<float> v(3 * 8 * 8);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37) % 101) / 100.0F;
  return v;
}

TEST(ColorJitter, ZeroJitterIsIdentity) {
  auto img = ramp_rgb();
  const auto original = img;
  SampleRng rng(1, 2, 3, 0, 4);
  color_jitter({img.data(), {3, 8, 8}}, ColorJitterParams{}, rng);
  EXPECT_EQ(img, original);
}

TEST(ColorJitter, StaysWithinZeroOne) {
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    auto img = ramp_rgb();
    SampleRng rng(seed, 0, seed, 0, 0);
    color_jitter({img.data(), {3, 8, 8}}, {0.9, 0.9, 0.9}, rng);
    for (float v : img) {
      ASSERT_GE(v, 0.0F);
      ASSERT_LE(v, 1.0F);
    }
  }
}

TEST(ColorJitter, BrightnessFactorStaysInItsRange) {
  // With only brightness, a pixel of 0.5 becomes 0.5 * f with f in [0.8, 1.2].
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    std::vector<float> img(4, 0.5F);
    SampleRng rng(seed, 0, 0, 0, 0);
    color_jitter({img.data(), {1, 2, 2}}, {0.2, 0.0, 0.0}, rng);
    ASSERT_GE(img[0], 0.4F - 1e-6F);
    ASSERT_LE(img[0], 0.6F + 1e-6F);
  }
}

TEST(ColorJitter, SameRngGivesSameResult) {
  auto a = ramp_rgb();
  auto b = ramp_rgb();
  SampleRng ra(9, 1, 5, 2, 7);
  SampleRng rb(9, 1, 5, 2, 7);
  color_jitter({a.data(), {3, 8, 8}}, {0.2, 0.4, 0.5}, ra);
  color_jitter({b.data(), {3, 8, 8}}, {0.2, 0.4, 0.5}, rb);
  EXPECT_EQ(a, b);
}

TEST(Adjust, ContrastBlendsWithGreyMean) {
  // Grey image {0, 1}: mean 0.5; factor 0 gives the mean everywhere.
  std::vector<float> img{0.0F, 1.0F};
  adjust_contrast({img.data(), {1, 1, 2}}, 0.0F);
  EXPECT_FLOAT_EQ(img[0], 0.5F);
  EXPECT_FLOAT_EQ(img[1], 0.5F);
}

TEST(Adjust, SaturationIsNoOpOnGrey) {
  std::vector<float> img{0.2F, 0.7F};
  adjust_saturation({img.data(), {1, 1, 2}}, 0.0F);
  EXPECT_EQ(img, (std::vector<float>{0.2F, 0.7F}));
}

TEST(Adjust, ZeroSaturationGivesGreyscale) {
  std::vector<float> img{1.0F, 0.0F, 0.0F};  // one pure red pixel, CHW
  adjust_saturation({img.data(), {3, 1, 1}}, 0.0F);
  for (float v : img) EXPECT_NEAR(v, 0.2989F, 1e-6F);
}

TEST(Adjust, BrightnessClampsAtOne) {
  std::vector<float> img{0.9F};
  adjust_brightness({img.data(), {1, 1, 1}}, 2.0F);
  EXPECT_FLOAT_EQ(img[0], 1.0F);
}

TEST(FlipHorizontal, MirrorsRows) {
  std::vector<float> img{1, 2, 3, 4};
  flip_horizontal({img.data(), {1, 2, 2}});
  EXPECT_EQ(img, (std::vector<float>{2, 1, 4, 3}));
}

TEST(ResizedCrop, IdentityBoxReturnsTheImageExactly) {
  std::vector<float> src(2 * 5 * 7);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>((i * 29) % 17) / 16.0F;
  std::vector<float> dst(src.size(), -1.0F);
  resized_crop({src.data(), {2, 5, 7}}, {0.0F, 0.0F, 5.0F, 7.0F}, {dst.data(), {2, 5, 7}});
  EXPECT_EQ(dst, src);
}

TEST(ResizedCrop, CentreTwoByTwoUpsampledLikeInterpolate) {
  // F.interpolate(arange(16.).view(1, 1, 4, 4)[..., 1:3, 1:3], size=4,
  //               mode="bilinear", align_corners=False)
  auto src = counting_image();
  std::vector<float> dst(16, -1.0F);
  resized_crop({src.data(), {1, 4, 4}}, {1.0F, 1.0F, 2.0F, 2.0F}, {dst.data(), {1, 4, 4}});
  const std::vector<float> expected{5.0F, 5.25F, 5.75F, 6.0F,    // row 0: the crop's top row, widened
                                    6.0F, 6.25F, 6.75F, 7.0F,    //
                                    8.0F, 8.25F, 8.75F, 9.0F,    //
                                    9.0F, 9.25F, 9.75F, 10.0F};  // row 3: its bottom row
  for (std::size_t i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(dst[i], expected[i]) << "pixel " << i;
}

TEST(ResizedCrop, WholeImageHalvedAveragesTwoByTwoBlocks) {
  // F.interpolate(arange(16.).view(1, 1, 4, 4), size=2, mode="bilinear"): samples at 0.5 and 2.5.
  auto src = counting_image();
  std::vector<float> dst(4, -1.0F);
  resized_crop({src.data(), {1, 4, 4}}, {0.0F, 0.0F, 4.0F, 4.0F}, {dst.data(), {1, 2, 2}});
  EXPECT_EQ(dst, (std::vector<float>{2.5F, 4.5F, 10.5F, 12.5F}));
}

TEST(ResizedCrop, RejectsBoxesOutsideTheImage) {
  auto src = counting_image();
  std::vector<float> dst(16);
  EXPECT_THROW(resized_crop({src.data(), {1, 4, 4}}, {1.0F, 0.0F, 4.0F, 4.0F}, {dst.data(), {1, 4, 4}}),
               std::invalid_argument);
  EXPECT_THROW(resized_crop({src.data(), {1, 4, 4}}, {0.0F, 0.0F, 0.0F, 4.0F}, {dst.data(), {1, 4, 4}}),
               std::invalid_argument);
}

TEST(RandomResizedCropBox, StaysInsideTheImageAndWithinScaleAndRatio) {
  constexpr double kMinScale = 0.2;
  constexpr double kMaxScale = 1.0;
  constexpr double kMinRatio = 3.0 / 4.0;
  constexpr double kMaxRatio = 4.0 / 3.0;
  const ImageShape shape{1, 32, 24};
  const double area = 32.0 * 24.0;
  std::set<std::vector<float>> distinct;
  for (std::uint64_t i = 0; i < 2000; ++i) {
    SampleRng rng(3, 0, i, 0, 0);
    const CropBox b = random_resized_crop_box(shape, kMinScale, kMaxScale, kMinRatio, kMaxRatio, rng);
    ASSERT_GE(b.top, 0.0F);
    ASSERT_GE(b.left, 0.0F);
    ASSERT_GE(b.height, 1.0F);
    ASSERT_GE(b.width, 1.0F);
    ASSERT_LE(b.top + b.height, 32.0F);
    ASSERT_LE(b.left + b.width, 24.0F);
    ASSERT_EQ(b.height, std::round(b.height));  // whole pixels
    // Width and height are the drawn real values rounded to the nearest pixel.
    const double w = b.width;
    const double h = b.height;
    ASSERT_GE((w + 0.5) * (h + 0.5), kMinScale * area) << w << "x" << h;
    ASSERT_LE((w - 0.5) * (h - 0.5), kMaxScale * area) << w << "x" << h;
    ASSERT_GE((w + 0.5) / (h - 0.5), kMinRatio) << w << "x" << h;
    ASSERT_LE((w - 0.5) / (h + 0.5), kMaxRatio) << w << "x" << h;
    distinct.insert({b.top, b.left, b.height, b.width});
  }
  EXPECT_GT(distinct.size(), 500U);  // really random, not one fixed box
}

TEST(RandomResizedCropBox, FullScaleAndUnitRatioIsTheWholeSquareImage) {
  SampleRng rng(1, 2, 3, 4, 5);
  const CropBox b = random_resized_crop_box({3, 16, 16}, 1.0, 1.0, 1.0, 1.0, rng);
  EXPECT_EQ(std::vector<float>({b.top, b.left, b.height, b.width}), std::vector<float>({0.0F, 0.0F, 16.0F, 16.0F}));
}

TEST(RandomResizedCropBox, FallsBackToACentreCropClampedToTheRatio) {
  // A 40x10 image cannot hold any box of ratio >= 2 and half its area or more
  // (its width would exceed 10), so all ten attempts fail.
  SampleRng rng(0, 0, 0, 0, 0);
  const CropBox b = random_resized_crop_box({1, 40, 10}, 0.5, 1.0, 2.0, 3.0, rng);
  // in_ratio 0.25 < 2: full width, height round(10 / 2) = 5, centred.
  EXPECT_EQ(std::vector<float>({b.top, b.left, b.height, b.width}), std::vector<float>({17.0F, 0.0F, 5.0F, 10.0F}));
}

TEST(RandomResizedCropBox, SameRngGivesSameBoxAndBadRangesThrow) {
  SampleRng a(7, 1, 2, 0, 3);
  SampleRng b(7, 1, 2, 0, 3);
  const CropBox x = random_resized_crop_box({1, 32, 32}, 0.2, 1.0, 0.75, 4.0 / 3.0, a);
  const CropBox y = random_resized_crop_box({1, 32, 32}, 0.2, 1.0, 0.75, 4.0 / 3.0, b);
  EXPECT_EQ(std::vector<float>({x.top, x.left, x.height, x.width}),
            std::vector<float>({y.top, y.left, y.height, y.width}));
  EXPECT_THROW((void)random_resized_crop_box({1, 8, 8}, 0.6, 0.5, 1.0, 1.0, a), std::invalid_argument);
  EXPECT_THROW((void)random_resized_crop_box({1, 8, 8}, 0.0, 0.5, 1.0, 1.0, a), std::invalid_argument);
  EXPECT_THROW((void)random_resized_crop_box({1, 8, 8}, 0.5, 0.5, 2.0, 1.0, a), std::invalid_argument);
}

TEST(BuiltinStages, NamesAreUnique) {
  auto stages = stages::builtin_stages();
  std::vector<std::string> names;
  for (auto& [name, maker] : stages) names.push_back(name);
  std::sort(names.begin(), names.end());
  EXPECT_TRUE(std::adjacent_find(names.begin(), names.end()) == names.end());
  EXPECT_FALSE(names.empty());
}

}  // namespace
}  // namespace pretext::ops
