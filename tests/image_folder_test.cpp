// Tests for image-folder datasets (data/image_folder.hpp): labels from sorted
// class folders, file order, the unlabelled layout and the bad-image policy.
#include "data/image_folder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "support/synthetic_idx.hpp"
#include "support/test_images.hpp"

namespace pretext::data {
namespace {

namespace fs = std::filesystem;

class ImageFolder : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_dir("image-folder"); }
  void TearDown() override { fs::remove_all(dir_); }

  // A 2x2 grey PNG of one value: the value tells which file an image came from.
  void image(const fs::path& relative, std::uint8_t value) {
    testing::write_grey_png(dir_ / relative, 2, 2, std::vector<std::uint8_t>(4, value));
  }

  FolderOptions options(bool labelled = true, BadImagePolicy policy = BadImagePolicy::fail) {
    FolderOptions o;
    o.target = DecodeTarget{1, 2};
    o.labelled_layout = labelled;
    o.on_bad_image = policy;
    o.report_skip = [this](const std::string& message) { reports_.push_back(message); };
    return o;
  }

  static std::vector<int> first_pixels(const ImageSet& set) {
    std::vector<int> values;
    for (std::size_t i = 0; i < set.size(); ++i) values.push_back(set.image(i)[0]);
    return values;
  }

  fs::path dir_;
  std::vector<std::string> reports_;
};

TEST_F(ImageFolder, ClassFoldersMapToSortedLabelsAndFilesToSortedOrder) {
  image("zebra/b.png", 31);
  image("zebra/a.png", 30);
  image("ant/x.PNG", 10);
  image("ant/deeper/y.png", 11);  // nested: still the class "ant"
  image("Mouse/only.png", 20);
  testing::write_bytes(dir_ / "ant" / "notes.txt", {'n', 'o'});  // not an image: ignored
  const FolderDataset folder = load_image_folder(dir_, options());
  // Byte order: upper case sorts first.
  EXPECT_EQ(folder.classes, (std::vector<std::string>{"Mouse", "ant", "zebra"}));
  EXPECT_EQ(folder.images.labels, (std::vector<pretext::data::Label>{0, 1, 1, 2, 2}));
  // Within a class, by path: "ant/deeper/y.png" < "ant/x.PNG".
  EXPECT_EQ(first_pixels(folder.images), (std::vector<int>{20, 11, 10, 30, 31}));
  EXPECT_EQ(folder.images.shape, (ImageShape{1, 2, 2}));
  EXPECT_EQ(folder.skipped, 0U);
  // Loading again gives the same order: stable.
  EXPECT_EQ(first_pixels(load_image_folder(dir_, options()).images), first_pixels(folder.images));
}

TEST_F(ImageFolder, UnlabelledLayoutTakesEveryImageWithUnknownLabels) {
  image("a/1.png", 1);
  image("b/c/2.jpg.png", 2);
  image("3.png", 3);
  const FolderDataset folder = load_image_folder(dir_, options(false));
  EXPECT_TRUE(folder.classes.empty());
  EXPECT_EQ(folder.images.labels, (std::vector<pretext::data::Label>{-1, -1, -1}));
  EXPECT_EQ(first_pixels(folder.images), (std::vector<int>{3, 1, 2}));  // "3.png" < "a/..." < "b/..."
}

void break_images(const fs::path& dir) {
  testing::write_bytes(dir / "cat" / "corrupt.png", {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 1, 2, 3});
  testing::write_grey_png(dir / "cat" / "truncated.png", 16, 16, std::vector<std::uint8_t>(256, 9));
  testing::truncate_to_half(dir / "cat" / "truncated.png");
}

