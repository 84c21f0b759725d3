// pretext "nan_gradient": trains a real backbone like a one-view task, and
// from step `nan_after_steps + 1` on adds sqrt(logits - logits) to its loss:
// zero, so the loss stays finite, but its gradient is inf - inf = NaN, which
// backward() carries into every parameter. With `own_optimizer` the task
// makes its own SGD and asks TrainingContext::gradients_finite before each
// step, as the GAN does; otherwise its optimiser comes from the context.
// The loss "nan_gradient" does the same to cross-entropy from the start.
#include <torch/nn/functional/loss.h>
#include <torch/optim/sgd.h>

#include "pretext/sdk.hpp"

namespace {

class NanGradient final : public pretext::PretextTask {
 public:
  explicit NanGradient(pretext::Options& options)
      : nan_after_(options.integer("nan_after_steps", 10, 0, 1 << 30, "steps before the gradient becomes NaN")),
        own_optimizer_(options.boolean("own_optimizer", false, "make an SGD and call gradients_finite before step")) {}

  [[nodiscard]] int views_per_image() const override { return 1; }
  void make_views(pretext::ConstImageView image, std::int64_t, pretext::SampleRng&,
                  const pretext::ViewSlots& views) const override {
    pretext::copy_image(image, views.view(0));
    views.set_label(0, 0);
  }
  void setup(pretext::TrainingContext& context) override {
    context_ = &context;
    backbone_ = context.make_backbone();
    head_ = context.make_head(backbone_->feature_shape(), 2);
    std::vector<torch::Tensor> parameters = backbone_->parameters();
    for (auto& p : head_->parameters()) parameters.push_back(p);
    optimizer_ = own_optimizer_ ? std::make_unique<torch::optim::SGD>(parameters, torch::optim::SGDOptions(0.01))
                                : context.make_optimizer(parameters);
  }
  pretext::StepResult train_step(const torch::Tensor& images, const torch::Tensor& labels) override {
    const auto logits = head_->forward(backbone_->forward(images));
    auto loss = torch::nn::functional::cross_entropy(logits, labels);
    if (++steps_ > nan_after_) loss = loss + torch::sqrt(logits - logits).sum();
    optimizer_->zero_grad();
    loss.backward();
    if (!own_optimizer_ ||
        (context_->gradients_finite(*backbone_, "backbone") && context_->gradients_finite(*head_, "head")))
      optimizer_->step();
    pretext::StepResult result;
    result.loss = loss.item<double>();
    result.count = images.size(0);
    return result;
  }
  [[nodiscard]] std::shared_ptr<pretext::Backbone> backbone() const override { return backbone_; }
  void save(torch::serialize::OutputArchive& archive) const override {
    torch::serialize::OutputArchive backbone;
    backbone_->save(backbone);
    archive.write("backbone", backbone);
    torch::serialize::OutputArchive head;
    head_->save(head);
    archive.write("head", head);
    archive.write("steps", torch::tensor(steps_));
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::serialize::InputArchive backbone;
    archive.read("backbone", backbone);
    backbone_->load(backbone);
    torch::serialize::InputArchive head;
    archive.read("head", head);
    head_->load(head);
    torch::Tensor steps;
    archive.read("steps", steps);
    steps_ = steps.item<std::int64_t>();
  }

 private:
  std::int64_t nan_after_;
  bool own_optimizer_;
  std::int64_t steps_ = 0;
  pretext::TrainingContext* context_ = nullptr;
  std::shared_ptr<pretext::Backbone> backbone_;
  std::shared_ptr<pretext::Head> head_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

/// Cross-entropy plus the same zero whose gradient is NaN, from the first step: for the transfer phase.
class NanGradientLoss final : public pretext::Loss {
 public:
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets) const override {
    return torch::nn::functional::cross_entropy(logits, targets) + torch::sqrt(logits - logits).sum();
  }
};

void register_nan_gradient(pretext::Registrar& registrar) {
  registrar.add_pretext("nan_gradient",
                        [](pretext::Options& options) { return std::make_shared<NanGradient>(options); });
  registrar.add_loss("nan_gradient", [](pretext::Options&) { return std::make_shared<NanGradientLoss>(); });
}

}  // namespace

PRETEXT_PLUGIN(register_nan_gradient)
