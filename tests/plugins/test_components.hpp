// Small but real components shared by the test plugins. Each plugin compiles
// its own hidden copy, as independent third-party plugins would.
#pragma once

#include <cstdint>
#include <memory>

#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "pretext/sdk.hpp"

namespace pretext_test {

/// A 1x1 convolution and a ReLU: keeps the spatial size, changes the channels.
class PointwiseBackbone final : public pretext::Backbone {
 public:
  PointwiseBackbone(const pretext::ImageShape& image, std::int64_t channels)
      : shape_{channels, image.height, image.width},
        conv_(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(image.channels, channels, 1)))) {}

  torch::Tensor forward(torch::Tensor images) override { return torch::relu(conv_->forward(images)); }
  [[nodiscard]] pretext::FeatureShape feature_shape() const override { return shape_; }

 private:
  pretext::FeatureShape shape_;
  torch::nn::Conv2d conv_;
};

/// Flattens the features into one linear layer.
class LinearHead final : public pretext::Head {
 public:
  LinearHead(const pretext::FeatureShape& features, std::int64_t classes)
      : linear_(register_module("linear",
                                torch::nn::Linear(features.channels * features.height * features.width, classes))) {}

  torch::Tensor forward(torch::Tensor features) override { return linear_->forward(features.flatten(1)); }

 private:
  torch::nn::Linear linear_;
};

class PointwiseModel final : public pretext::Model {
 public:
  explicit PointwiseModel(std::int64_t channels) : channels_(channels) {}

  [[nodiscard]] std::shared_ptr<pretext::Backbone> make_backbone(const pretext::ModelInput& input) const override {
    return std::make_shared<PointwiseBackbone>(input.image, channels_);
  }
  [[nodiscard]] std::shared_ptr<pretext::Head> make_head(const pretext::FeatureShape& features,
                                                         std::int64_t classes) const override {
    return std::make_shared<LinearHead>(features, classes);
  }

 private:
  std::int64_t channels_;
};

inline std::shared_ptr<pretext::Model> make_pointwise_model(pretext::Options& options) {
  return std::make_shared<PointwiseModel>(
      options.integer("channels", 4, 1, 256, "output channels of the 1x1 convolution"));
}

/// Cross-entropy over class indices.
class CrossEntropyLoss final : public pretext::Loss {
 public:
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets) const override {
    return torch::nn::functional::cross_entropy(logits, targets);
  }
};

inline std::shared_ptr<pretext::Loss> make_cross_entropy(pretext::Options& /*options*/) {
  return std::make_shared<CrossEntropyLoss>();
}

}  // namespace pretext_test
