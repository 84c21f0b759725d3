// pretext export and embed: a tiny run's networks as a PyTorch state dict,
// and its frozen features as .npy files, checked against the saved networks
// loaded independently, and the command line's exit codes.
#include "pipeline/train/export.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>

#include "pipeline/config/section.hpp"
#include "common/errors.hpp"
#include "pipeline/artefacts/npy.hpp"
#include "pipeline/train/job.hpp"
#include "support/synthetic_idx.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

constexpr int kImages = 200;
constexpr int kFileSize = 12;  // padded to 16 by data.pad_to
constexpr int kClasses = 4;
constexpr const char* kModelToml = "width = 8\nblocks = 2\n";  // features 8 x 4 x 4

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The names in a ZIP archive, read from its central directory: find the
/// End Of Central Directory record, then walk the directory it points to.
std::vector<std::string> zip_entry_names(const std::string& zip) {
  const auto u16 = [&](std::size_t at) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(zip[at])) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(zip[at + 1])) << 8;
  };
  const auto u32 = [&](std::size_t at) { return u16(at) | u16(at + 2) << 16; };
  constexpr std::size_t kEocdSize = 22;
  if (zip.size() < kEocdSize) {
    ADD_FAILURE() << "too short for a ZIP archive";
    return {};
  }
  std::size_t eocd = std::string::npos;
  for (std::size_t at = zip.size() - kEocdSize; zip.size() - at <= kEocdSize + 0xFFFF; --at) {
    if (u32(at) == 0x06054b50) {
      eocd = at;
      break;
    }
    if (at == 0) break;
  }
  if (eocd == std::string::npos) {
    ADD_FAILURE() << "no End Of Central Directory record";
    return {};
  }
  const std::uint32_t entries = u16(eocd + 10);
  const std::uint32_t directory_size = u32(eocd + 12);
  std::size_t at = u32(eocd + 16);
  const std::size_t directory_end = at + directory_size;
  std::vector<std::string> names;
  for (std::uint32_t i = 0; i < entries; ++i) {
    if (at + 46 > zip.size() || u32(at) != 0x02014b50) {
      ADD_FAILURE() << "entry " << i << ": no central directory header at " << at;
      return names;
    }
    const std::uint32_t name_length = u16(at + 28);
    const std::uint32_t extra_length = u16(at + 30);
    const std::uint32_t comment_length = u16(at + 32);
    const std::uint32_t local_header = u32(at + 42);
    EXPECT_EQ(u32(local_header), 0x04034b50U) << "entry " << i << ": no local file header";
    names.push_back(zip.substr(at + 46, name_length));
    at += 46 + name_length + extra_length + comment_length;
  }
  EXPECT_EQ(at, directory_end);
  return names;
}

/// Raw pixels of image `i` of an IDX file written by write_synthetic_idx,
/// zero-padded to 16 x 16 and scaled to [0, 1], as (1, 1, 16, 16).
torch::Tensor padded_image(const fs::path& idx, int i) {
  const std::string bytes = read_bytes(idx);
  torch::Tensor image = torch::zeros({1, 1, 16, 16});
  const int offset = (16 - kFileSize) / 2;
  for (int y = 0; y < kFileSize; ++y)
    for (int x = 0; x < kFileSize; ++x)
      image[0][0][y + offset][x + offset] =
          static_cast<unsigned char>(
              bytes[16 + static_cast<std::size_t>(i * kFileSize * kFileSize + y * kFileSize + x)]) /
          255.0F;
  return image;
}

