// Tests for the packed dataset format (data/packed.hpp): a bit-exact round
// trip read in place, a clear error for each way a file can be wrong, and
// shards: packed apart, read back as one through a glob.
#include "data/packed.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "data/data_source.hpp"
#include "data/preprocess.hpp"
#include "support/synthetic_idx.hpp"
#include "support/test_images.hpp"

namespace pretext::data {
namespace {

namespace fs = std::filesystem;

ImageSet random_set(std::size_t count, ImageShape shape, std::uint32_t seed) {
  std::mt19937 rng(seed);
  ImageSet set;
  set.shape = shape;
  set.pixels.resize(count * shape.numel());
  for (auto& p : set.pixels) p = static_cast<std::uint8_t>(rng());
  for (std::size_t i = 0; i < count; ++i) set.labels.push_back(static_cast<pretext::data::Label>(rng() % 7) - 1);
  set.origin = "random";
  return set;
}

class Packed : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("packed");
    file_ = dir_ / "set.pack";
    set_ = random_set(5, {3, 4, 5}, 42);
    write_packed(file_, set_, {"cat", "dog", "émeu"});
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Rewrites bytes [at, at + n) of the file.
  void patch(std::size_t at, const void* bytes, std::size_t n) {
    auto contents = testing::read_bytes(file_);
    std::memcpy(contents.data() + at, bytes, n);
    testing::write_bytes(file_, contents);
  }

