// Evaluations of frozen features beyond the study's transfer modes, both
// cheap and without augmentation:
//   knn           cosine k-nearest-neighbour vote, the labelled split as the
//                 memory bank
//   linear_probe  logistic regression on standardised features, full batch,
//                 L-BFGS with a strong Wolfe line search
// Each runs on the pretext backbone and, as the reference, on a freshly
// initialised one: features are only worth something if they beat random ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <toml++/toml.h>

#include "pipeline/train/progress.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/config/run_options.hpp"
#include "pipeline/train/compute.hpp"
#include "pipeline/train/trainer.hpp"

namespace pretext {

enum class FeaturePooling {
  flatten,   // (C * H * W)
  avg_pool,  // global average over H and W: (C)
};
/// "flatten" | "avg_pool" (validated by the options already).
FeaturePooling feature_pooling(const std::string& name);

/// Backbone feature maps of every image, (N, C, H, W) float32 on the CPU:
/// eval mode, no gradients, full precision, in batches of `batch_size`.
/// Restores the backbone's training mode.
torch::Tensor extract_feature_maps(Backbone& backbone, const LabelledTensors& data, const Compute& compute,
                                   std::int64_t batch_size = 500);
/// (N, C, H, W) maps -> (N, D) features.
torch::Tensor pool_features(const torch::Tensor& maps, FeaturePooling pooling);
/// Both in one: (N, D) float32 features on the CPU.
torch::Tensor extract_features(Backbone& backbone, const LabelledTensors& data, const Compute& compute,
                               FeaturePooling pooling, std::int64_t batch_size = 500);

/// Labels (Q) of `queries` (Q, D) by majority vote among their `k` nearest
/// rows of `bank` (B, D) by cosine similarity. A tie in votes goes to the tied
/// class whose neighbours are more similar in sum (then to the lower class).
/// Queries go in chunks, so memory stays bounded for any Q. k > B uses B.
torch::Tensor knn_predict(const torch::Tensor& bank, const torch::Tensor& bank_labels, const torch::Tensor& queries,
                          std::int64_t k, std::int64_t classes);

/// Multinomial logistic regression on frozen features.
class LinearProbe {
 public:
  /// Fits on (N, D) features standardised with their own mean and standard
  /// deviation: cross-entropy + l2/2 * |W|^2, `iterations` of full-batch
  /// L-BFGS from zero weights (so the result depends on the data alone).
  static LinearProbe fit(const torch::Tensor& features, const torch::Tensor& labels, std::int64_t classes, double l2,
                         std::int64_t iterations);
  /// Predicted labels (N) of (N, D) features, standardised as in training.
  [[nodiscard]] torch::Tensor predict(const torch::Tensor& features) const;
  /// The training objective at the end (for tests and logs).
  [[nodiscard]] double final_loss() const { return final_loss_; }

 private:
  torch::Tensor mean_, scale_, weight_, bias_;
  double final_loss_ = 0.0;
};

/// Fraction of `predictions` equal to `labels`; 0 for none.
double accuracy(const torch::Tensor& predictions, const torch::Tensor& labels);

struct EvaluationInputs {
  const EvaluationOptions* options = nullptr;
  Compute compute;
  std::int64_t batch_size = 500;              // feature extraction
  const LabelledTensors* labelled = nullptr;  // memory bank / probe training set
  const LabelledTensors* validation = nullptr;
  const LabelledTensors* test = nullptr;  // nullptr: no test accuracy
  std::int64_t classes = 0;
};

/// One backbone's feature maps of the three sets, extracted once and shared
/// by kNN and the probe (the forward passes are most of their cost).
struct FeatureMaps {
  torch::Tensor labelled, validation, test;  // test undefined without test data
  double seconds = 0.0;                      // spent extracting them
};
FeatureMaps extract_evaluation_features(Backbone& backbone, const EvaluationInputs& in);

struct EvaluationResult {
  double val_accuracy = 0.0;
  std::optional<double> test_accuracy;
  double seconds = 0.0;  // on top of the shared feature extraction
};

EvaluationResult evaluate_knn(const FeatureMaps& maps, const EvaluationInputs& in);
EvaluationResult evaluate_linear_probe(const FeatureMaps& maps, const EvaluationInputs& in);

/// Runs the evaluations `in.options` enables on `backbone`, each recorded as
/// `<name><suffix>` ("knn", "linear_probe_random_init", ...): a table in
/// `section`, rows in metrics.csv (phase = that name, epoch 0) and a progress line.
void run_evaluations(Backbone& backbone, const EvaluationInputs& in, const std::string& suffix, artefacts::RunDirectory& dir,
                     Progress& progress, toml::table& section);

}  // namespace pretext
