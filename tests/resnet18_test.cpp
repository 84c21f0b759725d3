// The resnet18 model plugin: shapes for both stems and channel counts, the
// torchvision architecture and initialisation, a few training steps, and a
// tiny run through the command line with its export and embedding.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <toml++/toml.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "pipeline/artefacts/npy.hpp"
#include "pipeline/train/saved_run.hpp"
#include "support/builtin_plugin_fixture.hpp"
#include "support/synthetic_idx.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;
using Sizes = std::vector<std::int64_t>;

class ResNet18 : public testing::BuiltinPluginTest {
 protected:
  std::shared_ptr<Model> resnet18(const std::string& toml) {
    auto options = section(toml);
    return host_.make_model(host_.resolve(ComponentKind::model, "resnet18"), options);
  }
};

std::int64_t parameter_count(const torch::nn::Module& module) {
  std::int64_t count = 0;
  for (const auto& p : module.parameters()) count += p.numel();
  return count;
}

TEST_F(ResNet18, FeaturesArePooledAndTheHeadGivesLogitsForBothStems) {
  for (const std::string stem : {"cifar", "imagenet"}) {
    for (const int channels : {1, 3}) {
      SCOPED_TRACE(stem + ", " + std::to_string(channels) + " channels");
      auto model = resnet18("width = 8\nstem = \"" + stem + "\"\n");
      auto backbone = model->make_backbone({{channels, 32, 32}});
      const FeatureShape shape = backbone->feature_shape();
      EXPECT_EQ(shape.channels, 64);  // 8 x width
      EXPECT_EQ(shape.height, 1);
      EXPECT_EQ(shape.width, 1);
      const torch::Tensor features = backbone->forward(torch::rand({2, channels, 32, 32}));
      EXPECT_EQ(features.sizes(), (Sizes{2, 64, 1, 1}));
      auto head = model->make_head(shape, 10);
      EXPECT_EQ(head->forward(features).sizes(), (Sizes{2, 10}));
    }
  }
  // Any size from the smallest up, square or not: the features stay 8w x 1 x 1.
  auto backbone = resnet18("width = 4\n")->make_backbone({{3, 40, 24}});
  EXPECT_EQ(backbone->forward(torch::rand({2, 3, 40, 24})).sizes(), (Sizes{2, 32, 1, 1}));
}

TEST_F(ResNet18, ArchitectureAndInitialisationAreTorchvisions) {
  // torchvision.models.resnet18(): 11,689,512 parameters, of which the fc
  // layer (512 x 1000 + 1000) is 513,000.
  auto imagenet = resnet18("stem = \"imagenet\"\n")->make_backbone({{3, 224, 224}});
  EXPECT_EQ(parameter_count(*imagenet), 11176512);
  // The CIFAR stem's conv1 is 64 x 3 x 3 x 3 instead of 64 x 3 x 7 x 7.
  auto model = resnet18("");
  auto cifar = model->make_backbone({{3, 32, 32}});
  EXPECT_EQ(parameter_count(*cifar), 11176512 - 64 * 3 * 7 * 7 + 64 * 3 * 3 * 3);
  auto head = model->make_head(cifar->feature_shape(), 10);
  EXPECT_EQ(parameter_count(*head), 512 * 10 + 10);

  // torchvision's names, so an exported state dict maps onto its resnet18.
  const auto parameters = cifar->named_parameters();
  const auto buffers = cifar->named_buffers();
  for (const char* name :
       {"conv1.weight", "bn1.bias", "layer1.1.conv2.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.weight"})
    EXPECT_NE(parameters.find(name), nullptr) << name;
  EXPECT_NE(buffers.find("layer3.0.downsample.1.running_var"), nullptr);
  EXPECT_EQ(parameters.find("layer1.0.downsample.0.weight"), nullptr);  // stage 1 keeps its size: identity
  EXPECT_EQ(parameters.find("conv1.bias"), nullptr);                    // convs before batch norm have no bias
  EXPECT_EQ(head->named_parameters().find("fc.weight")->sizes(), (Sizes{10, 512}));

  // He-normal for ReLU over fan_out: std sqrt(2 / (512 x 3 x 3)) = 0.0208, where
  // LibTorch's default (uniform, a = sqrt(5), fan_in) would give 0.0085.
  const double spread = parameters["layer4.1.conv2.weight"].std().item<double>();
  EXPECT_NEAR(spread, std::sqrt(2.0 / (512 * 3 * 3)), 0.001);
  EXPECT_NEAR(parameters["layer4.1.conv2.weight"].mean().item<double>(), 0.0, 0.001);
  EXPECT_TRUE(torch::all(parameters["layer3.1.bn1.weight"] == 1).item<bool>());
  EXPECT_TRUE(torch::all(parameters["layer3.1.bn1.bias"] == 0).item<bool>());
}

