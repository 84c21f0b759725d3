// pretext test kit, training side: a host stand-in for PretextTask::setup and
// train_step. Include "pretext/testing.hpp", which includes this header.
//
// FakeTrainingContext gives a task what the host would (a model, a loss, an
// optimiser, a run directory) without a config, a data set or a run, so a
// task's training code can be tested in a unit test on the CPU in seconds.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>
#include <torch/optim/adam.h>

#include "pretext/sdk.hpp"

namespace pretext::testing {

// ------------------------------------------------------------ TinyModel ----
//
// The default model of FakeTrainingContext: small enough that a few training
// steps take milliseconds, with a BatchNorm so that buffers (running
// statistics) take part in save/load tests as they do with real backbones.

/// Conv2d(C, 8, 3, padding 1) + BatchNorm2d + ReLU + AdaptiveAvgPool2d(1): features 8x1x1.
class TinyBackbone final : public Backbone {
 public:
  static constexpr std::int64_t kChannels = 8;

  explicit TinyBackbone(const ImageShape& image)
      : layers_(register_module(
            "layers", torch::nn::Sequential(
                          torch::nn::Conv2d(torch::nn::Conv2dOptions(image.channels, kChannels, 3).padding(1)),
                          torch::nn::BatchNorm2d(kChannels), torch::nn::ReLU(), torch::nn::AdaptiveAvgPool2d(1)))) {}

  torch::Tensor forward(torch::Tensor images) override { return layers_->forward(images); }
  [[nodiscard]] FeatureShape feature_shape() const override { return {kChannels, 1, 1}; }

 private:
  torch::nn::Sequential layers_;
};

/// Flatten + Linear(features, classes).
class TinyHead final : public Head {
 public:
  TinyHead(const FeatureShape& features, std::int64_t classes)
      : layers_(register_module(
            "layers",
            torch::nn::Sequential(torch::nn::Flatten(),
                                  torch::nn::Linear(features.channels * features.height * features.width, classes)))) {}

  torch::Tensor forward(torch::Tensor features) override { return layers_->forward(features); }

 private:
  torch::nn::Sequential layers_;
};

class TinyModel final : public Model {
 public:
  [[nodiscard]] std::shared_ptr<Backbone> make_backbone(const ModelInput& input) const override {
    return std::make_shared<TinyBackbone>(input.image);
  }
  [[nodiscard]] std::shared_ptr<Head> make_head(const FeatureShape& features, std::int64_t classes) const override {
    return std::make_shared<TinyHead>(features, classes);
  }
};

// --------------------------------------------------------------- losses ----
//
// The two losses a task may ask for by name, as the built-in loss plugins of
// the same names compute them (without their options: label smoothing is 0).

/// Softmax cross-entropy: targets (N) int64 class indices or (N, K) float probabilities.
class CrossEntropyLoss final : public Loss {
 public:
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets) const override {
    return torch::nn::functional::cross_entropy(logits.to(torch::kFloat), targets);
  }
};

/// Binary cross-entropy on raw logits; targets are reshaped to the logits' (N, -1).
class BceWithLogitsLoss final : public Loss {
 public:
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets) const override {
    const torch::Tensor flat = logits.to(torch::kFloat).reshape({logits.size(0), -1});
    return torch::nn::functional::binary_cross_entropy_with_logits(flat,
                                                                   targets.to(torch::kFloat).reshape(flat.sizes()));
  }
};

// --------------------------------------------------- FakeTrainingContext ----

/// The host's TrainingContext for a unit test:
///   * make_backbone / make_head: from `model` (default TinyModel), moved to `device`;
///   * make_loss: cross-entropy; make_named_loss: "cross_entropy" or "bce_with_logits";
///   * make_optimizer: Adam, lr 1e-3. Unlike the host's, it does not skip
///     updates with non-finite gradients: a test sees what the task computes;
///   * autocast: runs `forward` as it is (no mixed precision);
///   * run_directory: `run_directory`, or else a fresh directory under the
///     system's temporary directory that the context removes when destroyed.
/// Counters say how often the task asked for each service.
class FakeTrainingContext final : public TrainingContext {
 public:
  explicit FakeTrainingContext(ImageShape image, std::shared_ptr<Model> model = std::make_shared<TinyModel>(),
                               torch::Device device = torch::kCPU, std::string run_directory = {})
      : input_{image}, model_(std::move(model)), device_(device), run_directory_(std::move(run_directory)) {
    if (!model_) throw std::invalid_argument("FakeTrainingContext: model is null");
    if (run_directory_.empty()) {
      run_directory_ = make_temporary_directory();
      owns_run_directory_ = true;
    }
  }