int run_cli(const std::string& arguments) {
  const std::string command = std::string("'") + PRETEXT_BINARY + "' " + arguments + " > /dev/null 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class Export : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(testing::fresh_temp_dir("export"));
    train_ = new testing::SyntheticIdx(testing::write_synthetic_idx(*dir_, "train", kImages, kFileSize, kClasses, 5));
    const fs::path config = *dir_ / "tiny.toml";
    std::ofstream(config) << "seed = 1\nthreads = 1\n"
                          << "[data]\nsource = \"idx\"\npath = \"" << train_->images.string() << "\"\n"
                          << "test_path = \"\"\nlabelled = 40\nvalidation = 40\npad_to = 16\n"
                          << "[pipeline]\nthreads = 1\n"
                          << "[model]\nplugin = \"conv4\"\n"
                          << kModelToml << "[pretext]\nplugin = \"rotation\"\nepochs = 1\nbatch_size = 32\nlr = 0.003\n"
                          << "[transfer]\nmodes = [\"fixed\", \"finetuned\"]\nepochs = 1\nbatch_size = 16\n";
    Job job(JobRequest{config, {}, run_dir()});
    std::ostringstream log;
    Progress progress(log, false);
    job.run(progress);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete train_;
    delete dir_;
  }

  static fs::path run_dir() { return *dir_ / "run"; }

  void SetUp() override {
    host_.set_search_path({PRETEXT_BUILTIN_PLUGIN_DIR});
    auto document = config::Document::parse(kModelToml, "model.toml");
    config::Section options(document, "");
    model_ = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), options);
  }

  /// The networks of `file`, loaded here without SavedRun: the reference.
  SavedNetworks reference(const std::string& file, bool with_head) {
    SavedNetworks n;
    n.backbone = model_->make_backbone(ModelInput{{1, 16, 16}});
    torch::serialize::InputArchive archive;
    archive.load_from((run_dir() / file).string());
    if (!with_head) {
      n.backbone->load(archive);
    } else {
      n.head = model_->make_head(n.backbone->feature_shape(), kClasses);
      torch::serialize::InputArchive backbone, head;
      archive.read("backbone", backbone);
      archive.read("head", head);
      n.backbone->load(backbone);
      n.head->load(head);
    }
    n.backbone->eval();
    return n;
  }

  static std::map<std::string, torch::Tensor> named_state(const SavedNetworks& n) {
    std::map<std::string, torch::Tensor> state;
    for (const auto& [prefix, module] :
         {std::pair<std::string, std::shared_ptr<torch::nn::Module>>{"backbone.", n.backbone}, {"head.", n.head}}) {
      if (!module) continue;
      for (const auto& p : module->named_parameters()) state[prefix + p.key()] = p.value();
      for (const auto& b : module->named_buffers()) state[prefix + b.key()] = b.value();
    }
    return state;
  }

  static std::map<std::string, torch::Tensor> exported(const fs::path& file) {
    const std::string bytes = read_bytes(file);
    const torch::IValue value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
    EXPECT_TRUE(value.isGenericDict());
    std::map<std::string, torch::Tensor> state;
    for (const auto& entry : value.toGenericDict()) state[entry.key().toStringRef()] = entry.value().toTensor();
    return state;
  }

  static void expect_same_state(const std::map<std::string, torch::Tensor>& actual,
                                const std::map<std::string, torch::Tensor>& expected) {
    std::set<std::string> actual_keys, expected_keys;
    for (const auto& [k, v] : actual) actual_keys.insert(k);
    for (const auto& [k, v] : expected) expected_keys.insert(k);
    ASSERT_EQ(actual_keys, expected_keys);
    for (const auto& [key, tensor] : expected) {
      const torch::Tensor& got = actual.at(key);
      EXPECT_EQ(got.scalar_type(), tensor.scalar_type()) << key;
      EXPECT_TRUE(got.device().is_cpu()) << key;
      EXPECT_TRUE(got.is_contiguous()) << key;
      EXPECT_TRUE(torch::equal(got, tensor.cpu())) << key;
    }
  }

  static fs::path* dir_;
  static testing::SyntheticIdx* train_;
  PluginHost host_;
  std::shared_ptr<Model> model_;
};

fs::path* Export::dir_ = nullptr;
testing::SyntheticIdx* Export::train_ = nullptr;

