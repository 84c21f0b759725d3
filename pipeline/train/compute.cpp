#include "pipeline/train/compute.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/autocast_mode.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include "common/errors.hpp"
#include "pipeline/train/gradient_check.hpp"

namespace pretext {
namespace {

/// Enables autocast for one forward pass and restores the previous state.
class AutocastScope {
 public:
  AutocastScope(torch::DeviceType device, at::ScalarType dtype) : cuda_(device == torch::kCUDA) {
    if (cuda_) {
      previous_ = at::autocast::is_enabled();
      previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(true);
    } else {
      previous_ = at::autocast::is_cpu_enabled();
      previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(true);
    }
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    if (cuda_) {
      at::autocast::set_enabled(previous_);
      at::autocast::set_autocast_gpu_dtype(previous_dtype_);
    } else {
      at::autocast::set_cpu_enabled(previous_);
      at::autocast::set_autocast_cpu_dtype(previous_dtype_);
    }
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool cuda_;
  bool previous_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

template <class T>
struct Type {
  using type = T;
};

}  // namespace

Compute Compute::from(const TrainerOptions& options) {
  Compute c;
  try {
    c.device = torch::Device(options.device);
  } catch (const std::exception&) {
    throw InputError("trainer.device: '" + options.device + "' is not a LibTorch device (expected cpu, cuda or cuda:N)");
  }
  if (c.device.is_cuda() && !torch::cuda::is_available())
    throw InputError("trainer.device is '" + options.device + "' but this LibTorch build has no usable CUDA device");
  c.channels_last = options.memory_format == "channels_last";
  c.autocast = options.autocast;
  return c;
}

torch::Tensor Compute::place(const torch::Tensor& images) const {
  auto t = images.to(device);
  return channels_last ? t.contiguous(torch::MemoryFormat::ChannelsLast) : t.contiguous();
}

torch::Tensor Compute::images(const stages::Batch& batch) const {
  const auto& s = batch.shape;
  // The tensor is the batch's own buffer, no copy: it holds a reference, and
  // the buffer goes back to the graph's pool when the tensor is freed.
  auto view = torch::from_blob(
      batch.storage.get(), {batch.count, s.channels, s.height, s.width}, [keep = batch.storage](void*) {},
      torch::TensorOptions().dtype(torch::kFloat));
  return place(view);
}

torch::Tensor Compute::labels(const stages::Batch& batch) const {
  auto view = torch::from_blob(const_cast<std::int64_t*>(batch.labels.data()), {batch.count}, torch::kLong);
  return view.clone().to(device);
}

void Compute::place(torch::nn::Module& module) const {
  module.to(device);
  if (!channels_last) return;
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
}

torch::Tensor Compute::autocast_forward(const std::function<torch::Tensor()>& forward) const {
  if (autocast == "none") return forward();
  const auto dtype = autocast == "bf16" ? at::kBFloat16 : at::kHalf;
  AutocastScope scope(device.type(), dtype);
  return forward().to(torch::kFloat);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& options,
                                                        std::vector<ParameterGroup> groups,
                                                        std::shared_ptr<GradientCheck> check,
                                                        std::shared_ptr<GradientSync> sync,
                                                        std::shared_ptr<const LearningRateScale> scale) {
  auto with_groups = [&](const auto& defaults) {
    std::vector<torch::optim::OptimizerParamGroup> param_groups;
    for (auto& g : groups) {
      auto group_options = static_cast<const torch::optim::OptimizerOptions&>(defaults).clone();
      group_options->set_lr(g.lr);
      param_groups.emplace_back(std::move(g.parameters), std::move(group_options));
    }
    return param_groups;
  };
  auto make = [&](auto type, const auto& defaults) -> std::unique_ptr<torch::optim::Optimizer> {
    using Optimizer = typename decltype(type)::type;
    if (check || sync || scale)
      return std::make_unique<HostOptimizer<Optimizer>>(check, sync, scale, with_groups(defaults), defaults);
    return std::make_unique<Optimizer>(with_groups(defaults), defaults);
  };
  if (options.kind == "sgd")
    return make(Type<torch::optim::SGD>{},
                torch::optim::SGDOptions(options.lr).momentum(options.momentum).weight_decay(options.weight_decay));
  if (options.kind == "adamw")
    return make(Type<torch::optim::AdamW>{}, torch::optim::AdamWOptions(options.lr).weight_decay(options.weight_decay));
  return make(Type<torch::optim::Adam>{}, torch::optim::AdamOptions(options.lr).weight_decay(options.weight_decay));
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& options,
                                                        std::vector<torch::Tensor> parameters,
                                                        std::shared_ptr<GradientCheck> check,
                                                        std::shared_ptr<GradientSync> sync,
                                                        std::shared_ptr<const LearningRateScale> scale) {
  return make_optimizer(options, std::vector<ParameterGroup>{{std::move(parameters), options.lr}}, std::move(check),
                        std::move(sync), std::move(scale));
}

double cosine_decay(std::int64_t step, std::int64_t total_steps) {
  constexpr double kPi = 3.14159265358979323846;
  const double total = static_cast<double>(std::max<std::int64_t>(1, total_steps));
  return 0.5 * (1.0 + std::cos(kPi * static_cast<double>(step) / total));
}

std::uint64_t phase_seed(std::uint64_t seed, const std::string& phase) {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : phase) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return SampleRng::mix(seed ^ h) >> 1;
}

}  // namespace pretext
