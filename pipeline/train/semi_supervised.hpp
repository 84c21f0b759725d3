// The semi-supervised transfer modes (semi, semi_scratch): FixMatch (Sohn et
// al., 2020) on the pretext backbone or a fresh one.
//
// Each step takes a labelled batch of B images in the weak view (the
// transfer stages; the strong view with transfer.semi.labelled_view =
// "strong") and mu x B unlabelled images, each in a weak and a strong
// view (the transfer stages, then transfer.semi.strong_stages). Both views of
// an image come out of the flow graph as adjacent samples of one joint epoch,
// so the trainer does no augmentation of its own. The prediction on the weak
// view is the pseudo-label; where its top probability reaches tau it is the
// target of the strong view, weighted by lambda_u:
//   loss = CE_labelled + lambda_u * mean_over_unlabelled(mask * CE(strong, pseudo-label))
// An exponential moving average of the weights is what gets evaluated and saved.
// With transfer.semi.pseudo_labeller = "average" it also makes the
// pseudo-labels, in evaluation mode (a mean teacher, Tarvainen and Valpola,
// 2017), so that its errors lag the live weights' instead of echoing them
// (on Fashion-MNIST it gained nothing: docs/studies.md).
#pragma once

#include <cstdint>
#include <functional>

#include "pretext/sdk.hpp"

namespace pretext {

/// Pseudo-labels from the weak view's logits and the masked loss of the strong view's.
struct PseudoLabels {
  torch::Tensor targets;  // (N) argmax of the weak view's logits
  torch::Tensor mask;     // (N) float: 1 where the top probability is >= threshold
  torch::Tensor loss;     // scalar: mean over all N rows of mask * CE(strong_logits, targets)
  std::int64_t kept = 0;  // rows in the mask
};

/// No gradient flows into `weak_logits`. Computed in float32.
PseudoLabels pseudo_label_loss(const torch::Tensor& weak_logits, const torch::Tensor& strong_logits, double threshold);
/// The same with a threshold per row ((N) or broadcastable), e.g. from SelfAdaptiveThreshold.
PseudoLabels pseudo_label_loss(const torch::Tensor& weak_logits, const torch::Tensor& strong_logits,
                               const std::function<torch::Tensor(const torch::Tensor& probabilities)>& thresholds);
/// The same from the weak view's (N, classes) probabilities, e.g. after DistributionAlignment.
PseudoLabels pseudo_label_loss_from_probabilities(const torch::Tensor& probabilities,
                                                  const torch::Tensor& strong_logits, const torch::Tensor& thresholds);

/// FreeMatch's self-adaptive threshold (Wang et al., 2023): instead of a fixed
/// tau, the threshold follows the model's confidence. A global level, the
/// moving average of the batches' mean top probability, is scaled per class
/// by the moving average of that class's mean probability, normalised by the
/// largest: classes the model is still unsure of get a lower bar. Both start
/// at 1/classes, so early pseudo-labels are not all thrown away as under a
/// fixed 0.95, and the bar rises as the model learns.
class SelfAdaptiveThreshold {
 public:
  /// `mean_over_ranks`, when given, averages the batch statistics over the
  /// data-parallel ranks so that every rank holds the same thresholds.
  SelfAdaptiveThreshold(std::int64_t classes, double momentum,
                        std::function<torch::Tensor(const torch::Tensor&)> mean_over_ranks = nullptr);
  /// Updates the averages with this batch's (N, classes) probabilities and
  /// returns the (N) thresholds its rows must reach (their top class's).
  torch::Tensor operator()(const torch::Tensor& probabilities);
  [[nodiscard]] double global_level() const { return global_; }
  [[nodiscard]] const torch::Tensor& class_levels() const { return classes_; }

 private:
  double momentum_;
  double global_;
  torch::Tensor classes_;  // (classes) float64, CPU
  std::function<torch::Tensor(const torch::Tensor&)> mean_over_ranks_;
};

/// ReMixMatch's distribution alignment (Berthelot et al., 2020): a model
/// drifting towards some classes hands out ever more of their pseudo-labels
/// and learns the drift back. Each row of the weak view's probabilities is
/// scaled by target / average, where `target` is the labelled images' class
/// distribution and `average` the moving average of the unlabelled batches'
/// mean prediction (the first batch's, then with `momentum`), and
/// renormalised. A class the model over-predicts is damped, one it neglects
/// lifted, so the pseudo-labels keep the labelled classes' proportions.
class DistributionAlignment {
 public:
  /// `target`: (classes) non-negative, normalised here. `mean_over_ranks` as
  /// for SelfAdaptiveThreshold: every rank then aligns alike.
  DistributionAlignment(const torch::Tensor& target, double momentum,
                        std::function<torch::Tensor(const torch::Tensor&)> mean_over_ranks = nullptr);
  /// Updates the average with this batch's (N, classes) probabilities and
  /// returns them aligned, float32 on their device.
  torch::Tensor operator()(const torch::Tensor& probabilities);
  [[nodiscard]] const torch::Tensor& average() const { return average_; }

 private:
  double momentum_;
  torch::Tensor target_;   // (classes) float64, CPU, sums to 1
  torch::Tensor average_;  // (classes) float64, CPU; undefined before the first batch
  std::function<torch::Tensor(const torch::Tensor&)> mean_over_ranks_;
};

/// average = decay * average + (1 - decay) * current, parameter by parameter;
/// floating-point buffers (batch-norm statistics) likewise, integer ones
/// (counters) copied. Same architecture required.
void update_weight_average(torch::nn::Module& average, const torch::nn::Module& current, double decay);

/// The decay of each update of the weights' average. With `warmup`, update t
/// (from 0) decays by min(decay, (1 + t) / (10 + t)), as TensorFlow's
/// ExponentialMovingAverage with `num_updates`: the average then spans about
/// the last tenth of the updates until it reaches `decay`. Without it, a short
/// run or a fresh backbone keeps a share decay^t of its untrained first
/// weights in the average (docs/studies.md: "On a folder of colour images").
class WeightAverageDecay {
 public:
  WeightAverageDecay(double decay, bool warmup) : decay_(decay), warmup_(warmup) {}
  /// This update's decay; the next call gives the next update's.
  double next();

 private:
  double decay_;
  bool warmup_;
  std::int64_t updates_ = 0;
};

}  // namespace pretext
