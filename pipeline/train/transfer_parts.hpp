// What the transfer methods share: the classifier, its optimiser and
// learning-rate schedule, and the evaluation that ends every epoch and mode.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/train/gradient_check.hpp"
#include "pipeline/train/transfer.hpp"

namespace pretext {

std::unique_ptr<TransferMethod> make_supervised_transfer(const TransferMode& mode);
std::unique_ptr<TransferMethod> make_semi_supervised_transfer(const TransferMode& mode);

/// A backbone and a new head for in.classes classes, on the device; the
/// backbone holds the pretext weights when the mode starts from them.
struct Classifier {
  std::shared_ptr<Backbone> backbone;
  std::shared_ptr<Head> head;
};
Classifier make_classifier(const TransferInputs& in, const TransferMode& mode);
/// In a data-parallel run: every rank takes rank 0's classifier, then draws
/// its own dropout masks (seeded per rank and `phase`).
void start_replicas(const TransferInputs& in, Classifier& net, const std::string& phase);
/// After an epoch: batch-norm statistics averaged over the ranks.
void end_epoch_replicas(const TransferInputs& in, Classifier& net);
/// This rank's samples per step, and labelled images, of the configured (global) ones.
std::int64_t local_batch(const TransferInputs& in, std::int64_t batch_size);
std::int64_t local_count(const TransferInputs& in, std::size_t images);

/// The classifier's optimiser: the head at transfer.head_lr and, when
/// `train_backbone`, the backbone at transfer.lr. Gradients are checked under
/// the names "<phase>.backbone.*" and "<phase>.head.*". An `auxiliary` head
/// (a second task trained beside the classifier) joins at transfer.head_lr.
struct TransferOptimizer {
  std::shared_ptr<GradientCheck> gradient_check;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  /// The optimiser updates at its groups' rates times this (LearningRateSchedule sets it).
  std::shared_ptr<LearningRateScale> scale;
};
TransferOptimizer make_transfer_optimizer(const TransferInputs& in, const Classifier& net, bool train_backbone,
                                          const std::string& phase, Head* auxiliary = nullptr);

/// transfer.lr_schedule, per step: constant, or cosine decay to 0 at `total_steps`.
class LearningRateSchedule {
 public:
  LearningRateSchedule(const TransferInputs& in, TransferOptimizer& optimizer, std::int64_t total_steps);
  /// Sets the factor of the next step's learning rates (optimizer.scale).
  void before_step();

 private:
  TransferOptimizer* optimizer_;
  bool cosine_;
  std::int64_t total_steps_;
  std::int64_t step_ = 0;
};

/// The per-step hook of a transfer epoch: stops the run, after the step in
/// flight, when a signal asked it to (in.stop_if_requested), rather than
/// after the whole mode, which can take half an hour.
EpochResume stop_checks(const TransferInputs& in, const std::string& phase, std::int64_t epoch);

/// Validation accuracy after an epoch, into `result` (last and best).
double record_validation(const TransferInputs& in, Classifier& net, std::int64_t epoch, TransferResult& result);

/// The end of a mode: test accuracy, timing, and the networks into `result`.
void finish_transfer(const TransferInputs& in, const std::string& phase, Classifier net,
                     std::chrono::steady_clock::time_point started, TransferResult& result, Progress& progress);

}  // namespace pretext
