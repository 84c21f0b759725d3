// Tests for the dataset loaders (data/image_set.hpp). Every input file is
// written by the test itself into a private temporary directory.
#include <gtest/gtest.h>
#include <matio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "data/image_set.hpp"
#include "data/split.hpp"
#include "support/loader_test_support.hpp"

namespace fs = std::filesystem;
using pretext::ImageShape;
using pretext::InputError;
using pretext::data::ImageSet;

namespace {

using pretext::testing::expect_input_error;
using pretext::testing::TempDir;
using pretext::testing::truncate_file;
using pretext::testing::write_bytes;

// ---------------------------------------------------------------------------
// IDX files

void put_u32(std::vector<std::uint8_t>& bytes, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<std::uint8_t>(value >> shift));
}

std::vector<std::uint8_t> idx_images(std::uint32_t count, std::uint32_t height, std::uint32_t width,
                                     const std::vector<std::uint8_t>& pixels, std::uint32_t magic = 0x803) {
  std::vector<std::uint8_t> bytes;
  put_u32(bytes, magic);
  put_u32(bytes, count);
  put_u32(bytes, height);
  put_u32(bytes, width);
  bytes.insert(bytes.end(), pixels.begin(), pixels.end());
  return bytes;
}

std::vector<std::uint8_t> idx_labels(const std::vector<std::uint8_t>& labels, std::uint32_t magic = 0x801) {
  std::vector<std::uint8_t> bytes;
  put_u32(bytes, magic);
  put_u32(bytes, static_cast<std::uint32_t>(labels.size()));
  bytes.insert(bytes.end(), labels.begin(), labels.end());
  return bytes;
}

void write_gzip(const fs::path& file, const std::vector<std::uint8_t>& bytes) {
  gzFile out = gzopen(file.c_str(), "wb");
  if (out == nullptr) throw std::runtime_error("cannot create " + file.string());
  const int written = gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size()));
  if (gzclose(out) != Z_OK || written != static_cast<int>(bytes.size())) {
    throw std::runtime_error("cannot write " + file.string());
  }
}

/// Pixels with no pattern zlib could shrink, so truncating the .gz cuts data.
std::vector<std::uint8_t> noise(std::size_t size) {
  std::vector<std::uint8_t> bytes(size);
  std::uint32_t state = 12345;
  for (auto& byte : bytes) {
    state = state * 1664525u + 1013904223u;
    byte = static_cast<std::uint8_t>(state >> 24);
  }
  return bytes;
}

const std::vector<std::uint8_t> kPixels = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};  // 3 of 2x3

void expect_small_idx_set(const ImageSet& set) {
  EXPECT_EQ(set.shape, (ImageShape{1, 2, 3}));
  EXPECT_EQ(set.pixels, kPixels);
  EXPECT_EQ(set.labels, (std::vector<pretext::data::Label>{9, 0, 4}));
}

TEST(Idx, RoundTripsRawFiles) {
  TempDir dir;
  const auto images = dir.file("train-images-idx3-ubyte");
  const auto labels = dir.file("train-labels-idx1-ubyte");
  write_bytes(images, idx_images(3, 2, 3, kPixels));
  write_bytes(labels, idx_labels({9, 0, 4}));
  const ImageSet set = pretext::data::load_idx(images, labels);
  expect_small_idx_set(set);
  EXPECT_NE(set.origin.find(images.string()), std::string::npos);
  EXPECT_NE(set.origin.find(labels.string()), std::string::npos);
}

TEST(Idx, RoundTripsGzipFiles) {
  TempDir dir;
  const auto images = dir.file("t10k-images-idx3-ubyte.gz");
  const auto labels = dir.file("t10k-labels-idx1-ubyte.gz");
  write_gzip(images, idx_images(3, 2, 3, kPixels));
  write_gzip(labels, idx_labels({9, 0, 4}));
  expect_small_idx_set(pretext::data::load_idx(images, labels));

  // Each file's form is detected on its own.
  const auto raw_labels = dir.file("raw-labels");
  write_bytes(raw_labels, idx_labels({9, 0, 4}));
  expect_small_idx_set(pretext::data::load_idx(images, raw_labels));
}

