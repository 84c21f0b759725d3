// A NaN or infinite gradient behind a finite loss: found after backward(),
// before the optimiser applies it, so the parameters (and every checkpoint
// written from them) stay finite, and the run stops naming the parameter.
//
// Tasks own their training steps, so the check sits where the host can see
// every step: in the optimisers the host makes (TrainingContext::
// make_optimizer, and the transfer phase's), which check before each update
// and skip it when a gradient is not finite; and, for optimisers a task makes
// itself (the GAN's two Adams), in TrainingContext::gradients_finite, which
// the task calls before its step. Either way the finding is kept here, and
// the job ends the run after the task's train_step returns, with its loss.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "pretext/sdk.hpp"

namespace pretext {

/// Thrown by a training step function when its gradients were not finite.
/// train_epoch adds the epoch and the step and rethrows it as TrainingDiverged.
class NonFiniteGradient : public std::runtime_error {
 public:
  NonFiniteGradient(const std::string& what, double loss) : std::runtime_error(what), loss_(loss) {}
  /// The loss the step reported (finite, usually: the loss alone did not show it).
  [[nodiscard]] double loss() const { return loss_; }

 private:
  double loss_;
};

class GradientCheck {
 public:
  explicit GradientCheck(bool enabled) : enabled_(enabled) {}

  [[nodiscard]] bool enabled() const { return enabled_; }
  /// Messages call `module`'s parameters "<prefix>.<name>" (e.g. backbone.conv1.weight).
  /// A parameter or module named before keeps its first name.
  void name_parameters(const torch::nn::Module& module, const std::string& prefix);
  /// True when every defined gradient of `parameters` is finite, or the check
  /// is off. Otherwise false, and the first non-finite gradient is recorded
  /// (unless one is recorded already). Cost: one sum per gradient and one
  /// read of the total; a non-finite total is then checked per parameter.
  bool all_finite(const std::vector<torch::Tensor>& parameters);
  /// Throws NonFiniteGradient ("gradient of NAME is nan (3 of 864 values)")
  /// when something was recorded since the last call, and clears it.
  void throw_if_found(double loss);

 private:
  [[nodiscard]] std::string describe(const torch::Tensor& parameter, const torch::Tensor& gradient) const;

  bool enabled_;
  std::unordered_map<const void*, std::string> names_;  // TensorImpl* -> name
  std::unordered_set<const torch::nn::Module*> named_modules_;
  std::optional<std::string> found_;
};

/// The parameters of every group of `optimizer`.
std::vector<torch::Tensor> optimizer_parameters(const torch::optim::Optimizer& optimizer);

/// Makes gradients equal on every rank of a data-parallel run (their mean
/// over the ranks) before an update. The host's optimisers call it before
/// each step; TrainingContext::gradients_finite calls it for optimisers a task
/// made itself. Implemented by DataParallel (data_parallel.hpp), so this
/// header stays free of c10d.
class GradientSync {
 public:
  virtual ~GradientSync() = default;
  /// Every rank passes the same parameters, in the same order, at the same step.
  virtual void average(const std::vector<torch::Tensor>& parameters) = 0;
};

/// A learning-rate schedule the host applies: each update uses every group's
/// learning rate, as made, times `factor`. For the optimisers a task made with
/// TrainingContext::make_optimizer the job sets it before each step
/// (pretext.lr_schedule), and the task never sees it; for a transfer mode's
/// optimiser, LearningRateSchedule does (transfer.lr_schedule).
struct LearningRateScale {
  double factor = 1.0;
};

/// An optimiser (Adam, SGD, ...) that, before each update, averages the
/// gradients over the ranks (with `sync`) and asks `check` (either may be
/// null), skipping the update when a gradient is not finite; with `scale`,
/// it updates at its groups' learning rates times scale->factor. Otherwise
/// it is `Base`: same options, same state, saved and loaded alike
/// (make_optimizer in compute.hpp makes these).
template <class Base>
class HostOptimizer final : public Base {
 public:
  template <class... Args>
  HostOptimizer(std::shared_ptr<GradientCheck> check, std::shared_ptr<GradientSync> sync,
                std::shared_ptr<const LearningRateScale> scale, Args&&... args)
      : Base(std::forward<Args>(args)...), check_(std::move(check)), sync_(std::move(sync)), scale_(std::move(scale)) {
    for (const auto& group : this->param_groups()) base_lrs_.push_back(group.options().get_lr());
  }

  torch::Tensor step(torch::optim::Optimizer::LossClosure closure = nullptr) override {
    torch::Tensor loss;
    if (closure != nullptr) {  // as Base::step would: the closure computes the gradients
      at::AutoGradMode enable_grad(true);
      loss = closure();
    }
    if (sync_ != nullptr) sync_->average(optimizer_parameters(*this));
    // After the average, so that every rank decides alike.
    if (check_ != nullptr && !check_->all_finite(optimizer_parameters(*this)))
      return loss;  // the job stops the run after this step
    if (scale_ != nullptr) apply_scale();
    Base::step(nullptr);
    return loss;
  }

 private:
  /// The groups' learning rates as made are kept here, not read back from
  /// the groups: those hold the last scaled rate (and a loaded state may).
  void apply_scale() {
    auto& groups = this->param_groups();
    for (std::size_t i = base_lrs_.size(); i < groups.size(); ++i)  // a group added later: its rate as added
      base_lrs_.push_back(groups[i].options().get_lr());
    for (std::size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(base_lrs_[i] * scale_->factor);
  }

  std::shared_ptr<GradientCheck> check_;
  std::shared_ptr<GradientSync> sync_;
  std::shared_ptr<const LearningRateScale> scale_;
  std::vector<double> base_lrs_;
};

}  // namespace pretext
