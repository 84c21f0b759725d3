// Where and how tensors are computed: device, memory format, autocast.
// Everything the trainer does with a tensor goes through these helpers, so a
// CUDA build of LibTorch works by changing trainer.device alone.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/config/run_options.hpp"
#include "pretext/sdk.hpp"
#include "stages/epoch_graph.hpp"

namespace pretext {

struct Compute {
  torch::Device device = torch::kCPU;
  bool channels_last = true;
  std::string autocast = "none";  // none | bf16 | fp16

  /// From [trainer]; ConfigError-free (validated already), but an unknown
  /// device string throws InputError naming trainer.device.
  static Compute from(const TrainerOptions& options);

  /// A batch from the flow graph as (N, C, H, W) on the device, in the layout.
  [[nodiscard]] torch::Tensor images(const stages::Batch& batch) const;
  [[nodiscard]] torch::Tensor labels(const stages::Batch& batch) const;
  /// A (N, C, H, W) CPU tensor moved to the device, in the layout.
  [[nodiscard]] torch::Tensor place(const torch::Tensor& images) const;
  /// Moves a module to the device and its 4-D weights to the layout.
  void place(torch::nn::Module& module) const;
  /// Runs `forward` under autocast when configured; the result is float32.
  torch::Tensor autocast_forward(const std::function<torch::Tensor()>& forward) const;
};

/// Parameters that share a learning rate.
struct ParameterGroup {
  std::vector<torch::Tensor> parameters;
  double lr = 0.0;
};

class GradientCheck;       // gradient_check.hpp
class GradientSync;        // gradient_check.hpp
struct LearningRateScale;  // gradient_check.hpp

/// The optimiser `options` describe, over one group at options.lr ...
/// With `sync`, it averages the gradients over the data-parallel ranks
/// before each update; with `check`, it then checks them and skips the
/// update when one is not finite; with `scale`, it updates at its learning
/// rates times scale->factor (a HostOptimizer, with any of the three).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& options,
                                                        std::vector<torch::Tensor> parameters,
                                                        std::shared_ptr<GradientCheck> check = nullptr,
                                                        std::shared_ptr<GradientSync> sync = nullptr,
                                                        std::shared_ptr<const LearningRateScale> scale = nullptr);
/// ... or over several groups, each with its own learning rate.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& options,
                                                        std::vector<ParameterGroup> groups,
                                                        std::shared_ptr<GradientCheck> check = nullptr,
                                                        std::shared_ptr<GradientSync> sync = nullptr,
                                                        std::shared_ptr<const LearningRateScale> scale = nullptr);

/// A cosine decay's factor at `step` of `total_steps` (from 0): 1 at step 0,
/// falling to 0 at total_steps (pretext and transfer lr_schedule = "cosine").
double cosine_decay(std::int64_t step, std::int64_t total_steps);

/// The torch seed of one phase of a run ("pretext", "transfer.<mode>",
/// "random-init", "sample"): distinct per phase, so each mode's initialisation
/// does not depend on which modes ran before it.
std::uint64_t phase_seed(std::uint64_t seed, const std::string& phase);

}  // namespace pretext