TEST(IdxErrors, WrongMagic) {
  TempDir dir;
  const auto images = dir.file("images.idx");
  const auto labels = dir.file("labels.idx");
  write_bytes(images, idx_labels({1, 2, 3}));  // a label file where images belong
  write_bytes(labels, idx_labels({1, 2, 3}));
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, images,
                     {"expected IDX magic 0x00000803", "found 0x00000801"});

  write_bytes(images, idx_images(3, 2, 3, kPixels));
  write_bytes(labels, idx_labels({1, 2, 3}, 0x00000802));
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, labels, {"0x00000801", "0x00000802"});
}

TEST(IdxErrors, TruncatedImages) {
  TempDir dir;
  const auto images = dir.file("cut-images-idx3-ubyte");
  const auto labels = dir.file("cut-labels-idx1-ubyte");
  write_bytes(images, idx_images(3, 2, 3, std::vector<std::uint8_t>(kPixels.begin(), kPixels.end() - 4)));
  write_bytes(labels, idx_labels({1, 2, 3}));
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, images, {"expected 18 bytes", "got 14"});

  write_bytes(images, {0, 0, 8, 3, 0, 0});
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, images, {"header", "got 6"});
}

TEST(IdxErrors, TruncatedGzip) {
  TempDir dir;
  const auto images = dir.file("cut-images-idx3-ubyte.gz");
  const auto labels = dir.file("cut-labels-idx1-ubyte.gz");
  write_gzip(images, idx_images(40, 28, 28, noise(std::size_t{40} * 28 * 28)));
  write_gzip(labels, idx_labels(std::vector<std::uint8_t>(40, 1)));
  const auto whole_size = fs::file_size(images);

  truncate_file(images, whole_size / 2);
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, images, {"expected 31360 bytes", "ends early"});

  // All data present, only the CRC/length trailer cut off.
  write_gzip(images, idx_images(40, 28, 28, noise(std::size_t{40} * 28 * 28)));
  truncate_file(images, whole_size - 4);
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, images, {"trailer"});
}

TEST(IdxErrors, MoreDataThanDeclared) {
  TempDir dir;
  const auto images = dir.file("long-images");
  const auto labels = dir.file("long-labels");
  std::vector<std::uint8_t> bytes = idx_images(3, 2, 3, kPixels);
  bytes.push_back(99);
  write_bytes(images, bytes);
  write_bytes(labels, idx_labels({1, 2, 3}));
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, images, {"more data"});
}

TEST(IdxErrors, CountMismatch) {
  TempDir dir;
  const auto images = dir.file("images3");
  const auto labels = dir.file("labels2");
  write_bytes(images, idx_images(3, 2, 3, kPixels));
  write_bytes(labels, idx_labels({1, 2}));
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, labels, {"images3", "(3)", "found 2"});
}

TEST(IdxErrors, MissingFiles) {
  TempDir dir;
  const auto images = dir.file("gone-images-idx3-ubyte.gz");
  const auto labels = dir.file("gone-labels-idx1-ubyte.gz");
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, images, {"not found"});
  write_gzip(images, idx_images(3, 2, 3, kPixels));
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, labels, {"not found"});
}

TEST(IdxErrors, ZeroImages) {
  TempDir dir;
  const auto images = dir.file("none-images");
  const auto labels = dir.file("none-labels");
  write_bytes(images, idx_images(0, 28, 28, {}));
  write_bytes(labels, idx_labels({}));
  expect_input_error([&] { pretext::data::load_idx(images, labels); }, images, {"0 images"});
}

TEST(IdxLabelsPath, PairsImageFileWithLabelFile) {
  EXPECT_EQ(pretext::data::idx_labels_path_for("/d/fashion/train-images-idx3-ubyte.gz"),
            fs::path("/d/fashion/train-labels-idx1-ubyte.gz"));
  EXPECT_EQ(pretext::data::idx_labels_path_for("t10k-images-idx3-ubyte"), fs::path("t10k-labels-idx1-ubyte"));
  // Only the file name is rewritten, never the directory.
  EXPECT_EQ(pretext::data::idx_labels_path_for("/images-idx3/a-images-idx3-ubyte"),
            fs::path("/images-idx3/a-labels-idx1-ubyte"));
  expect_input_error([] { pretext::data::idx_labels_path_for("/d/train_32x32.mat"); }, "train_32x32.mat",
                     {"images-idx3"});
}

// ---------------------------------------------------------------------------
// pad_to and check_labels

ImageSet make_set(ImageShape shape, std::vector<std::uint8_t> pixels, std::size_t count) {
  ImageSet set;
  set.shape = shape;
  set.pixels = std::move(pixels);
  set.labels.assign(count, 0);
  set.origin = "memory-set";
  return set;
}