  ~FakeTrainingContext() override {
    std::error_code ignored;  // a destructor must not throw; a leftover temp directory is harmless
    if (owns_run_directory_) std::filesystem::remove_all(run_directory_, ignored);
  }

  FakeTrainingContext(const FakeTrainingContext&) = delete;  // owns its run directory
  FakeTrainingContext& operator=(const FakeTrainingContext&) = delete;

  [[nodiscard]] torch::Device device() const override { return device_; }
  [[nodiscard]] ModelInput input() const override { return input_; }

  std::shared_ptr<Backbone> make_backbone() override {
    auto backbone = model_->make_backbone(input_);
    backbone->to(device_);
    ++backbones_made_;
    return backbone;
  }

  std::shared_ptr<Head> make_head(const FeatureShape& features, std::int64_t classes) override {
    auto head = model_->make_head(features, classes);
    head->to(device_);
    ++heads_made_;
    return head;
  }

  std::shared_ptr<Loss> make_loss() override {
    ++losses_made_;
    return std::make_shared<CrossEntropyLoss>();
  }

  std::shared_ptr<Loss> make_named_loss(const std::string& name) override {
    named_losses_.push_back(name);
    if (name == "cross_entropy") return std::make_shared<CrossEntropyLoss>();
    if (name == "bce_with_logits") return std::make_shared<BceWithLogitsLoss>();
    throw std::out_of_range("FakeTrainingContext::make_named_loss: no loss named '" + name +
                            "' (known: bce_with_logits, cross_entropy)");
  }

  std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> parameters) override {
    ++optimizers_made_;
    return std::make_unique<torch::optim::Adam>(std::move(parameters), torch::optim::AdamOptions(1e-3));
  }

  torch::Tensor autocast(const std::function<torch::Tensor()>& forward) override {
    ++autocast_calls_;
    return forward();
  }

  [[nodiscard]] std::string run_directory() const override { return run_directory_; }

  /// True when every parameter of `module` that has a gradient has a finite one.
  bool gradients_finite(const torch::nn::Module& module, const std::string& /*name*/) override {
    ++gradient_checks_;
    for (const auto& parameter : module.parameters()) {
      const torch::Tensor& grad = parameter.grad();
      if (grad.defined() && !torch::isfinite(grad).all().item<bool>()) return false;
    }
    return true;
  }

  // ---- what the task asked for -------------------------------------------
  [[nodiscard]] int backbones_made() const { return backbones_made_; }
  [[nodiscard]] int heads_made() const { return heads_made_; }
  [[nodiscard]] int losses_made() const { return losses_made_; }
  /// Every name passed to make_named_loss, in order (unknown ones included).
  [[nodiscard]] const std::vector<std::string>& named_losses() const { return named_losses_; }
  [[nodiscard]] int optimizers_made() const { return optimizers_made_; }
  [[nodiscard]] int autocast_calls() const { return autocast_calls_; }
  [[nodiscard]] int gradient_checks() const { return gradient_checks_; }

 private:
  static std::string make_temporary_directory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "pretext-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr)  // unique, and created atomically
      throw std::runtime_error("FakeTrainingContext: cannot create a directory like " + pattern);
    return pattern;
  }

  ModelInput input_;
  std::shared_ptr<Model> model_;
  torch::Device device_;
  std::string run_directory_;
  bool owns_run_directory_ = false;
  int backbones_made_ = 0;
  int heads_made_ = 0;
  int losses_made_ = 0;
  std::vector<std::string> named_losses_;
  int optimizers_made_ = 0;
  int autocast_calls_ = 0;
  int gradient_checks_ = 0;
};

}  // namespace pretext::testing
