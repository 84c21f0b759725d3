#include "pipeline/train/gradient_check.hpp"

#include <cmath>
#include <sstream>

namespace pretext {

void GradientCheck::name_parameters(const torch::nn::Module& module, const std::string& prefix) {
  if (!named_modules_.insert(&module).second) return;  // named already (gradients_finite asks every step)
  for (const auto& item : module.named_parameters())
    names_.emplace(item.value().unsafeGetTensorImpl(), prefix + "." + item.key());
}

bool GradientCheck::all_finite(const std::vector<torch::Tensor>& parameters) {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> sums;
  sums.reserve(parameters.size());
  bool mixed = false;  // dtypes or devices: stack() wants one of each
  for (const auto& p : parameters) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    sums.push_back(g.sum());
    mixed = mixed || sums.back().scalar_type() != sums.front().scalar_type() ||
            sums.back().device() != sums.front().device();
  }
  if (sums.empty()) return true;
  if (mixed)
    for (auto& sum : sums) sum = sum.to(torch::kCPU, torch::kDouble);
  // A NaN or an infinity anywhere makes the total non-finite. So can a sum
  // of large finite values that overflows: the exact check below clears that.
  if (std::isfinite(torch::stack(sums).sum(torch::kDouble).item<double>())) return true;
  for (const auto& p : parameters) {
    const auto& g = p.grad();
    if (!g.defined() || torch::isfinite(g).all().item<bool>()) continue;
    if (!found_) found_ = describe(p, g);
    return false;
  }
  return true;
}

void GradientCheck::throw_if_found(double loss) {
  if (!found_) return;
  const std::string what = *found_;
  found_.reset();
  throw NonFiniteGradient(what, loss);
}

std::string GradientCheck::describe(const torch::Tensor& parameter, const torch::Tensor& gradient) const {
  const auto bad = torch::isfinite(gradient).logical_not().flatten();
  const auto first = gradient.flatten().index({bad.nonzero()[0][0]}).item<double>();
  std::ostringstream text;
  text << "gradient of ";
  if (const auto name = names_.find(parameter.unsafeGetTensorImpl()); name != names_.end()) {
    text << name->second;
  } else {
    text << "a parameter of shape [";
    for (std::int64_t d = 0; d < parameter.dim(); ++d) text << (d > 0 ? ", " : "") << parameter.size(d);
    text << "]";
  }
  text << " is ";
  if (std::isnan(first)) {
    text << "nan";  // whatever its sign bit: inf - inf is "-nan" on x86
  } else {
    text << first;
  }
  text << " (" << bad.sum().item<std::int64_t>() << " of " << gradient.numel() << " values not finite)";
  return text.str();
}

std::vector<torch::Tensor> optimizer_parameters(const torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> parameters;
  for (const auto& group : optimizer.param_groups())
    for (const auto& p : group.params()) parameters.push_back(p);
  return parameters;
}

}  // namespace pretext
