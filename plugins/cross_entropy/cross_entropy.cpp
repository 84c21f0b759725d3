// loss "cross_entropy": softmax cross-entropy with optional label smoothing
// (alpha spreads that much probability mass uniformly over all classes).
#include <torch/nn/functional/loss.h>

#include "pretext/sdk.hpp"

namespace {

class CrossEntropy final : public pretext::Loss {
 public:
  explicit CrossEntropy(pretext::Options& options)
      : smoothing_(options.number("label_smoothing", 0.0, 0.0, 0.99, "label smoothing alpha")) {}

  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets) const override {
    namespace F = torch::nn::functional;
    return F::cross_entropy(logits.to(torch::kFloat), targets, F::CrossEntropyFuncOptions().label_smoothing(smoothing_));
  }

 private:
  double smoothing_;
};

void register_cross_entropy(pretext::Registrar& registrar) {
  registrar.add_loss("cross_entropy",
                     [](pretext::Options& options) { return std::make_shared<CrossEntropy>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_cross_entropy)
