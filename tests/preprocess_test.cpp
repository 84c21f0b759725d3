// End-to-end: image folders and packed files as a run's data
// (data/preprocess.hpp, data/data_source.hpp, [data] keys), and sharded
// packing through the CLI (pretext preprocess --shard I/N).
#include "data/preprocess.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "data/packed.hpp"
#include "common/errors.hpp"
#include "pipeline/train/job.hpp"
#include "support/synthetic_idx.hpp"
#include "support/test_images.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

const char* const kClasses[] = {"circle", "line", "square"};

class FolderData : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("preprocess");
    // 3 classes x 40 images of 12x10 grey: a bright row whose place is the class, plus noise.
    std::uint32_t state = 5;
    for (int label = 0; label < 3; ++label)
      for (int i = 0; i < 40; ++i) {
        std::vector<std::uint8_t> values(120);
        for (auto& v : values) v = static_cast<std::uint8_t>((state = state * 1103515245U + 12345U) >> 27);
        for (int x = 0; x < 12; ++x) values[static_cast<std::size_t>((2 + 3 * label) * 12 + x)] = 230;
        testing::write_grey_png(dir_ / "images" / kClasses[label] / (std::to_string(i) + ".png"), 12, 10, values);
      }
    write_config("folder", (dir_ / "images").string(), "image_size = 8\nchannels = 1\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_config(const std::string& source, const std::string& path, const std::string& extra) {
    config_ = dir_ / (source + ".toml");
    std::ofstream(config_) << "seed = 1\nthreads = 2\n"
                           << "[data]\nsource = \"" << source << "\"\npath = \"" << path << "\"\n"
                           << "test_path = \"\"\nlabelled = 30\nvalidation = 30\npad_to = 16\n"
                           << extra << "[pipeline]\nthreads = 2\n"
                           << "[model]\nplugin = \"conv4\"\nwidth = 4\n"
                           << "[pretext]\nplugin = \"rotation\"\nepochs = 1\nbatch_size = 16\n"
                           << "[transfer]\nmodes = [\"fixed\"]\nepochs = 1\nbatch_size = 16\n"
                           << "[evaluation]\nknn = false\nlinear_probe = false\nrandom_init = false\n";
  }

  toml::table run(const fs::path& out) {
    Job job(JobRequest{config_, {}, out});
    std::ostringstream log;
    Progress progress(log, false);
    return job.run(progress);
  }

  fs::path dir_;
  fs::path config_;
};

// classes.toml of a run directory, read back as TOML.
std::vector<std::string> recorded_classes(const fs::path& run) {
  std::vector<std::string> names;
  const toml::table table = toml::parse_file((run / "classes.toml").string());
  if (const auto* array = table["classes"].as_array())
    for (const auto& name : *array) names.push_back(name.value_or(std::string("?")));
  return names;
}

TEST_F(FolderData, PreprocessWritesAPackedFileThatARunTrainsFrom) {
  const Job validated(JobRequest{config_, {}, {}, false});
  std::ostringstream log;
  const fs::path packed = dir_ / "images.pack";
  const data::PreprocessResult result = data::preprocess_to_packed(validated.options().data, packed, log);
  EXPECT_EQ(result.images, 120U);
  EXPECT_NE(log.str().find("images/s"), std::string::npos) << log.str();

  const data::PackedDataset read_back = data::read_packed(packed);
  EXPECT_EQ(read_back.images.shape, (ImageShape{1, 16, 16}));  // 8x8 decoded, padded
  EXPECT_EQ(read_back.classes, (std::vector<std::string>{"circle", "line", "square"}));
  EXPECT_EQ(read_back.images.labels.front(), 0);
  EXPECT_EQ(read_back.images.labels.back(), 2);

  write_config("packed", packed.string(), "");
  const auto summary = run(dir_ / "run");
  EXPECT_TRUE(summary["transfer"]["fixed"]["val_accuracy"].value<double>().has_value());
  EXPECT_EQ(recorded_classes(dir_ / "run"), (std::vector<std::string>{"circle", "line", "square"}));

  // Read image by image instead of mapped: the same bytes, so the same run.
  write_config("packed", packed.string(), "access = \"stream\"\n");
  const auto streamed = run(dir_ / "run-streamed");
  const auto loss = summary["pretext"]["final_loss"].value<double>();
  ASSERT_TRUE(loss.has_value());
  EXPECT_EQ(streamed["pretext"]["final_loss"].value<double>(), loss);
  EXPECT_EQ(streamed["transfer"]["fixed"]["val_accuracy"].value<double>(),
            summary["transfer"]["fixed"]["val_accuracy"].value<double>());
}

// `pretext preprocess ... --shard I/N` through the CLI, as each host of a
// cluster would run it; its stdout and stderr, and its exit code.
struct CliResult {
  int code = -1;
  std::string output;
};

CliResult run_cli(const std::vector<std::string>& arguments, const fs::path& log) {
  std::string command = std::string("'") + PRETEXT_BINARY + "'";
  for (const auto& argument : arguments) command += " '" + argument + "'";
  const int status = std::system((command + " > '" + log.string() + "' 2>&1").c_str());
  std::ifstream in(log);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, std::string(std::istreambuf_iterator<char>(in), {})};
}

