#include "pipeline/train/evaluation.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/normalization.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/lbfgs.h>

namespace pretext {
namespace {

namespace F = torch::nn::functional;
using Clock = std::chrono::steady_clock;

// Queries per similarity block: 1,024 x 500 floats is 2 MB, whatever the
// number of queries.
constexpr std::int64_t kQueryChunk = 1024;
// Features that do not vary over the training set are centred to 0 and left
// unscaled rather than divided by ~0.
constexpr double kMinStandardDeviation = 1e-6;
// L-BFGS memory: plenty for a convex problem of this size.
constexpr std::int64_t kLbfgsHistory = 20;
// Evaluations allowed per iteration, line search included: generous, so
// that the iteration count is the limit that binds.
constexpr std::int64_t kEvaluationsPerIteration = 2;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::int64_t effective_k(const EvaluationInputs& in) { return std::min(in.options->knn_k, in.labelled->size()); }

}  // namespace

FeaturePooling feature_pooling(const std::string& name) {
  if (name == "flatten") return FeaturePooling::flatten;
  if (name == "avg_pool") return FeaturePooling::avg_pool;
  throw std::invalid_argument("feature pooling '" + name + "': expected flatten or avg_pool");
}

torch::Tensor extract_feature_maps(Backbone& backbone, const LabelledTensors& data, const Compute& compute,
                                   std::int64_t batch_size) {
  const FeatureShape shape = backbone.feature_shape();
  if (data.size() == 0) return torch::empty({0, shape.channels, shape.height, shape.width}, torch::kFloat);
  const bool training = backbone.is_training();
  backbone.eval();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (std::int64_t start = 0; start < data.size(); start += batch_size) {
    const std::int64_t end = std::min(start + batch_size, data.size());
    // No autocast: features in full precision, whatever the training used.
    const torch::Tensor maps = backbone.forward(compute.place(data.images.slice(0, start, end)));
    // contiguous(): the logical (N, C, H, W) order, even from channels-last memory.
    parts.push_back(maps.to(torch::kCPU, torch::kFloat).contiguous());
  }
  backbone.train(training);
  return torch::cat(parts);
}

torch::Tensor pool_features(const torch::Tensor& maps, FeaturePooling pooling) {
  return pooling == FeaturePooling::flatten ? maps.flatten(1) : maps.flatten(2).mean(2);
}

torch::Tensor extract_features(Backbone& backbone, const LabelledTensors& data, const Compute& compute,
                               FeaturePooling pooling, std::int64_t batch_size) {
  return pool_features(extract_feature_maps(backbone, data, compute, batch_size), pooling);
}

torch::Tensor knn_predict(const torch::Tensor& bank, const torch::Tensor& bank_labels, const torch::Tensor& queries,
                          std::int64_t k, std::int64_t classes) {
  if (bank.size(0) == 0) throw std::invalid_argument("kNN: the memory bank is empty");
  k = std::min(k, bank.size(0));
  const auto unit = F::NormalizeFuncOptions().dim(1);
  const torch::Tensor bank_unit = F::normalize(bank.to(torch::kFloat), unit).t().contiguous();
  const torch::Tensor labels = bank_labels.to(torch::kLong);
  std::vector<torch::Tensor> predictions;
  for (std::int64_t start = 0; start < queries.size(0); start += kQueryChunk) {
    const std::int64_t end = std::min(start + kQueryChunk, queries.size(0));
    const torch::Tensor similarity =
        F::normalize(queries.slice(0, start, end).to(torch::kFloat), unit).matmul(bank_unit);
    const auto [nearest, index] = similarity.topk(k, 1);
    const torch::Tensor neighbour_labels = labels.index_select(0, index.flatten()).view_as(index);
    const torch::Tensor votes = torch::zeros({end - start, classes}, torch::kFloat)
                                    .scatter_add_(1, neighbour_labels, torch::ones_like(nearest));
    const torch::Tensor summed = torch::zeros({end - start, classes}, torch::kDouble)
                                     .scatter_add_(1, neighbour_labels, nearest.to(torch::kDouble));
    const torch::Tensor most_votes = votes.eq(std::get<0>(votes.max(1, /*keepdim=*/true)));
    // Among the classes with most votes, the most similar in sum; argmax
    // takes the first of equal values, so exact ties go to the lower class.
    predictions.push_back(
        summed.masked_fill(most_votes.logical_not(), -std::numeric_limits<double>::infinity()).argmax(1));
  }
  if (predictions.empty()) return torch::empty({0}, torch::kLong);
  return torch::cat(predictions);
}

LinearProbe LinearProbe::fit(const torch::Tensor& features, const torch::Tensor& labels, std::int64_t classes,
                             double l2, std::int64_t iterations) {
  if (features.size(0) == 0) throw std::invalid_argument("linear probe: no training features");
  torch::AutoGradMode enable_grad(true);
  LinearProbe probe;
  const torch::Tensor x = features.to(torch::kFloat);
  probe.mean_ = x.mean(0, /*keepdim=*/true);
  const torch::Tensor deviation = x.std(0, /*unbiased=*/false, /*keepdim=*/true);
  probe.scale_ = torch::where(deviation > kMinStandardDeviation, deviation.reciprocal(), torch::ones_like(deviation));
  const torch::Tensor standardised = (x - probe.mean_) * probe.scale_;
  const torch::Tensor targets = labels.to(torch::kLong);

  torch::nn::Linear linear(x.size(1), classes);
  {
    // Zero start: the objective is convex, so the answer does not depend on an RNG.
    torch::NoGradGuard no_grad;
    linear->weight.zero_();
    linear->bias.zero_();
  }
  torch::optim::LBFGS optimizer(linear->parameters(), torch::optim::LBFGSOptions(1.0)
                                                          .max_iter(iterations)
                                                          .max_eval(kEvaluationsPerIteration * iterations + 10)
                                                          .history_size(kLbfgsHistory)
                                                          .line_search_fn("strong_wolfe"));
  auto objective = [&] {
    return F::cross_entropy(linear->forward(standardised), targets) + 0.5 * l2 * linear->weight.pow(2).sum();
  };
  optimizer.step([&] {
    optimizer.zero_grad();
    torch::Tensor loss = objective();
    loss.backward();
    return loss;
  });
  torch::NoGradGuard no_grad;
  probe.final_loss_ = objective().item<double>();
  probe.weight_ = linear->weight.detach().clone();
  probe.bias_ = linear->bias.detach().clone();
  return probe;
}

torch::Tensor LinearProbe::predict(const torch::Tensor& features) const {
  torch::NoGradGuard no_grad;
  const torch::Tensor standardised = (features.to(torch::kFloat) - mean_) * scale_;
  return torch::addmm(bias_, standardised, weight_.t()).argmax(1);
}

double accuracy(const torch::Tensor& predictions, const torch::Tensor& labels) {
  if (labels.numel() == 0) return 0.0;
  return static_cast<double>(predictions.cpu().eq(labels.cpu()).sum().item<std::int64_t>()) /
         static_cast<double>(labels.numel());
}

FeatureMaps extract_evaluation_features(Backbone& backbone, const EvaluationInputs& in) {
  const auto started = Clock::now();
  FeatureMaps maps;
  maps.labelled = extract_feature_maps(backbone, *in.labelled, in.compute, in.batch_size);
  maps.validation = extract_feature_maps(backbone, *in.validation, in.compute, in.batch_size);
  if (in.test != nullptr) maps.test = extract_feature_maps(backbone, *in.test, in.compute, in.batch_size);
  maps.seconds = seconds_since(started);
  return maps;
}

EvaluationResult evaluate_knn(const FeatureMaps& maps, const EvaluationInputs& in) {
  const auto started = Clock::now();
  const FeaturePooling pooling = feature_pooling(in.options->knn_features);
  const torch::Tensor bank = pool_features(maps.labelled, pooling);
  auto accuracy_on = [&](const torch::Tensor& queries, const LabelledTensors& data) {
    return accuracy(
        knn_predict(bank, in.labelled->labels, pool_features(queries, pooling), effective_k(in), in.classes),
        data.labels);
  };
  EvaluationResult r;
  r.val_accuracy = accuracy_on(maps.validation, *in.validation);
  if (in.test != nullptr) r.test_accuracy = accuracy_on(maps.test, *in.test);
  r.seconds = seconds_since(started);
  return r;
}

EvaluationResult evaluate_linear_probe(const FeatureMaps& maps, const EvaluationInputs& in) {
  const auto started = Clock::now();
  const EvaluationOptions& o = *in.options;
  const FeaturePooling pooling = feature_pooling(o.linear_probe_features);
  const LinearProbe probe = LinearProbe::fit(pool_features(maps.labelled, pooling), in.labelled->labels, in.classes,
                                             o.linear_probe_l2, o.linear_probe_iterations);
  auto accuracy_on = [&](const torch::Tensor& features, const LabelledTensors& data) {
    return accuracy(probe.predict(pool_features(features, pooling)), data.labels);
  };
  EvaluationResult r;
  r.val_accuracy = accuracy_on(maps.validation, *in.validation);
  if (in.test != nullptr) r.test_accuracy = accuracy_on(maps.test, *in.test);
  r.seconds = seconds_since(started);
  return r;
}

void run_evaluations(Backbone& backbone, const EvaluationInputs& in, const std::string& suffix, artefacts::RunDirectory& dir,
                     Progress& progress, toml::table& section) {
  const EvaluationOptions& o = *in.options;
  if (!o.knn && !o.linear_probe) return;
  const FeatureMaps maps = extract_evaluation_features(backbone, in);
  auto record = [&](const std::string& name, const std::string& setting, const EvaluationResult& r, toml::table table) {
    const std::string phase = name + suffix;
    // Epoch 0: these evaluate the features as they are, no training epochs.
    dir.add_metric(phase, 0, "val_accuracy", r.val_accuracy);
    if (r.test_accuracy) dir.add_metric(phase, 0, "test_accuracy", *r.test_accuracy);
    table.insert("val_accuracy", r.val_accuracy);
    if (r.test_accuracy) table.insert("test_accuracy", *r.test_accuracy);
    table.insert("seconds", r.seconds);
    table.insert("feature_seconds", maps.seconds);  // shared by the evaluations of one backbone
    section.insert(phase, std::move(table));
    progress.line(phase + " (" + setting + "): val " + format_fixed(r.val_accuracy, 4) +
                  (r.test_accuracy ? ", test " + format_fixed(*r.test_accuracy, 4) : "") + " in " +
                  format_fixed(r.seconds, 2) + " s (features " + format_fixed(maps.seconds, 1) + " s, shared)");
  };
  if (o.knn) {
    const std::int64_t k = effective_k(in);
    record("knn", "k " + std::to_string(k) + ", " + o.knn_features, evaluate_knn(maps, in),
           toml::table{{"k", k}, {"features", o.knn_features}});
  }
  if (o.linear_probe) {
    std::ostringstream setting;
    setting << o.linear_probe_features << ", l2 " << o.linear_probe_l2;
    record("linear_probe", setting.str(), evaluate_linear_probe(maps, in),
           toml::table{{"features", o.linear_probe_features},
                       {"l2", o.linear_probe_l2},
                       {"iterations", o.linear_probe_iterations}});
  }
}

}  // namespace pretext
