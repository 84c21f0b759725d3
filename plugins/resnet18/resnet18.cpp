// model "resnet18": torchvision's ResNet-18, with the CIFAR stem by default.
//
// Backbone: stem -> 4 stages of 2 BasicBlocks (widths w, 2w, 4w, 8w; stages
// 2-4 start with stride 2 and a 1x1 conv + batch-norm shortcut) -> global
// average pool, giving 8w x 1 x 1 features for any input size. The "cifar"
// stem (3x3 conv, stride 1, no max-pool) is what solo-learn and lightly use
// for 32x32 data; the "imagenet" stem is torchvision's (7x7 conv stride 2,
// 3x3 max-pool stride 2). Head: [dropout ->] one linear layer to the logits.
//
// Parameter and buffer names follow torchvision (conv1, bn1,
// layer2.0.downsample.0, ..., head fc), so an exported state dict loads into
// torchvision.models.resnet18 once the stem and the head's size match.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/dropout.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "pretext/sdk.hpp"

namespace {

namespace F = torch::nn::functional;

constexpr std::int64_t kBlocksPerStage = 2;  // ResNet-18: [2, 2, 2, 2]
constexpr std::int64_t kStages = 4;

struct ResNet18Options {
  std::int64_t width = 64;
  std::string stem = "cifar";
  double dropout = 0.0;

  explicit ResNet18Options(pretext::Options& o) {
    width = o.integer("width", width, 1, 1024, "channels of the first stage; the others have 2x, 4x and 8x");
    stem = o.choice("stem", stem, {"cifar", "imagenet"},
                    "cifar: 3x3 conv stride 1, no max-pool (small images); imagenet: 7x7 conv stride 2 + max-pool");
    dropout = o.number("dropout", dropout, 0.0, 0.99, "dropout probability on the pooled features, before the head");
  }

  /// How much the backbone shrinks an image before the pooling: the smallest
  /// input whose last stage still sees one real pixel.
  [[nodiscard]] std::int64_t total_stride() const { return stem == "cifar" ? 8 : 32; }
};

torch::nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

torch::Tensor relu_in_place(torch::Tensor x) { return F::relu(x, F::ReLUFuncOptions(/*inplace=*/true)); }

/// Two 3x3 convs with a residual connection, as torchvision's BasicBlock.
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(std::int64_t in, std::int64_t out, std::int64_t stride)
      : conv1_(register_module("conv1", conv(in, out, 3, stride))),
        bn1_(register_module("bn1", torch::nn::BatchNorm2d(out))),
        conv2_(register_module("conv2", conv(out, out, 3, 1))),
        bn2_(register_module("bn2", torch::nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out)
      downsample_ =
          register_module("downsample", torch::nn::Sequential(conv(in, out, 1, stride), torch::nn::BatchNorm2d(out)));
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = relu_in_place(bn1_->forward(conv1_->forward(x)));
    out = bn2_->forward(conv2_->forward(out));
    // Out of place: under autocast the shortcut and the main path may differ in dtype.
    return relu_in_place(out + (downsample_ ? downsample_->forward(x) : x));
  }

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(BasicBlock);

class ResNet18Backbone final : public pretext::Backbone {
 public:
  ResNet18Backbone(const ResNet18Options& options, const pretext::ImageShape& input) : options_(options) {
    const std::int64_t smallest = options.total_stride();
    if (input.height < smallest || input.width < smallest)
      throw std::invalid_argument("resnet18: a " + std::to_string(input.height) + "x" + std::to_string(input.width) +
                                  " image is too small for the " + options.stem + " stem; it needs at least " +
                                  std::to_string(smallest) + "x" + std::to_string(smallest));
    const bool cifar = options.stem == "cifar";
    conv1_ = register_module("conv1", conv(input.channels, options.width, cifar ? 3 : 7, cifar ? 1 : 2));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(options.width));
    std::int64_t in = options.width;
    for (std::int64_t s = 0; s < kStages; ++s) {
      const std::int64_t out = options.width << s;
      torch::nn::Sequential stage;
      for (std::int64_t b = 0; b < kBlocksPerStage; ++b)
        stage->push_back(BasicBlock(b == 0 ? in : out, out, b == 0 && s > 0 ? 2 : 1));
      stages_.push_back(register_module("layer" + std::to_string(s + 1), stage));
      in = out;
    }
    shape_ = {in, 1, 1};
    initialise();
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = relu_in_place(bn1_->forward(conv1_->forward(x)));
    if (options_.stem == "imagenet") x = F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2).padding(1));
    for (auto& stage : stages_) x = stage->forward(x);
    return F::adaptive_avg_pool2d(x, F::AdaptiveAvgPool2dFuncOptions(1));
  }

  [[nodiscard]] pretext::FeatureShape feature_shape() const override { return shape_; }

 private:
  /// torchvision's initialisation: He-normal convs for ReLU (fan_out), batch norm as identity.
  void initialise() {
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* c = module->as<torch::nn::Conv2d>()) {
        torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
        torch::nn::init::ones_(bn->weight);
        torch::nn::init::zeros_(bn->bias);
      }
    }
  }

  ResNet18Options options_;
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::vector<torch::nn::Sequential> stages_;
  pretext::FeatureShape shape_;
};

class LinearHead final : public pretext::Head {
 public:
  LinearHead(const pretext::FeatureShape& in, std::int64_t classes, double dropout)
      : fc_(register_module("fc", torch::nn::Linear(in.channels * in.height * in.width, classes))), dropout_(dropout) {}

  torch::Tensor forward(torch::Tensor features) override {
    torch::Tensor x = features.flatten(1);
    if (dropout_ > 0.0) x = F::dropout(x, F::DropoutFuncOptions().p(dropout_).training(is_training()));
    return fc_->forward(x);
  }

 private:
  torch::nn::Linear fc_;
  double dropout_;
};

class ResNet18 final : public pretext::Model {
 public:
  explicit ResNet18(pretext::Options& options) : options_(options) {}

  [[nodiscard]] std::shared_ptr<pretext::Backbone> make_backbone(const pretext::ModelInput& input) const override {
    return std::make_shared<ResNet18Backbone>(options_, input.image);
  }
  [[nodiscard]] std::shared_ptr<pretext::Head> make_head(const pretext::FeatureShape& features,
                                                         std::int64_t classes) const override {
    return std::make_shared<LinearHead>(features, classes, options_.dropout);
  }

 private:
  ResNet18Options options_;
};

void register_resnet18(pretext::Registrar& registrar) {
  registrar.add_model("resnet18", [](pretext::Options& options) { return std::make_shared<ResNet18>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_resnet18)