TEST_F(FolderData, ShardsPackedApartTrainAsTheWholeFolder) {
  const Job validated(JobRequest{config_, {}, {}, false});
  std::ostringstream log;
  data::preprocess_to_packed(validated.options().data, dir_ / "whole.pack", log);
  fs::create_directories(dir_ / "shards");
  for (int i = 0; i < 3; ++i) {
    const fs::path out = dir_ / "shards" / ("train-" + std::to_string(i) + ".pack");
    const CliResult result =
        run_cli({"preprocess", config_.string(), "--out", out.string(), "--shard", std::to_string(i) + "/3"},
                dir_ / "preprocess.log");
    ASSERT_EQ(result.code, 0) << result.output;
    EXPECT_NE(result.output.find("shard " + std::to_string(i) + "/3: images " + std::to_string(40 * i) + ".." +
                                 std::to_string(40 * i + 39) + " of 120"),
              std::string::npos)
        << result.output;
    EXPECT_EQ(data::read_packed(out).images.size(), 40U);  // only its third was decoded and written
  }

  const std::string pattern = (dir_ / "shards" / "train-*.pack").string();
  const data::PackedDataset whole = data::read_packed(dir_ / "whole.pack");
  const data::PackedDataset joined = data::read_packed_files(pattern);
  EXPECT_EQ(joined.classes, whole.classes);  // every shard has all three classes' names
  EXPECT_EQ(joined.images.labels, whole.images.labels);
  for (std::size_t i = 0; i < whole.images.size(); ++i)
    ASSERT_EQ(std::memcmp(joined.images.image(i), whole.images.image(i), whole.images.shape.numel()), 0)
        << "image " << i;

  // The same data, so the same run, to the last bit of the loss.
  write_config("packed", (dir_ / "whole.pack").string(), "");
  const auto from_whole = run(dir_ / "run-whole");
  write_config("packed", pattern, "");
  const auto from_shards = run(dir_ / "run-shards");
  const auto loss = from_whole["pretext"]["final_loss"].value<double>();
  ASSERT_TRUE(loss.has_value());
  EXPECT_EQ(from_shards["pretext"]["final_loss"].value<double>(), loss);
  EXPECT_EQ(recorded_classes(dir_ / "run-shards"), (std::vector<std::string>{"circle", "line", "square"}));
}

TEST_F(FolderData, BadShardValuesAreUsageErrors) {
  for (const char* value : {"3/2", "a/b", "1", "0/0", "-1/2", "1/", "/2", "0/2/4"}) {
    const fs::path out = dir_ / "never.pack";
    const CliResult result =
        run_cli({"preprocess", config_.string(), "--out", out.string(), std::string("--shard=") + value},
                dir_ / "preprocess.log");
    EXPECT_EQ(result.code, 2) << value << ": " << result.output;
    EXPECT_NE(result.output.find("--shard"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find(std::string("got '") + value + "'"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("0 <= I < N"), std::string::npos) << result.output;
    EXPECT_FALSE(fs::exists(out)) << value;
  }
  // Written as a separate argument too, a negative index included.
  const CliResult result =
      run_cli({"preprocess", config_.string(), "--out", (dir_ / "never.pack").string(), "--shard", "-1/2"},
              dir_ / "preprocess.log");
  EXPECT_EQ(result.code, 2) << result.output;
  EXPECT_NE(result.output.find("--shard"), std::string::npos) << result.output;
}

TEST_F(FolderData, ARunFromTheFolderRecordsItsClasses) {
  run(dir_ / "run");
  EXPECT_EQ(recorded_classes(dir_ / "run"), (std::vector<std::string>{"circle", "line", "square"}));
}

TEST_F(FolderData, FolderKeysAreValidOnlyForFolders) {
  write_config("idx", (dir_ / "x-images-idx3-ubyte").string(), "image_size = 8\n");
  EXPECT_THROW(Job(JobRequest{config_, {}, {}, false}), ConfigError);
  write_config("folder", (dir_ / "images").string(), "channels = 2\n");
  EXPECT_THROW(Job(JobRequest{config_, {}, {}, false}), ConfigError);
  write_config("folder", (dir_ / "images").string(), "on_bad_image = \"ignore\"\n");
  EXPECT_THROW(Job(JobRequest{config_, {}, {}, false}), ConfigError);
  write_config("packed", (dir_ / "none.pack").string(), "verify_checksum = false\n");
  EXPECT_THROW(Job(JobRequest{config_, {}, {}}), InputError);  // valid keys, missing file
}

TEST_F(FolderData, UnlabelledFoldersCannotRunTransfer) {
  write_config("folder", (dir_ / "images").string(), "image_size = 8\nlabelled_layout = false\n");
  EXPECT_THROW(Job(JobRequest{config_, {}, {}}), InputError);
}

TEST_F(FolderData, IdxPreprocessesWithPadding) {
  const auto idx = testing::write_synthetic_idx(dir_, "train", 50, 6, 3, 4);
  write_config("idx", idx.images.string(), "");
  const Job validated(JobRequest{config_, {}, {}, false});
  std::ostringstream log;
  data::preprocess_to_packed(validated.options().data, dir_ / "idx.pack", log);
  const auto packed = data::read_packed(dir_ / "idx.pack");
  const auto original = data::load_idx(idx.images, idx.labels);
  EXPECT_EQ(packed.images.shape, (ImageShape{1, 16, 16}));
  EXPECT_EQ(packed.images.labels, original.labels);
  EXPECT_EQ(packed.images.image(3)[5 * 16 + 5], original.image(3)[0]);  // padded by 5 on each side
  EXPECT_EQ(packed.images.image(3)[10 * 16 + 10], original.image(3)[5 * 6 + 5]);
}

}  // namespace
}  // namespace pretext