TEST_F(Export, RunSavesTransferNetworksAndTheirShape) {
  for (const char* name : {"model.toml", "backbone.pt", "transfer-fixed.pt", "transfer-finetuned.pt"})
    EXPECT_TRUE(fs::is_regular_file(run_dir() / name)) << name;
  EXPECT_FALSE(fs::exists(run_dir() / "transfer-scratch.pt"));  // not in transfer.modes
  const NetworkShape shape = read_network_shape(run_dir());
  EXPECT_EQ(shape.input.channels, 1);
  EXPECT_EQ(shape.input.height, 16);  // after pad_to, not the file's 12
  EXPECT_EQ(shape.input.width, 16);
  EXPECT_EQ(shape.classes, kClasses);
}

TEST_F(Export, StateDictIsAZipArchiveOfAPickleAndOneEntryPerTensor) {
  const fs::path out = *dir_ / "pretext-state.pt";
  export_state_dict(SavedRun(run_dir()), "pretext", out);
  const auto names = zip_entry_names(read_bytes(out));
  std::size_t pickles = 0, tensors = 0;
  for (const auto& name : names) {
    if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0) ++pickles;
    if (name.find("/data/") != std::string::npos) ++tensors;
  }
  EXPECT_EQ(pickles, 1U);
  EXPECT_EQ(tensors, named_state(reference("backbone.pt", false)).size());  // 2 blocks x 7
  EXPECT_EQ(tensors, 14U);
}

TEST_F(Export, PretextStateDictEqualsTheSavedBackbone) {
  const fs::path out = *dir_ / "pretext-equal.pt";
  export_state_dict(SavedRun(run_dir()), "pretext", out);
  const auto state = exported(out);
  expect_same_state(state, named_state(reference("backbone.pt", false)));
  for (const char* key : {"backbone.conv1.weight", "backbone.bn2.running_var", "backbone.bn1.num_batches_tracked"})
    EXPECT_EQ(state.count(key), 1U) << key;
  // Trained weights, not a fresh initialisation.
  const auto fresh = model_->make_backbone(ModelInput{{1, 16, 16}});
  EXPECT_FALSE(torch::equal(state.at("backbone.conv1.weight"), fresh->named_parameters()["conv1.weight"]));
  EXPECT_GT(state.at("backbone.bn1.num_batches_tracked").item<std::int64_t>(), 0);
}

TEST_F(Export, TransferStateDictsHoldBackboneAndHead) {
  const auto pretext = named_state(reference("backbone.pt", false));
  for (const std::string mode : {"fixed", "finetuned"}) {
    SCOPED_TRACE(mode);
    const fs::path out = *dir_ / (mode + ".pt");
    export_state_dict(SavedRun(run_dir()), mode, out);
    const auto state = exported(out);
    expect_same_state(state, named_state(reference("transfer-" + mode + ".pt", true)));
    ASSERT_EQ(state.count("head.conv.weight"), 1U);
    EXPECT_EQ(state.at("head.conv.weight").sizes(), (std::vector<std::int64_t>{kClasses, 8, 4, 4}));
    // fixed keeps the pretext backbone exactly; finetuned trains it.
    EXPECT_EQ(torch::equal(state.at("backbone.conv1.weight"), pretext.at("backbone.conv1.weight")), mode == "fixed");
  }
}

