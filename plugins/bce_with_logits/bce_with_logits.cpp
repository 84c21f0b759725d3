// loss "bce_with_logits": binary cross-entropy on raw logits, numerically
// stable (log-sum-exp inside). Targets are probabilities of the same shape
// as the logits, so soft labels (e.g. 0.9 for one-sided smoothing) work.
#include <torch/nn/functional/loss.h>

#include "pretext/sdk.hpp"

namespace {

class BceWithLogits final : public pretext::Loss {
 public:
  explicit BceWithLogits(pretext::Options& /*options*/) {}

  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets) const override {
    namespace F = torch::nn::functional;
    const auto flat = logits.to(torch::kFloat).reshape({logits.size(0), -1});
    return F::binary_cross_entropy_with_logits(flat, targets.to(torch::kFloat).reshape(flat.sizes()));
  }
};

void register_bce_with_logits(pretext::Registrar& registrar) {
  registrar.add_loss("bce_with_logits",
                     [](pretext::Options& options) { return std::make_shared<BceWithLogits>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_bce_with_logits)
