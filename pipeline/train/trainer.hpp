// Training and evaluation loops shared by the pretext and transfer phases.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "data/image_set.hpp"
#include "pipeline/config/run_options.hpp"
#include "pipeline/train/compute.hpp"
#include "pipeline/train/progress.hpp"
#include "stages/epoch_graph.hpp"

#include "common/errors.hpp"  // TrainingDiverged

namespace pretext {

class DataParallel;  // data_parallel.hpp

/// What one training epoch did.
struct EpochReport {
  double loss = 0.0;       // mean over samples
  double accuracy = -1.0;  // -1 when the steps report none
  double images_per_second = 0.0;
  double seconds = 0.0;
  double wait_seconds = 0.0;  // trainer idle, waiting for data
  std::uint64_t samples = 0;
  std::vector<std::pair<std::string, double>> extra;  // task metrics, averaged over steps
};

/// The graph spec of one training epoch over `indices` of `set`: shuffled
/// with (seed, epoch), batched, the ragged tail dropped (batch norm cannot
/// train on a lone sample). Callers add views and stages.
/// In a data-parallel run, pass this rank's `batch_size` (the global one
/// divided by the world size) and `parallel`: the spec then holds this rank's
/// share of the epoch's order.
stages::EpochSpec training_epoch(const data::ImageSet& set, const std::vector<std::uint32_t>& indices,
                                 const RunOptions& options, std::int64_t epoch, std::int64_t batch_size,
                                 const DataParallel* parallel = nullptr);

using TrainStep = std::function<StepResult(const torch::Tensor& images, const torch::Tensor& labels)>;

/// One part's batch of a joint epoch, on the compute device.
struct BatchTensors {
  torch::Tensor images;
  torch::Tensor labels;
};
/// A step over batch k of every part of a joint epoch (stages::run_joint_epoch).
using JointTrainStep = std::function<StepResult(const std::vector<BatchTensors>& parts)>;

/// The running sums of a partial epoch: what a mid-epoch checkpoint keeps so
/// that a resumed epoch reports exactly what an uninterrupted one would.
struct EpochTotals {
  std::int64_t steps = 0;  // batches trained so far in this epoch
  std::uint64_t samples = 0;
  double loss_sum = 0.0;
  std::int64_t correct = 0;
  std::int64_t counted = 0;
  std::map<std::string, double> extra_sum;
};

/// The totals of all ranks: `running` is this rank's, counted on from
/// `start` (global totals restored from a checkpoint, the same on every
/// rank); a collective, so every rank calls it at the same step.
EpochTotals sum_over_ranks(const EpochTotals& running, const EpochTotals& start, DataParallel& parallel);

/// Resuming an epoch, and a hook after every step (checkpoints, stop requests).
struct EpochResume {
  EpochTotals start;  // start.steps batches were trained before: they are skipped
  std::function<void(const EpochTotals&)> after_step;
};

/// Runs one epoch through the flow graph, calling `step` on every batch.
/// A NaN or infinite loss, or a NonFiniteGradient from `step`, throws TrainingDiverged. With `resume`, the first
/// resume->start.steps batches still flow through the graph (the order and
/// the per-sample randomness stay those of the full epoch) but are dropped
/// before training.
/// With `parallel`, the report's figures are over all ranks' samples.
EpochReport train_epoch(const stages::EpochSpec& spec, const Compute& compute, const TrainStep& step,
                        Progress& progress, std::int64_t epoch, const EpochResume* resume = nullptr,
                        DataParallel* parallel = nullptr);

/// The same over a joint epoch: `step` gets batch k of every part. The loss
/// is averaged over the first part's samples, and the throughput counts them.
EpochReport train_joint_epoch(const std::vector<const stages::EpochSpec*>& parts, const Compute& compute,
                              const JointTrainStep& step, Progress& progress, std::int64_t epoch,
                              const EpochResume* resume = nullptr, DataParallel* parallel = nullptr);

/// A labelled subset decoded once for evaluation: (N, C, H, W) float on the CPU.
struct LabelledTensors {
  torch::Tensor images;
  torch::Tensor labels;
  [[nodiscard]] std::int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};
LabelledTensors decode_subset(const data::ImageSet& set, const std::vector<std::uint32_t>& indices);
LabelledTensors decode_all(const data::ImageSet& set);

/// Top-1 accuracy of head(backbone(x)) in eval mode; restores training mode.
/// With `parallel`, rank r evaluates batches r, r + W, ... and the counts
/// are summed: the same batches as on one rank, so the same figure.
double evaluate_accuracy(Backbone& backbone, Head& head, const LabelledTensors& data, const Compute& compute,
                         std::int64_t batch_size, DataParallel* parallel = nullptr);

}  // namespace pretext