TEST_F(Export, MissingModesFilesAndRunDirectoriesAreClearErrors) {
  const SavedRun run(run_dir());
  const fs::path out = *dir_ / "never.pt";
  EXPECT_THROW(export_state_dict(run, "linear", out), UsageError);
  try {
    export_state_dict(run, "scratch", out);
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("transfer-scratch.pt: no such file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[fixed, finetuned]"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_THROW(SavedRun(*dir_ / "no-such-run"), InputError);
  EXPECT_THROW(SavedRun{*dir_}, InputError);  // a directory without config.toml

  const fs::path old = *dir_ / "old-run";
  fs::create_directories(old);
  fs::copy_file(run_dir() / "config.toml", old / "config.toml", fs::copy_options::overwrite_existing);
  try {
    SavedRun{old};
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find((old / "model.toml").string()), std::string::npos) << e.what();
  }
}

TEST_F(Export, EmbeddingIsTheBackbonesFeaturesOfEveryImage) {
  const SavedRun run(run_dir());
  const Embedding embedding =
      embed(run, run.load("pretext"), load_embedding_data(train_->images), Pooling::none, Compute{}, 64);
  ASSERT_EQ(embedding.features.sizes(), (std::vector<std::int64_t>{kImages, 8 * 4 * 4}));
  ASSERT_EQ(embedding.labels.size(), static_cast<std::size_t>(kImages));
  for (int i = 0; i < kImages; ++i) EXPECT_EQ(embedding.labels[static_cast<std::size_t>(i)], i % kClasses) << i;

  const Embedding pooled =
      embed(run, run.load("pretext"), load_embedding_data(train_->images), Pooling::avg, Compute{}, 64);
  ASSERT_EQ(pooled.features.sizes(), (std::vector<std::int64_t>{kImages, 8}));

  auto backbone = reference("backbone.pt", false).backbone;
  torch::NoGradGuard no_grad;
  for (int i : {0, 7, kImages - 1}) {
    const torch::Tensor direct = backbone->forward(padded_image(train_->images, i));
    EXPECT_TRUE(torch::allclose(embedding.features[i], direct.flatten(), 1e-5, 1e-6)) << "image " << i;
    EXPECT_TRUE(torch::allclose(pooled.features[i], direct.mean({2, 3}).flatten(), 1e-5, 1e-6)) << "image " << i;
  }

  // Another mode, other networks.
  const Embedding finetuned =
      embed(run, run.load("finetuned"), load_embedding_data(train_->images), Pooling::none, Compute{}, 64);
  EXPECT_FALSE(torch::allclose(finetuned.features, embedding.features));
}

TEST_F(Export, EmbeddingDataFromAConfigOrAFileWithoutLabels) {
  const fs::path config = *dir_ / "data.toml";
  std::ofstream(config) << "[data]\nsource = \"idx\"\npath = \"" << train_->images.string() << "\"\n";
  const data::ImageSet from_config = load_embedding_data(config);
  const data::ImageSet from_file = load_embedding_data(train_->images);
  EXPECT_EQ(from_config.pixels, from_file.pixels);
  EXPECT_EQ(from_config.labels, from_file.labels);

  const fs::path unlabelled = *dir_ / "extra-images-idx3-ubyte";  // no extra-labels-idx1-ubyte beside it
  fs::copy_file(train_->images, unlabelled, fs::copy_options::overwrite_existing);
  const data::ImageSet without = load_embedding_data(unlabelled);
  EXPECT_EQ(without.pixels, from_file.pixels);
  EXPECT_EQ(without.labels, std::vector<data::Label>(kImages, -1));

  std::ofstream(*dir_ / "typo.toml") << "[data]\npaht = \"x\"\n";
  EXPECT_THROW(load_embedding_data(*dir_ / "typo.toml"), ConfigError);
  EXPECT_THROW(load_embedding_data(*dir_ / "features.csv"), UsageError);
  EXPECT_THROW(load_embedding_data(*dir_ / "absent_32x32.mat"), InputError);
  EXPECT_THROW(load_embedding_data(*dir_ / "absent-images-idx3-ubyte.gz"), InputError);
}

TEST_F(Export, EmbeddingRefusesImagesTheNetworksDoNotTake) {
  // A run whose networks took 20 x 20 images: the 12 x 12 data padded to 16 does not fit.
  const fs::path other = *dir_ / "other-run";
  fs::create_directories(other);
  for (const char* name : {"config.toml", "backbone.pt"})
    fs::copy_file(run_dir() / name, other / name, fs::copy_options::overwrite_existing);
  std::ofstream(other / "model.toml") << "[input]\nchannels = 1\nheight = 20\nwidth = 20\n[head]\nclasses = 4\n";
  const SavedRun run(other);
  try {
    embed(run, run.load("pretext"), load_embedding_data(train_->images), Pooling::none, Compute{});
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("images are 1x16x16"), std::string::npos) << message;
    EXPECT_NE(message.find("take 1x20x20"), std::string::npos) << message;
    EXPECT_NE(message.find("model.toml"), std::string::npos) << message;
  }
  // Images larger than pad_to are never cropped.
  const auto large = testing::write_synthetic_idx(*dir_, "large", 4, 20, kClasses, 9);
  const SavedRun original(run_dir());
  EXPECT_THROW(embed(original, original.load("pretext"), load_embedding_data(large.images), Pooling::none, Compute{}),
               InputError);
}