TEST(PadTo, PadsSymmetricallyWithZeros) {
  ImageSet set = make_set({1, 2, 2}, {1, 2, 3, 4}, 1);
  pretext::data::pad_to(set, 4);
  EXPECT_EQ(set.shape, (ImageShape{1, 4, 4}));
  const std::vector<std::uint8_t> expected = {
      0, 0, 0, 0,  //
      0, 1, 2, 0,  //
      0, 3, 4, 0,  //
      0, 0, 0, 0,  //
  };
  EXPECT_EQ(set.pixels, expected);
}

TEST(PadTo, PutsTheOddPixelAtBottomRight) {
  ImageSet set = make_set({1, 1, 2}, {5, 6}, 1);
  pretext::data::pad_to(set, 4);  // rows: 1 above, 2 below; columns: 1 left, 1 right
  const std::vector<std::uint8_t> expected = {
      0, 0, 0, 0,  //
      0, 5, 6, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 0,  //
  };
  EXPECT_EQ(set.pixels, expected);

  ImageSet narrow = make_set({1, 2, 1}, {7, 8}, 1);
  pretext::data::pad_to(narrow, 3);  // rows: 0 above, 1 below; columns: 1 left, 1 right
  const std::vector<std::uint8_t> expected_narrow = {0, 7, 0, 0, 8, 0, 0, 0, 0};
  EXPECT_EQ(narrow.pixels, expected_narrow);
}

TEST(PadTo, PadsEveryChannelOfEveryImage) {
  ImageSet set = make_set({2, 1, 1}, {1, 2, 3, 4}, 2);
  pretext::data::pad_to(set, 3);
  ASSERT_EQ(set.pixels.size(), 2u * 2u * 9u);
  for (std::size_t plane = 0; plane < 4; ++plane) {
    for (std::size_t i = 0; i < 9; ++i) {
      EXPECT_EQ(set.pixels[plane * 9 + i], i == 4 ? plane + 1 : 0) << "plane " << plane << " pixel " << i;
    }
  }
}

TEST(PadTo, LeavesImagesOfTheTargetSizeAlone) {
  ImageSet set = make_set({1, 2, 2}, {1, 2, 3, 4}, 1);
  pretext::data::pad_to(set, 2);
  EXPECT_EQ(set.shape, (ImageShape{1, 2, 2}));
  EXPECT_EQ(set.pixels, (std::vector<std::uint8_t>{1, 2, 3, 4}));
}

TEST(PadTo, RejectsImagesLargerThanTheTarget) {
  ImageSet set = make_set({1, 2, 5}, std::vector<std::uint8_t>(10, 1), 1);
  expect_input_error([&] { pretext::data::pad_to(set, 4); }, "memory-set", {"2x5", "4x4"});
  EXPECT_EQ(set.shape, (ImageShape{1, 2, 5}));
}

TEST(CheckLabels, AcceptsLabelsInRange) {
  ImageSet set = make_set({1, 1, 1}, {0, 0, 0}, 3);
  set.labels = {0, 9, 5};
  EXPECT_NO_THROW(pretext::data::check_labels(set, 10));
}

TEST(CheckLabels, NamesTheFirstLabelOutOfRange) {
  ImageSet set = make_set({1, 1, 1}, {0, 0, 0, 0}, 4);
  set.labels = {0, 9, 10, 11};
  expect_input_error([&] { pretext::data::check_labels(set, 10); }, "memory-set", {"found 10 at index 2", "0..9"});
  set.labels = {0, -1};
  expect_input_error([&] { pretext::data::check_labels(set, 10); }, "memory-set", {"found -1 at index 1"});
}

// ---------------------------------------------------------------------------
// The labelled / validation / unlabelled split

using pretext::data::Label;
using pretext::data::Split;
using pretext::data::split_indices;
using pretext::data::split_indices_per_class;

/// 40 images of 4 classes, deliberately unbalanced: class c has 4 * (c + 1).
std::vector<Label> unbalanced_labels() {
  std::vector<Label> labels;
  for (Label c = 0; c < 4; ++c) labels.insert(labels.end(), static_cast<std::size_t>(4 * (c + 1)), c);
  return labels;
}

std::vector<int> class_counts(const std::vector<std::uint32_t>& indices, const std::vector<Label>& labels) {
  std::vector<int> counts(4, 0);
  for (const auto i : indices) ++counts[static_cast<std::size_t>(labels[i])];
  return counts;
}

