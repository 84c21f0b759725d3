// The host's side of pretext::TrainingContext: what a pretext task may ask for.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pipeline/train/compute.hpp"
#include "pipeline/train/gradient_check.hpp"

namespace pretext {

class HostTrainingContext final : public TrainingContext {
 public:
  using LossByName = std::function<std::shared_ptr<Loss>(const std::string& name)>;

  /// `check_gradients` ([trainer] check_gradients): optimisers from
  /// make_optimizer() and gradients_finite() look for NaN and infinite gradients.
  /// `sync` (a DataParallel, in a run of several ranks): optimisers from
  /// make_optimizer() average gradients over the ranks before each update,
  /// and gradients_finite() does for the task's own optimisers.
  HostTrainingContext(Compute compute, ModelInput input, std::shared_ptr<Model> model, std::shared_ptr<Loss> loss,
                      OptimizerOptions optimizer, std::string run_directory, LossByName loss_by_name = {},
                      bool check_gradients = true, std::shared_ptr<GradientSync> sync = nullptr);

  [[nodiscard]] torch::Device device() const override { return compute_.device; }
  [[nodiscard]] ModelInput input() const override { return input_; }
  std::shared_ptr<Backbone> make_backbone() override;
  std::shared_ptr<Head> make_head(const FeatureShape& features, std::int64_t classes) override;
  std::shared_ptr<Loss> make_loss() override { return loss_; }
  std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> parameters) override;
  torch::Tensor autocast(const std::function<torch::Tensor()>& forward) override;
  [[nodiscard]] std::string run_directory() const override { return run_directory_; }
  std::shared_ptr<Loss> make_named_loss(const std::string& name) override;
  bool gradients_finite(const torch::nn::Module& module, const std::string& name) override;

  /// What the checks found: the job calls throw_if_found() after each step.
  [[nodiscard]] GradientCheck& gradient_check() { return *gradient_check_; }
  /// The learning-rate factor of the next update of every optimiser
  /// make_optimizer() made (pretext.lr_schedule); 1 until set.
  void set_learning_rate_factor(double factor) { scale_->factor = factor; }
  /// How many optimisers make_optimizer() made: a schedule reaches only those.
  [[nodiscard]] int optimizers_made() const { return optimizers_; }
  /// The modules the host knows the task trains: those made by make_backbone
  /// and make_head, and those passed to gradients_finite. Their batch-norm
  /// statistics are averaged over the ranks after each epoch.
  [[nodiscard]] std::vector<torch::nn::Module*> known_modules() const;

 private:
  Compute compute_;
  ModelInput input_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<Loss> loss_;
  OptimizerOptions optimizer_;
  std::string run_directory_;
  LossByName loss_by_name_;
  std::shared_ptr<GradientCheck> gradient_check_;  // shared with the optimisers it made
  std::shared_ptr<GradientSync> sync_;             // null: one process
  std::shared_ptr<LearningRateScale> scale_ = std::make_shared<LearningRateScale>();
  int optimizers_ = 0;
  int backbones_ = 0;  // made so far, to name their parameters apart
  int heads_ = 0;
  std::vector<std::weak_ptr<torch::nn::Module>> made_;
  // The task's own modules, as gradients_finite saw them; the task keeps them
  // alive while it trains, which is when they are used.
  std::vector<const torch::nn::Module*> seen_;
};

/// Copies every parameter and buffer of `from` into `to` (same structure).
void copy_weights(const torch::nn::Module& from, torch::nn::Module& to);

}  // namespace pretext