TEST_F(Export, CommandLineWritesFilesAndExitsWithTwoOnBadInput) {
  const std::string run = "'" + run_dir().string() + "'";
  const fs::path features = *dir_ / "cli-features.npy";
  ASSERT_EQ(run_cli("embed " + run + " --data '" + train_->images.string() + "' --out '" + features.string() +
                    "' --pool avg --mode fixed"),
            0);
  const artefacts::NpyArray written = artefacts::read_npy(features);
  EXPECT_EQ(written.shape, (std::vector<std::int64_t>{kImages, 8}));
  const artefacts::NpyArray labels = artefacts::read_npy(*dir_ / "cli-features.labels.npy");
  EXPECT_EQ(labels.type, artefacts::NpyType::int64);
  EXPECT_EQ(labels.shape, (std::vector<std::int64_t>{kImages}));
  EXPECT_EQ(labels.ints[5], 5 % kClasses);
  const SavedRun saved(run_dir());
  const Embedding expected =
      embed(saved, saved.load("fixed"), load_embedding_data(train_->images), Pooling::avg, Compute{});
  const torch::Tensor from_file = torch::from_blob(const_cast<float*>(written.floats.data()), {kImages, 8});
  EXPECT_TRUE(torch::allclose(from_file, expected.features, 1e-5, 1e-6));

  const fs::path state = *dir_ / "cli-state.pt";
  ASSERT_EQ(run_cli("export " + run + " --mode finetuned --out '" + state.string() + "'"), 0);
  EXPECT_EQ(exported(state).count("head.conv.bias"), 1U);

  const fs::path never = *dir_ / "never.npy";
  const std::string data = " --data '" + train_->images.string() + "'";
  EXPECT_EQ(run_cli("embed " + run + " --data '" + (*dir_ / "absent_32x32.mat").string() + "' --out " + never.string()),
            2);
  EXPECT_EQ(run_cli("embed " + run + data + " --mode linear --out " + never.string()), 2);
  EXPECT_FALSE(fs::exists(never));
  EXPECT_EQ(run_cli("export " + run + " --mode linear --out " + (*dir_ / "never.pt").string()), 2);
  EXPECT_EQ(run_cli("export '" + (*dir_ / "absent").string() + "' --out " + (*dir_ / "never.pt").string()), 2);
  EXPECT_FALSE(fs::exists(*dir_ / "never.pt"));
}

// The other usage mistakes the command line refuses before any work (exit 2 as UsageError).
TEST_F(Export, PoolAndOutputNamesAreChecked) {
  EXPECT_EQ(pooling_from("avg"), Pooling::avg);
  EXPECT_EQ(pooling_from("none"), Pooling::none);
  EXPECT_THROW(pooling_from("max"), UsageError);
  EXPECT_EQ(labels_file_for("out/features.npy"), fs::path("out/features.labels.npy"));
  EXPECT_THROW(labels_file_for("features.csv"), UsageError);
  EXPECT_THROW(labels_file_for("features"), UsageError);
}

}  // namespace
}  // namespace pretext