/// Every image is in exactly one part.
void expect_partition(const Split& split, std::size_t total) {
  std::set<std::uint32_t> seen;
  for (const auto* part : {&split.labelled, &split.validation, &split.unlabelled})
    for (const auto i : *part) {
      EXPECT_LT(i, total);
      EXPECT_TRUE(seen.insert(i).second) << "image " << i << " drawn twice";
    }
  EXPECT_EQ(seen.size(), total);
}

TEST(SplitPerClass, DrawsTheQuotaOfEachClassWithTheRemainderToTheFirstClasses) {
  const std::vector<Label> labels = unbalanced_labels();
  for (std::uint64_t seed = 0; seed < 5; ++seed) {
    const Split split = split_indices_per_class(labels, 4, 10, 6, 0, seed, "memory-set");
    EXPECT_EQ(class_counts(split.labelled, labels), (std::vector<int>{3, 3, 2, 2})) << "seed " << seed;
    EXPECT_EQ(split.validation.size(), 6U);
    EXPECT_EQ(split.unlabelled.size(), 24U);
    expect_partition(split, labels.size());
  }
}

TEST(SplitPerClass, IsDeterministicPerSeedAndFollowsTheUniformDrawsShuffle) {
  const std::vector<Label> labels = unbalanced_labels();
  const Split a = split_indices_per_class(labels, 4, 8, 6, 5, 7, "memory-set");
  const Split b = split_indices_per_class(labels, 4, 8, 6, 5, 7, "memory-set");
  EXPECT_EQ(a.labelled, b.labelled);
  EXPECT_EQ(a.validation, b.validation);
  EXPECT_EQ(a.unlabelled, b.unlabelled);
  EXPECT_EQ(a.unlabelled.size(), 5U);
  EXPECT_NE(split_indices_per_class(labels, 4, 8, 6, 5, 8, "memory-set").labelled, a.labelled);
  // Its validation images are the uniform draw's shuffle, less the images
  // the per-class draw took as labelled: only the labelled set is steered.
  const Split uniform = split_indices(labels.size(), 8, 6, 5, 7, "memory-set");
  std::vector<std::uint32_t> shuffle = uniform.labelled;
  for (const auto* part : {&uniform.validation, &uniform.unlabelled})
    shuffle.insert(shuffle.end(), part->begin(), part->end());
  shuffle.erase(
      std::remove_if(shuffle.begin(), shuffle.end(),
                     [&](std::uint32_t i) { return std::count(a.labelled.begin(), a.labelled.end(), i) > 0; }),
      shuffle.end());
  EXPECT_EQ(a.validation, std::vector<std::uint32_t>(shuffle.begin(), shuffle.begin() + 6));
}

TEST(SplitPerClass, NeverDrawsImagesOfUnknownClassAsLabelled) {
  std::vector<Label> labels = unbalanced_labels();
  labels.insert(labels.end(), 20, -1);
  const Split split = split_indices_per_class(labels, 4, 16, 4, 0, 3, "memory-set");
  for (const auto i : split.labelled) EXPECT_GE(labels[i], 0) << "image " << i;
  EXPECT_EQ(class_counts(split.labelled, labels), (std::vector<int>{4, 4, 4, 4}));
  expect_partition(split, labels.size());
}

TEST(SplitPerClass, AClassShortOfItsQuotaIsAnInputErrorNamingTheClass) {
  // Class 0 has 4 images; 20 labelled over 4 classes asks for 5 of each.
  expect_input_error([] { split_indices_per_class(unbalanced_labels(), 4, 20, 4, 0, 0, "memory-set"); }, "memory-set",
                     {"5 labelled images of class 0, but the file holds 4", "labelled_draw"});
  expect_input_error([] { split_indices_per_class(unbalanced_labels(), 4, 30, 20, 0, 0, "memory-set"); }, "memory-set",
                     {"data.validation (20)"});
}

TEST(SplitUniform, KeepsTheStudysDrawWhateverTheLabels) {
  const Split split = split_indices(40, 10, 6, 0, 0, "memory-set");
  EXPECT_EQ(split.labelled.size(), 10U);
  EXPECT_EQ(split.validation.size(), 6U);
  EXPECT_EQ(split.unlabelled.size(), 24U);
  expect_partition(split, 40);
  // The uniform draw at this seed is not balanced: per_class is not a no-op.
  EXPECT_NE(class_counts(split.labelled, unbalanced_labels()), (std::vector<int>{3, 3, 2, 2}));
}

}  // namespace
