// model "conv4": the study's network.
//
// Backbone: `blocks` x (conv 3x3 pad 1 -> batch norm -> activation
// [-> dropout] -> max-pool 2). With 32x32 input and 4 blocks the features
// are width x 2 x 2. Head: one conv layer whose kernel covers the whole
// feature map, giving (N, classes) logits.
//
// `widths` gives each block its own filter count instead, e.g. [32, 64, 128,
// 256]: doubling with depth, as VGG and ResNet do, costs about the compute of
// 64 everywhere (the 16x16 block dominates both) for 3.5x the parameters and
// four times the features the head sees (docs/studies.md).
#include <algorithm>
#include <string>
#include <vector>

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/dropout.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include "pretext/sdk.hpp"

namespace {

namespace F = torch::nn::functional;

struct Conv4Options {
  std::int64_t width = 64;
  std::int64_t blocks = 4;
  std::string activation = "relu";
  double negative_slope = 0.01;
  double dropout = 0.3;
  bool batch_norm = true;
  std::vector<std::int64_t> dropout_after = {2, 4};
  std::vector<std::int64_t> widths;  // one per block; from `width` when not given

  explicit Conv4Options(pretext::Options& o) {
    width = o.integer("width", width, 1, 4096, "filters in every conv layer, unless widths is given");
    blocks = o.integer("blocks", blocks, 1, 8, "conv blocks; each halves the spatial size");
    activation = o.choice("activation", activation, {"relu", "leaky_relu"}, "activation after batch norm");
    negative_slope = o.number("negative_slope", negative_slope, 0.0, 1.0, "slope of leaky_relu for x < 0");
    dropout = o.number("dropout", dropout, 0.0, 0.99, "dropout probability");
    batch_norm = o.boolean("batch_norm", batch_norm,
                           "batch norm after each conv; false gives a model whose steps do not depend on how a "
                           "batch is split (data-parallel runs then track one process exactly)");
    // The default names only blocks that exist, so the resolved config
    // (config.toml of a run) reads back with fewer than 4 blocks too.
    dropout_after.erase(
        std::remove_if(dropout_after.begin(), dropout_after.end(), [&](std::int64_t block) { return block > blocks; }),
        dropout_after.end());
    dropout_after = o.integers("dropout_after", dropout_after, 1, blocks,
                               "1-based blocks whose activation is followed by dropout");
    widths = o.integers("widths", {}, 1, 4096, "filters of each block, first to last; overrides width");
    if (widths.empty()) widths.assign(static_cast<std::size_t>(blocks), width);
    if (static_cast<std::int64_t>(widths.size()) != blocks)
      o.fail("widths", "one filter count per block: " + std::to_string(blocks) + " of them, not " +
                           std::to_string(widths.size()));
  }
};

class Conv4Backbone final : public pretext::Backbone {
 public:
  Conv4Backbone(const Conv4Options& options, const pretext::ImageShape& input) : options_(options) {
    std::int64_t in = input.channels;
    for (std::size_t b = 0; b < options.widths.size(); ++b) {
      const std::string suffix = std::to_string(b + 1);
      const std::int64_t out = options.widths[b];
      convs_.push_back(
          register_module("conv" + suffix, torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1))));
      if (options.batch_norm) norms_.push_back(register_module("bn" + suffix, torch::nn::BatchNorm2d(out)));
      in = out;
    }
    const std::int64_t shrink = std::int64_t{1} << options.blocks;
    if (input.height < shrink || input.width < shrink)
      throw std::invalid_argument("conv4: a " + std::to_string(input.height) + "x" + std::to_string(input.width) +
                                  " image is too small for " + std::to_string(options.blocks) + " blocks");
    shape_ = {options.widths.back(), input.height / shrink, input.width / shrink};
  }

  torch::Tensor forward(torch::Tensor x) override {
    for (std::size_t b = 0; b < convs_.size(); ++b) {
      x = convs_[b]->forward(x);
      if (options_.batch_norm) x = norms_[b]->forward(x);
      x = options_.activation == "relu" ? F::relu(x)
                                        : F::leaky_relu(x, F::LeakyReLUFuncOptions().negative_slope(options_.negative_slope));
      const auto block = static_cast<std::int64_t>(b + 1);
      if (std::find(options_.dropout_after.begin(), options_.dropout_after.end(), block) !=
          options_.dropout_after.end())
        x = F::dropout(x, F::DropoutFuncOptions().p(options_.dropout).training(is_training()));
      x = F::max_pool2d(x, F::MaxPool2dFuncOptions(2));
    }
    return x;
  }

  [[nodiscard]] pretext::FeatureShape feature_shape() const override { return shape_; }

 private:
  Conv4Options options_;
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::BatchNorm2d> norms_;
  pretext::FeatureShape shape_;
};

class ConvHead final : public pretext::Head {
 public:
  ConvHead(const pretext::FeatureShape& in, std::int64_t classes)
      : conv_(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(
                                           in.channels, classes, torch::ExpandingArray<2>({in.height, in.width}))))) {}

  torch::Tensor forward(torch::Tensor features) override { return conv_->forward(features).flatten(1); }

 private:
  torch::nn::Conv2d conv_;
};

class Conv4 final : public pretext::Model {
 public:
  explicit Conv4(pretext::Options& options) : options_(options) {}

  [[nodiscard]] std::shared_ptr<pretext::Backbone> make_backbone(const pretext::ModelInput& input) const override {
    return std::make_shared<Conv4Backbone>(options_, input.image);
  }
  [[nodiscard]] std::shared_ptr<pretext::Head> make_head(const pretext::FeatureShape& features,
                                                         std::int64_t classes) const override {
    return std::make_shared<ConvHead>(features, classes);
  }

 private:
  Conv4Options options_;
};

void register_conv4(pretext::Registrar& registrar) {
  registrar.add_model("conv4", [](pretext::Options& options) { return std::make_shared<Conv4>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_conv4)
