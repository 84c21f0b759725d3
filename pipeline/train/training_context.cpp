#include "pipeline/train/training_context.hpp"

#include <algorithm>
#include <stdexcept>

namespace pretext {

HostTrainingContext::HostTrainingContext(Compute compute, ModelInput input, std::shared_ptr<Model> model,
                                         std::shared_ptr<Loss> loss, OptimizerOptions optimizer,
                                         std::string run_directory, LossByName loss_by_name, bool check_gradients,
                                         std::shared_ptr<GradientSync> sync)
    : compute_(std::move(compute)),
      input_(input),
      model_(std::move(model)),
      loss_(std::move(loss)),
      optimizer_(std::move(optimizer)),
      run_directory_(std::move(run_directory)),
      loss_by_name_(std::move(loss_by_name)),
      gradient_check_(std::make_shared<GradientCheck>(check_gradients)),
      sync_(std::move(sync)) {}

std::shared_ptr<Loss> HostTrainingContext::make_named_loss(const std::string& name) {
  if (!loss_by_name_) throw std::runtime_error("make_named_loss('" + name + "'): this context has no plugin host");
  return loss_by_name_(name);
}

std::shared_ptr<Backbone> HostTrainingContext::make_backbone() {
  auto backbone = model_->make_backbone(input_);
  compute_.place(*backbone);
  gradient_check_->name_parameters(*backbone, backbones_++ == 0 ? "backbone" : "backbone" + std::to_string(backbones_));
  made_.push_back(backbone);
  return backbone;
}

std::shared_ptr<Head> HostTrainingContext::make_head(const FeatureShape& features, std::int64_t classes) {
  auto head = model_->make_head(features, classes);
  compute_.place(*head);
  gradient_check_->name_parameters(*head, heads_++ == 0 ? "head" : "head" + std::to_string(heads_));
  made_.push_back(head);
  return head;
}

std::unique_ptr<torch::optim::Optimizer> HostTrainingContext::make_optimizer(std::vector<torch::Tensor> parameters) {
  ++optimizers_;
  return pretext::make_optimizer(optimizer_, std::move(parameters),
                                 gradient_check_->enabled() ? gradient_check_ : nullptr, sync_, scale_);
}

bool HostTrainingContext::gradients_finite(const torch::nn::Module& module, const std::string& name) {
  if (std::find(seen_.begin(), seen_.end(), &module) == seen_.end()) seen_.push_back(&module);
  // First the average, so that every rank checks, and steps, alike.
  if (sync_ != nullptr) sync_->average(module.parameters());
  if (!gradient_check_->enabled()) return true;
  gradient_check_->name_parameters(module, name);  // parameters named already keep their names
  return gradient_check_->all_finite(module.parameters());
}

std::vector<torch::nn::Module*> HostTrainingContext::known_modules() const {
  std::vector<torch::nn::Module*> modules;
  auto add = [&](const torch::nn::Module* module) {
    // Averaging statistics changes them; the task's modules are its own, not const.
    auto* writable = const_cast<torch::nn::Module*>(module);
    if (std::find(modules.begin(), modules.end(), writable) == modules.end()) modules.push_back(writable);
  };
  for (const auto& made : made_)
    if (const auto module = made.lock()) add(module.get());
  for (const auto* module : seen_) add(module);
  return modules;
}

torch::Tensor HostTrainingContext::autocast(const std::function<torch::Tensor()>& forward) {
  return compute_.autocast_forward(forward);
}

void copy_weights(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto copy = [](const auto& source, auto&& target, const char* what) {
    for (const auto& item : source) {
      const torch::Tensor* dst = target.find(item.key());
      if (dst == nullptr) throw std::runtime_error(std::string("transfer: ") + what + " '" + item.key() + "' missing");
      if (!dst->sizes().equals(item.value().sizes()))
        throw std::runtime_error(std::string("transfer: ") + what + " '" + item.key() + "' has another shape");
      const_cast<torch::Tensor*>(dst)->copy_(item.value());
    }
  };
  copy(from.named_parameters(), to.named_parameters(), "parameter");
  copy(from.named_buffers(), to.named_buffers(), "buffer");
}

}  // namespace pretext