  void expect_error(const std::string& what, bool verify = true) {
    try {
      read_packed(file_, verify);
      FAIL() << "a bad packed file was accepted (expected: " << what << ")";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(file_.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }

  fs::path dir_;
  fs::path file_;
  ImageSet set_;
};

TEST_F(Packed, StreamedRoundTripIsBitExactWithNothingMapped) {
  const PackedDataset packed = read_packed(file_, true, PackedAccess::stream);
  const ImageSet& got = packed.images;
  EXPECT_TRUE(got.streamed());
  EXPECT_EQ(got.data(), nullptr);  // neither owned nor mapped
  EXPECT_EQ(got.labels, set_.labels);
  EXPECT_EQ(packed.classes, (std::vector<std::string>{"cat", "dog", "émeu"}));
  std::vector<std::uint8_t> scratch(set_.shape.numel());
  for (std::size_t i : {4U, 0U, 2U, 1U, 3U})  // any order
    EXPECT_EQ(std::memcmp(got.image(i, scratch.data()), set_.image(i), set_.shape.numel()), 0) << "image " << i;
}

TEST_F(Packed, StreamedFileCutAfterOpeningNamesTheFileAndTheImage) {
  const PackedDataset packed = read_packed(file_, true, PackedAccess::stream);
  fs::resize_file(file_, 128 + 2 * set_.shape.numel());  // header and two images left
  std::vector<std::uint8_t> scratch(set_.shape.numel());
  EXPECT_NO_THROW(packed.images.image(1, scratch.data()));
  try {
    packed.images.image(3, scratch.data());
    FAIL() << "a read past the end of the file succeeded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(file_.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("image 3"), std::string::npos) << e.what();
  }
}

TEST_F(Packed, StreamedSetsAreNotPaddedInPlace) {
  PackedDataset packed = read_packed(file_, true, PackedAccess::stream);
  EXPECT_THROW(pad_to(packed.images, 8), InputError);
}

TEST_F(Packed, RoundTripIsBitExactAndReadInPlace) {
  const PackedDataset packed = read_packed(file_);
  const ImageSet& got = packed.images;
  EXPECT_EQ(got.shape, set_.shape);
  EXPECT_EQ(got.labels, set_.labels);
  ASSERT_EQ(got.size(), set_.size());
  EXPECT_EQ(std::memcmp(got.data(), set_.data(), set_.pixels.size()), 0);
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(std::memcmp(got.image(i), set_.image(i), set_.shape.numel()), 0) << "image " << i;
  EXPECT_EQ(packed.classes, (std::vector<std::string>{"cat", "dog", "émeu"}));
  EXPECT_EQ(got.origin, file_.string());
  // No copy: the pixels are the mapping's, 64-byte aligned.
  EXPECT_TRUE(got.pixels.empty());
  ASSERT_NE(got.external, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(got.external) % 64, 0U);
}

TEST_F(Packed, TheWriteLeavesOnlyTheFile) {
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(dir_)) entries.push_back(e.path().filename());
  EXPECT_EQ(entries, (std::vector<fs::path>{"set.pack"}));  // no temporary left behind
  write_packed(file_, random_set(2, {1, 2, 2}, 1), {});     // overwriting replaces it whole
  const PackedDataset again = read_packed(file_);
  EXPECT_EQ(again.images.size(), 2U);
  EXPECT_TRUE(again.classes.empty());
}

TEST_F(Packed, AFailedWriteNamesTheFileAndTheSystemsReason) {
  const fs::path nowhere = dir_ / "no-such-folder" / "set.pack";
  try {
    write_packed(nowhere, set_, {});
    FAIL() << "writing into a missing folder succeeded";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cannot write " + nowhere.string()), std::string::npos) << message;
    EXPECT_NE(message.find(std::strerror(ENOENT)), std::string::npos) << message;  // the OS's reason
  }
  EXPECT_FALSE(fs::exists(nowhere.parent_path()));
  const PackedDataset kept = read_packed(file_);  // the file written before is untouched
  EXPECT_EQ(kept.images.size(), set_.size());
}

TEST_F(Packed, PaddingAMappedSetCopiesIntoOwnedPixels) {
  PackedDataset packed = read_packed(file_);
  pad_to(packed.images, 6);
  EXPECT_EQ(packed.images.external, nullptr);
  EXPECT_EQ(packed.images.shape, (ImageShape{3, 6, 6}));
  // Row 0 of the original image 1, channel 2 sits at row 1, column 0 of the padded plane (4x5 in 6x6).
  const std::uint8_t* original = set_.image(1) + 2 * 20;
  const std::uint8_t* padded = packed.images.image(1) + 2 * 36 + 1 * 6 + 0;
  EXPECT_EQ(std::memcmp(original, padded, 5), 0);
}

TEST_F(Packed, ChecksumMismatchIsReportedUnlessSkipped) {
  const std::uint8_t flipped = static_cast<std::uint8_t>(set_.pixels[7] ^ 0xFF);
  patch(kPackedHeaderSize + 7, &flipped, 1);
  expect_error("checksum mismatch");
  EXPECT_EQ(read_packed(file_, false).images.image(0)[7], flipped);  // verify_checksum = false
}

TEST_F(Packed, WrongMagicIsReported) {
  patch(0, "NOTAPACK", 8);
  expect_error("expected magic PRTXPACK, found 'NOTAPACK'");
}

TEST_F(Packed, WrongVersionIsReported) {
  const std::uint32_t version = 2;
  patch(8, &version, 4);
  expect_error("expected packed format version 1, found 2");
}

TEST_F(Packed, TruncatedFilesAreReported) {
  auto bytes = testing::read_bytes(file_);
  bytes.resize(bytes.size() - 10);
  testing::write_bytes(file_, bytes);
  expect_error("truncated");
  bytes.resize(bytes.size() / 2);  // into the pixels
  testing::write_bytes(file_, bytes);
  expect_error("truncated: the header promises");
  bytes.resize(100);
  testing::write_bytes(file_, bytes);
  expect_error("truncated: expected a packed header of 128 bytes, the file has 100");
}

TEST_F(Packed, InconsistentSectionSizesAreReported) {
  const std::uint64_t count = 6;  // one more image than the sections hold
  patch(16, &count, 8);
  expect_error("section sizes disagree");
}

// Labels are int64 on disk but 32-bit in memory (data::Label): a label that
// does not fit, or a negative one other than -1 (unknown), is refused by index.
TEST_F(Packed, LabelsOutsideTheLabelRangeAreReported) {
  std::uint64_t label_offset = 0;
  std::memcpy(&label_offset, testing::read_bytes(file_).data() + 64, 8);
  const std::int64_t too_large = std::int64_t{1} << 40;
  patch(label_offset + 3 * 8, &too_large, 8);
  expect_error("expected every label to be -1 (unknown) or in 0..2147483647, found 1099511627776 at index 3", false);
  const std::int64_t minus_two = -2;
  patch(label_offset + 3 * 8, &minus_two, 8);
  expect_error("found -2 at index 3", false);
  expect_error("checksum mismatch", true);  // checked first: a corrupt file is named as such
}

// Found by fuzz/packed_fuzz.cpp (tests/fuzz/corpus/packed/crash-class-section-wraps):
// offset + size of the class-name section wrapped around 2^64, passed the
// "ends inside the file" check and was read far outside the mapping.
TEST_F(Packed, SectionsWhoseEndWrapsAroundAreReported) {
  std::uint64_t classes_offset = 0;
  std::memcpy(&classes_offset, testing::read_bytes(file_).data() + 80, 8);
  ASSERT_NE(classes_offset, 0U);
  const std::uint64_t wraps_to_8 = UINT64_MAX - classes_offset + 1 + 8;
  patch(88, &wraps_to_8, 8);
  expect_error("the class-name section at byte " + std::to_string(classes_offset), false);
  expect_error("the class-name section at byte " + std::to_string(classes_offset), true);

  write_packed(file_, set_, {"cat", "dog", "émeu"});  // the label section, the same way
  const std::uint64_t label_offset_near_end = UINT64_MAX - 7;
  patch(64, &label_offset_near_end, 8);
  expect_error("truncated: the header promises more than 2^64 bytes", false);
}

TEST_F(Packed, MissingFileIsReported) {
  fs::remove(file_);
  expect_error("cannot open");
}

// Sharded packing (preprocess_to_packed with a Shard) and globs of shards
// (read_packed_files): N hosts each pack a slice, training reads them as one.
class PackedShards : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("packed-shards");
    // 11 images in 3 shards: [0, 3), [3, 7), [7, 11): unequal, as n/N rarely divides.
    const auto idx = testing::write_synthetic_idx(dir_, "train", 11, 5, 3, 9);
    options_.source = "idx";
    options_.path = idx.images.string();
    options_.pad_to = 0;
    whole_ = dir_ / "whole.pack";
    pack(whole_, {});
    for (std::size_t i = 0; i < 3; ++i) pack(dir_ / ("train-" + std::to_string(i) + ".pack"), Shard{i, 3});
    pattern_ = (dir_ / "train-*.pack").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void pack(const fs::path& out, const Shard& shard) {
    std::ostringstream log;
    preprocess_to_packed(options_, out, log, shard);
  }

