#include "pipeline/distributed/gradient_buckets.hpp"

#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

namespace pretext::distributed {

GradientAverager::GradientAverager(const std::vector<torch::Tensor>& parameters, std::int64_t bucket_bytes) {
  if (bucket_bytes < 1) throw std::invalid_argument("GradientAverager: bucket_bytes must be positive");
  // Open buckets by dtype: one flat buffer holds one dtype. Buckets keep the
  // parameters' order within a dtype, so every rank builds the same ones.
  std::map<c10::ScalarType, std::size_t> open;
  for (const auto& parameter : parameters) {
    if (!parameter.requires_grad()) continue;
    if (!parameter.is_floating_point())
      throw std::invalid_argument("GradientAverager: a parameter of dtype " +
                                  std::string(c10::toString(parameter.scalar_type())) + " cannot have a gradient");
    const auto type = parameter.scalar_type();
    const std::int64_t bytes = parameter.numel() * static_cast<std::int64_t>(parameter.element_size());
    auto found = open.find(type);
    if (found != open.end()) {
      const Bucket& bucket = buckets_[found->second];
      const std::int64_t used = bucket.gradient_elements * static_cast<std::int64_t>(parameter.element_size());
      if (used + bytes > bucket_bytes) found = open.end();
    }
    if (found == open.end()) {
      buckets_.emplace_back();
      found = open.insert_or_assign(type, buckets_.size() - 1).first;
    }
    Bucket& bucket = buckets_[found->second];
    bucket.parameters.push_back(parameter);
    bucket.offsets.push_back(bucket.gradient_elements);
    bucket.gradient_elements += parameter.numel();
  }
  for (auto& bucket : buckets_) {
    const auto& first = bucket.parameters.front();
    const auto count = static_cast<std::int64_t>(bucket.parameters.size());
    // On the CPU whatever the parameters' device: gloo reduces CPU tensors, so
    // a CUDA build's gradients are staged through host memory (NCCL is not
    // wired in).
    bucket.buffer =
        torch::zeros({bucket.gradient_elements + count}, first.options().device(torch::kCPU).requires_grad(false));
  }
}

void GradientAverager::average(ProcessGroup& group) {
  const torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> buffers;
  for (auto& bucket : buckets_) {
    const auto count = static_cast<std::int64_t>(bucket.parameters.size());
    auto had_gradient = bucket.buffer.narrow(0, bucket.gradient_elements, count);
    for (std::int64_t i = 0; i < count; ++i) {
      const auto& grad = bucket.parameters[i].grad();
      auto slot = bucket.buffer.narrow(0, bucket.offsets[i], bucket.parameters[i].numel());
      if (grad.defined()) {
        slot.copy_(grad.reshape(-1));
        had_gradient[i].fill_(1);
      } else {
        slot.zero_();
        had_gradient[i].fill_(0);
      }
    }
    buffers.push_back(bucket.buffer);
  }
  // One call for all buckets: gloo queues one all-reduce per bucket and runs
  // them on its own threads, and the group marks its progress once per step.
  group.all_reduce_sum(buffers);
  for (auto& bucket : buckets_) {
    const auto count = static_cast<std::int64_t>(bucket.parameters.size());
    // The counts are read before the division; the gradients are divided by
    // the world size whoever had one, as DDP does (a missing gradient is a zero).
    const auto counts = bucket.buffer.narrow(0, bucket.gradient_elements, count).to(torch::kDouble);
    const auto* count_of = counts.data_ptr<double>();
    bucket.buffer.narrow(0, 0, bucket.gradient_elements).div_(group.world_size());
    for (std::int64_t i = 0; i < count; ++i) {
      auto& parameter = bucket.parameters[i];
      const auto averaged = bucket.buffer.narrow(0, bucket.offsets[i], parameter.numel()).view(parameter.sizes());
      if (parameter.grad().defined()) {
        parameter.mutable_grad().copy_(averaged);
      } else if (count_of[i] > 0) {
        parameter.mutable_grad() = averaged.to(parameter.device(), /*non_blocking=*/false, /*copy=*/true);
      }
    }
  }
}

std::int64_t GradientAverager::bytes_per_step() const {
  std::int64_t bytes = 0;
  for (const auto& bucket : buckets_) bytes += bucket.buffer.numel() * static_cast<std::int64_t>(bucket.buffer.element_size());
  return bytes;
}

std::vector<std::size_t> GradientAverager::parameters_per_bucket() const {
  std::vector<std::size_t> sizes;
  for (const auto& bucket : buckets_) sizes.push_back(bucket.parameters.size());
  return sizes;
}

namespace {

struct NamedTensor {
  std::string name;
  torch::Tensor tensor;
};

std::vector<NamedTensor> state_of(torch::nn::Module& module, bool parameters, bool buffers) {
  std::vector<NamedTensor> state;
  if (parameters)
    for (const auto& item : module.named_parameters(/*recurse=*/true)) state.push_back({item.key(), item.value()});
  if (buffers)
    for (const auto& item : module.named_buffers(/*recurse=*/true)) state.push_back({item.key(), item.value()});
  return state;
}

// A module that differs between ranks (another plugin version, another
// config) would make the flat buffers differ in length, and gloo would fail
// without saying why, or not fail at all. So the layouts are compared first.
void check_same_layout(const std::vector<NamedTensor>& state, ProcessGroup& group, const std::string& what) {
  std::string layout;
  for (const auto& [name, tensor] : state) {
    layout += name + " " + c10::toString(tensor.scalar_type()) + " [";
    for (const auto size : tensor.sizes()) layout += std::to_string(size) + ",";
    layout += "]\n";
  }
  const auto layouts = group.all_gather_strings(what + " layout", layout);
  const auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  };
  const auto reference = lines(layouts[0]);
  for (int r = 1; r < group.world_size(); ++r) {
    const auto theirs = lines(layouts[static_cast<std::size_t>(r)]);
    if (theirs == reference) continue;
    std::size_t i = 0;
    while (i < theirs.size() && i < reference.size() && theirs[i] == reference[i]) ++i;
    const auto at = [i](const std::vector<std::string>& l) { return i < l.size() ? "'" + l[i] + "'" : "nothing"; };
    throw std::runtime_error(what + " differs between ranks: rank " + std::to_string(r) + " has " + at(theirs) +
                             " where rank 0 has " + at(reference) +
                             "; every rank must build the same model from the same config");
  }
}

// Runs `collective` on one flat buffer per dtype of `tensors`, then copies
// the results back: one collective per dtype instead of one per tensor.
void coalesced(const std::vector<torch::Tensor>& tensors,
               const std::function<void(std::vector<torch::Tensor>&)>& collective) {
  std::map<c10::ScalarType, std::vector<torch::Tensor>> by_type;
  for (const auto& t : tensors) by_type[t.scalar_type()].push_back(t);
  for (auto& [type, group] : by_type) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& t : group) flat_parts.push_back(t.reshape(-1));
    std::vector<torch::Tensor> flat{torch::cat(flat_parts).cpu()};  // gloo: CPU tensors
    collective(flat);
    std::int64_t offset = 0;
    for (auto& t : group) {
      t.copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

}  // namespace

void broadcast_module_state(torch::nn::Module& module, ProcessGroup& group, int root) {
  const torch::NoGradGuard no_grad;
  const auto state = state_of(module, true, true);
  check_same_layout(state, group, "the model's state");
  std::vector<torch::Tensor> tensors;
  for (const auto& item : state) tensors.push_back(item.tensor);
  coalesced(tensors, [&](std::vector<torch::Tensor>& flat) { group.broadcast(flat, root); });
}

void average_buffers(torch::nn::Module& module, ProcessGroup& group) {
  const torch::NoGradGuard no_grad;
  // No layout check: broadcast_module_state made it at the start, and this
  // runs every epoch, where a store exchange per call would only add keys.
  const auto state = state_of(module, false, true);
  std::vector<torch::Tensor> floating;
  std::vector<torch::Tensor> integral;
  for (const auto& item : state) (item.tensor.is_floating_point() ? floating : integral).push_back(item.tensor);
  coalesced(floating, [&](std::vector<torch::Tensor>& flat) { group.all_reduce_mean(flat); });
  coalesced(integral, [&](std::vector<torch::Tensor>& flat) { group.broadcast(flat, 0); });
}

}  // namespace pretext::distributed