TEST_F(ResNet18, TooSmallImagesAndUnknownStemsAreRefused) {
  auto cifar = resnet18("width = 2\n");
  try {
    (void)cifar->make_backbone({{1, 7, 32}});
    FAIL() << "expected a PluginFault";
  } catch (const PluginFault& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("7x32 image is too small for the cifar stem"), std::string::npos) << message;
    EXPECT_NE(message.find("at least 8x8"), std::string::npos) << message;
  }
  EXPECT_EQ(cifar->make_backbone({{1, 8, 8}})->forward(torch::rand({2, 1, 8, 8})).sizes(), (Sizes{2, 16, 1, 1}));

  auto imagenet = resnet18("width = 2\nstem = \"imagenet\"\n");
  try {
    (void)imagenet->make_backbone({{3, 32, 31}});
    FAIL() << "expected a PluginFault";
  } catch (const PluginFault& e) {
    EXPECT_NE(std::string(e.what()).find("at least 32x32"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW((void)imagenet->make_backbone({{3, 32, 32}}));

  try {
    (void)resnet18("stem = \"vgg\"\n");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("stem"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)resnet18("width = 0\n"), ConfigError);
  EXPECT_THROW((void)resnet18("dropout = 1.0\n"), ConfigError);
}

TEST_F(ResNet18, AdamStepsLowerTheLossOnAFixedBatch) {
  auto model = resnet18("width = 8\ndropout = 0.1\n");
  auto backbone = model->make_backbone({{1, 16, 16}});
  auto head = model->make_head(backbone->feature_shape(), 4);
  const torch::Tensor images = torch::rand({8, 1, 16, 16});
  const torch::Tensor labels = torch::arange(8, torch::kLong) % 4;
  std::vector<torch::Tensor> parameters = backbone->parameters();
  for (const auto& p : head->parameters()) parameters.push_back(p);
  torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(0.01));
  std::vector<double> losses;
  for (int step = 0; step < 10; ++step) {
    optimizer.zero_grad();
    const torch::Tensor loss = torch::nn::functional::cross_entropy(head->forward(backbone->forward(images)), labels);
    loss.backward();
    if (step == 0) {  // every layer is on the gradient's path
      for (const auto& p : backbone->named_parameters()) {
        const torch::Tensor& grad = p.value().grad();
        EXPECT_TRUE(grad.defined() && grad.abs().sum().item<double>() > 0.0) << p.key();
      }
    }
    optimizer.step();
    losses.push_back(loss.item<double>());
  }
  EXPECT_NEAR(losses.front(), std::log(4.0), 0.5);  // near chance at the start
  EXPECT_LT(losses.back(), 0.5 * losses.front()) << "first " << losses.front() << ", last " << losses.back();
}

// --------------------------------------------- through the command line ------

constexpr int kImages = 48;
constexpr int kClasses = 4;

int run_cli(const std::string& arguments) {
  const std::string command = std::string("'") + PRETEXT_BINARY + "' " + arguments + " > /dev/null 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::map<std::string, torch::Tensor> exported(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  const std::string bytes = s.str();
  std::map<std::string, torch::Tensor> state;
  const torch::IValue value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  if (!value.isGenericDict()) {
    ADD_FAILURE() << file << ": not a dict";
    return state;
  }
  for (const auto& entry : value.toGenericDict()) state[entry.key().toStringRef()] = entry.value().toTensor();
  return state;
}

TEST_F(ResNet18, RunExportAndEmbedFromTheCommandLine) {
  const fs::path dir = testing::fresh_temp_dir("resnet18");
  const auto train = testing::write_synthetic_idx(dir, "train", kImages, 12, kClasses, 3);
  const fs::path config = dir / "tiny.toml";
  std::ofstream(config) << "seed = 1\nthreads = 1\n"
                        << "[data]\nsource = \"idx\"\npath = \"" << train.images.string() << "\"\n"
                        << "test_path = \"\"\nlabelled = 16\nvalidation = 8\npad_to = 16\n"
                        << "[pipeline]\nthreads = 1\n"
                        << "[model]\nplugin = \"conv4\"\nwidth = 8\n"
                        << "[pretext]\nplugin = \"rotation\"\nepochs = 1\nbatch_size = 32\n"
                        << "[transfer]\nmodes = [\"fixed\"]\nepochs = 1\nbatch_size = 8\n";
  const fs::path run = dir / "run";
  const std::string quoted_run = "'" + run.string() + "'";
  ASSERT_EQ(run_cli("run '" + config.string() + "' --set model.plugin=resnet18 --out " + quoted_run), 0);

  // The resolved config records the plugin's options, defaults included.
  const toml::table resolved = toml::parse_file((run / "config.toml").string());
  EXPECT_EQ(resolved["model"]["plugin"].value<std::string>(), "resnet18");
  EXPECT_EQ(resolved["model"]["width"].value<std::int64_t>(), 8);
  EXPECT_EQ(resolved["model"]["stem"].value<std::string>(), "cifar");
  const NetworkShape shape = read_network_shape(run);
  EXPECT_EQ(shape.input.channels, 1);
  EXPECT_EQ(shape.input.height, 16);
  EXPECT_EQ(shape.classes, kClasses);

  // export: every parameter and buffer of the backbone, then backbone and head.
  const fs::path pretext_pt = dir / "pretext.pt";
  const fs::path fixed_pt = dir / "fixed.pt";
  ASSERT_EQ(run_cli("export " + quoted_run + " --out '" + pretext_pt.string() + "'"), 0);
  ASSERT_EQ(run_cli("export " + quoted_run + " --mode fixed --out '" + fixed_pt.string() + "'"), 0);
  const auto pretext_state = exported(pretext_pt);
  const auto fixed_state = exported(fixed_pt);
  auto fresh = resnet18("width = 8\n")->make_backbone({{1, 16, 16}});
  EXPECT_EQ(pretext_state.size(), fresh->named_parameters().size() + fresh->named_buffers().size());
  EXPECT_EQ(fixed_state.size(), pretext_state.size() + 2);  // + head.fc.weight, head.fc.bias
  ASSERT_EQ(pretext_state.count("backbone.conv1.weight"), 1U);
  EXPECT_EQ(pretext_state.at("backbone.conv1.weight").sizes(), (Sizes{8, 1, 3, 3}));
  ASSERT_EQ(pretext_state.count("backbone.layer4.1.bn2.running_var"), 1U);
  EXPECT_EQ(pretext_state.at("backbone.layer4.1.bn2.running_var").sizes(), (Sizes{64}));
  EXPECT_GT(pretext_state.at("backbone.bn1.num_batches_tracked").item<std::int64_t>(), 0);  // trained
  ASSERT_EQ(fixed_state.count("head.fc.weight"), 1U);
  EXPECT_EQ(fixed_state.at("head.fc.weight").sizes(), (Sizes{kClasses, 64}));
  EXPECT_EQ(fixed_state.at("head.fc.bias").sizes(), (Sizes{kClasses}));
  // fixed transfer trains only the head: its backbone is the pretext one.
  EXPECT_TRUE(torch::equal(fixed_state.at("backbone.layer2.0.downsample.0.weight"),
                           pretext_state.at("backbone.layer2.0.downsample.0.weight")));

  // embed: N x 64 features (8w x 1 x 1, so flattening and pooling agree) and the labels.
  const std::string data = " --data '" + train.images.string() + "'";
  const fs::path flat = dir / "flat.npy";
  const fs::path pooled = dir / "pooled.npy";
  ASSERT_EQ(run_cli("embed " + quoted_run + data + " --out '" + flat.string() + "'"), 0);
  ASSERT_EQ(run_cli("embed " + quoted_run + data + " --pool avg --out '" + pooled.string() + "'"), 0);
  const artefacts::NpyArray flat_features = artefacts::read_npy(flat);
  const artefacts::NpyArray pooled_features = artefacts::read_npy(pooled);
  EXPECT_EQ(flat_features.shape, (Sizes{kImages, 64}));
  EXPECT_EQ(pooled_features.shape, (Sizes{kImages, 64}));
  ASSERT_EQ(flat_features.floats.size(), pooled_features.floats.size());
  for (std::size_t i = 0; i < flat_features.floats.size(); ++i) {
    ASSERT_TRUE(std::isfinite(flat_features.floats[i])) << i;
    ASSERT_NEAR(flat_features.floats[i], pooled_features.floats[i], 1e-6) << i;
  }
  EXPECT_NE(std::vector<float>(flat_features.floats.begin(), flat_features.floats.begin() + 64),
            std::vector<float>(flat_features.floats.begin() + 64, flat_features.floats.begin() + 128));
  const artefacts::NpyArray labels = artefacts::read_npy(dir / "flat.labels.npy");
  EXPECT_EQ(labels.shape, (Sizes{kImages}));
  ASSERT_EQ(labels.ints.size(), static_cast<std::size_t>(kImages));
  EXPECT_EQ(labels.ints[5], 5 % kClasses);

  fs::remove_all(dir);
}

}  // namespace
}  // namespace pretext