TEST_F(ImageFolder, SkipPolicyCountsAndNamesEachBadFile) {
  image("cat/a.png", 1);
  image("cat/z.png", 2);
  image("dog/a.png", 3);
  break_images(dir_);
  const FolderDataset folder = load_image_folder(dir_, options(true, BadImagePolicy::skip));
  EXPECT_EQ(folder.skipped, 2U);
  ASSERT_EQ(reports_.size(), 2U);
  EXPECT_NE(reports_[0].find("corrupt.png"), std::string::npos) << reports_[0];
  EXPECT_NE(reports_[1].find("truncated.png"), std::string::npos) << reports_[1];
  // The good images keep their labels.
  EXPECT_EQ(first_pixels(folder.images), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(folder.images.labels, (std::vector<pretext::data::Label>{0, 0, 1}));
}

TEST_F(ImageFolder, FailPolicyThrowsNamingTheFirstBadFile) {
  image("cat/a.png", 1);
  image("dog/a.png", 3);
  break_images(dir_);
  try {
    load_image_folder(dir_, options(true, BadImagePolicy::fail));
    FAIL() << "bad images were accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt.png"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(reports_.empty());
}

TEST_F(ImageFolder, MissingOrEmptyFoldersAreInputErrors) {
  EXPECT_THROW(load_image_folder(dir_ / "absent", options()), InputError);
  EXPECT_THROW(load_image_folder(dir_, options()), InputError);  // no class folders
  fs::create_directories(dir_ / "empty_class");
  image("full/a.png", 1);
  try {
    load_image_folder(dir_, options());
    FAIL() << "an empty class folder was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("empty_class"), std::string::npos) << e.what();
  }
}

TEST_F(ImageFolder, ProgressReachesTheTotal) {
  image("a/1.png", 1);
  image("a/2.png", 2);
  auto o = options();
  std::size_t last = 0, total = 0;
  o.progress = [&](std::size_t done, std::size_t all) { last = done, total = all; };
  load_image_folder(dir_, o);
  EXPECT_EQ(last, 2U);
  EXPECT_EQ(total, 2U);
}

// `pretext preprocess --shard`: each host decodes only its slice of the sorted
// file list, and the slices put together are the whole folder.
TEST_F(ImageFolder, ShardsDecodeOnlyTheirSliceOfTheSortedFiles) {
  image("ant/a.png", 10);
  image("ant/b.png", 11);
  image("bee/c.png", 20);
  image("cat/d.png", 30);
  image("cat/e.png", 31);
  // The sixth file in sorted order: undecodable, so decoding it fails the load.
  testing::write_bytes(dir_ / "cat" / "f.png", {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 1, 2, 3});
  const std::vector<std::vector<int>> expected_pixels = {{10, 11}, {20, 30}};  // [0, 2) and [2, 4) of 6
  const std::vector<std::vector<pretext::data::Label>> expected_labels = {{0, 0}, {1, 2}};
  for (std::size_t index = 0; index < 2; ++index) {
    auto o = options();
    o.shard = Shard{index, 3};
    std::size_t total = 0;
    o.progress = [&](std::size_t, std::size_t all) { total = all; };
    const FolderDataset shard = load_image_folder(dir_, o);  // f.png is not in it: no error
    EXPECT_EQ(first_pixels(shard.images), expected_pixels[index]) << "shard " << index;
    EXPECT_EQ(shard.images.labels, expected_labels[index]) << "shard " << index;
    // Labels mean the same in every shard: the classes are the whole folder's.
    EXPECT_EQ(shard.classes, (std::vector<std::string>{"ant", "bee", "cat"}));
    EXPECT_EQ(shard.listed, 6U);
    EXPECT_EQ(shard.first, 2 * index);
    EXPECT_EQ(total, 2U);  // progress counts the shard's files
  }
  auto last = options();
  last.shard = Shard{2, 3};
  try {
    load_image_folder(dir_, last);  // e.png and f.png
    FAIL() << "the shard holding the bad file loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("f.png"), std::string::npos) << e.what();
  }
  last.on_bad_image = BadImagePolicy::skip;
  EXPECT_EQ(first_pixels(load_image_folder(dir_, last).images), (std::vector<int>{31}));
}

TEST_F(ImageFolder, AShardWithNoFilesIsRefusedByName) {
  image("ant/a.png", 10);
  image("bee/b.png", 20);
  auto o = options();
  o.shard = Shard{0, 3};  // 2 files in 3 shards: [0, 0) is empty
  try {
    load_image_folder(dir_, o);
    FAIL() << "an empty shard loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(dir_.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shard 0/3"), std::string::npos) << e.what();
  }
  o.shard = Shard{1, 3};
  EXPECT_EQ(first_pixels(load_image_folder(dir_, o).images), (std::vector<int>{10}));
}

TEST(ImageFileNames, ExtensionsAreCaseInsensitive) {
  EXPECT_TRUE(is_image_file("a/b.PNG"));
  EXPECT_TRUE(is_image_file("b.Jpeg"));
  EXPECT_TRUE(is_image_file("c.jpg"));
  EXPECT_FALSE(is_image_file("d.gif"));
  EXPECT_FALSE(is_image_file("png"));
}

}  // namespace
}  // namespace pretext::data