  // Every image's bytes, read through image(i, scratch): any kind of set.
  static std::vector<std::uint8_t> all_pixels(const ImageSet& set) {
    std::vector<std::uint8_t> pixels, scratch(set.shape.numel());
    for (std::size_t i = 0; i < set.size(); ++i) {
      const std::uint8_t* image = set.image(i, scratch.data());
      pixels.insert(pixels.end(), image, image + set.shape.numel());
    }
    return pixels;
  }

  // The InputError's message, or a failure when there is none.
  static std::string input_error(const std::function<void()>& load) {
    try {
      load();
    } catch (const InputError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no InputError";
    return {};
  }

  fs::path dir_;
  DataOptions options_;
  fs::path whole_;
  std::string pattern_;
};

TEST_F(PackedShards, ShardsAreDisjointSlicesThatConcatenateToTheWholeFile) {
  const PackedDataset whole = read_packed(whole_);
  ASSERT_EQ(whole.images.size(), 11U);
  const std::vector<std::uint8_t> whole_pixels = all_pixels(whole.images);
  const std::size_t bytes = whole.images.shape.numel();
  const std::size_t firsts[] = {0, 3, 7, 11};
  std::vector<std::uint8_t> pixels;
  std::vector<Label> labels;
  for (std::size_t i = 0; i < 3; ++i) {
    const PackedDataset shard = read_packed(dir_ / ("train-" + std::to_string(i) + ".pack"));
    EXPECT_EQ(shard.images.shape, whole.images.shape);
    ASSERT_EQ(shard.images.size(), firsts[i + 1] - firsts[i]) << "shard " << i;
    // Exactly images [first, last) of the whole, in order.
    const std::vector<std::uint8_t> shard_pixels = all_pixels(shard.images);
    EXPECT_TRUE(std::equal(shard_pixels.begin(), shard_pixels.end(),
                           whole_pixels.begin() + static_cast<std::ptrdiff_t>(firsts[i] * bytes)))
        << "shard " << i;
    pixels.insert(pixels.end(), shard_pixels.begin(), shard_pixels.end());
    labels.insert(labels.end(), shard.images.labels.begin(), shard.images.labels.end());
  }
  EXPECT_EQ(pixels, whole_pixels);
  EXPECT_EQ(labels, whole.images.labels);
}

TEST_F(PackedShards, AGlobOfTheShardsIsTheWholeFileReadInPlace) {
  const PackedDataset whole = read_packed(whole_);
  for (const PackedAccess access : {PackedAccess::mmap, PackedAccess::stream}) {
    const PackedDataset joined = read_packed_files(pattern_, true, access);
    const ImageSet& set = joined.images;
    EXPECT_EQ(set.shape, whole.images.shape);
    EXPECT_EQ(set.labels, whole.images.labels);
    EXPECT_EQ(joined.classes, whole.classes);
    EXPECT_EQ(all_pixels(set), all_pixels(whole.images));
    EXPECT_NE(set.origin.find(pattern_), std::string::npos) << set.origin;
    if (access == PackedAccess::mmap) {
      EXPECT_TRUE(set.pixels.empty());  // no copy: one mapped part per file
      ASSERT_EQ(set.parts.size(), 3U);
      EXPECT_EQ(set.parts[2].first, 7U);
      EXPECT_EQ(set.data(), nullptr);  // not one contiguous range
    } else {
      EXPECT_TRUE(set.streamed());
    }
    // Written out again (merging the shards), it is the unsharded file, byte for byte.
    const fs::path merged = dir_ / "merged.pack";
    write_packed(merged, set, joined.classes);
    EXPECT_EQ(testing::read_bytes(merged), testing::read_bytes(whole_));
  }
}

TEST_F(PackedShards, AGlobIsADataSourceAndPadsAcrossFiles) {
  DataOptions packed;
  packed.source = "packed";
  const LoadedData joined = load_data_source(packed, pattern_, "");
  ImageSet padded = joined.images;
  pad_to(padded, 7);
  ImageSet whole = read_packed(whole_).images;
  pad_to(whole, 7);
  EXPECT_EQ(padded.pixels, whole.pixels);
  // A shard of the glob is that slice of the whole.
  const LoadedData middle = load_data_source(packed, pattern_, "", {}, Shard{1, 2});
  EXPECT_EQ(middle.first, 5U);
  EXPECT_EQ(middle.total, 11U);
  EXPECT_EQ(middle.images.labels, std::vector<Label>(whole.labels.begin() + 5, whole.labels.end()));
}

TEST_F(PackedShards, FilesThatDisagreeAreRefusedNamingBoth) {
  const fs::path first = dir_ / "train-0.pack";
  const fs::path other = dir_ / "train-1.pack";
  ImageSet wider = random_set(2, {1, 5, 6}, 3);
  write_packed(other, wider, {});
  std::string message = input_error([&] { read_packed_files(pattern_); });
  EXPECT_NE(message.find(other.string()), std::string::npos) << message;
  EXPECT_NE(message.find(first.string()), std::string::npos) << message;
  EXPECT_NE(message.find("expected 1x5x5 images"), std::string::npos) << message;
  EXPECT_NE(message.find("found 1x5x6"), std::string::npos) << message;

  write_packed(first, random_set(2, {1, 5, 5}, 4), {"cat", "dog"});
  write_packed(other, random_set(2, {1, 5, 5}, 5), {"cat", "emu"});
  message = input_error([&] { read_packed_files(pattern_); });
  EXPECT_NE(message.find(other.string()), std::string::npos) << message;
  EXPECT_NE(message.find(first.string()), std::string::npos) << message;
  EXPECT_NE(message.find("expected class 1 to be 'dog'"), std::string::npos) << message;
  EXPECT_NE(message.find("found 'emu'"), std::string::npos) << message;
}

TEST_F(PackedShards, APatternThatMatchesNothingIsNamed) {
  const std::string pattern = (dir_ / "test-*.pack").string();
  const std::string message = input_error([&] { read_packed_files(pattern); });
  EXPECT_NE(message.find(pattern), std::string::npos) << message;
  EXPECT_NE(message.find("found none"), std::string::npos) << message;
  EXPECT_EQ(packed_files((dir_ / "whole.pack").string()).size(), 1U);  // no wildcard: the file itself
}

TEST_F(PackedShards, AShardBeyondTheImagesIsRefused) {
  const std::string message = input_error([&] { pack(dir_ / "empty.pack", Shard{0, 12}); });  // 11 images
  EXPECT_NE(message.find("shard 0/12"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir_ / "empty.pack"));
}

}  // namespace
}  // namespace pretext::data
