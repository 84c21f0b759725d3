// Transfer to the labelled split: a classifier made of the model's backbone
// and a new head, trained in one of the transfer modes (run_options.hpp):
//   fixed         the pretext backbone, frozen (eval mode: batch-norm statistics
//                 and dropout stay as the pretext task left them); a new head trains
//   finetuned     the pretext backbone and a new head, all training
//   scratch       a freshly initialised backbone and head: the baseline
//   semi          the pretext backbone and a new head, trained on the labelled
//                 and the unlabelled images together (FixMatch; semi_supervised.hpp)
//   semi_scratch  the same from a freshly initialised backbone: what the pretext task adds
//
// Each kind of mode is one TransferMethod; make_transfer_method picks it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/image_set.hpp"
#include "data/split.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/config/run_options.hpp"
#include "pipeline/train/compute.hpp"
#include "pipeline/train/progress.hpp"
#include "pipeline/train/trainer.hpp"

namespace pretext {

class DataParallel;  // data_parallel.hpp

struct TransferInputs {
  std::string mode;
  const RunOptions* options = nullptr;
  const Model* model = nullptr;
  const Loss* loss = nullptr;
  const Backbone* pretrained = nullptr;                                      // unused when the mode starts from scratch
  const std::vector<std::shared_ptr<const Stage>>* stages = nullptr;         // labelled images; the weak view
  const std::vector<std::shared_ptr<const Stage>>* strong_stages = nullptr;  // semi-supervised: the strong view
  const data::ImageSet* train = nullptr;                                     // the training file; split indexes into it
  const data::Split* split = nullptr;
  // Decoded once by the caller and shared by every mode.
  const LabelledTensors* validation = nullptr;
  const LabelledTensors* test = nullptr;  // nullptr: no test evaluation
  Compute compute;
  std::int64_t classes = 0;
  /// The ranks of a data-parallel run (nullptr: one process): batch sizes
  /// are global, each rank trains on its share, and evaluations are shared.
  DataParallel* parallel = nullptr;
  /// Called after every training step: throws RunInterrupted when the run
  /// was asked to stop (a signal), naming `where`; empty: never stops.
  std::function<void(const std::string& where)> stop_if_requested;
};

struct TransferResult {
  double val_accuracy = 0.0;  // after the last epoch
  double best_val_accuracy = 0.0;
  std::int64_t best_epoch = 0;
  std::optional<double> test_accuracy;  // of the final model
  double seconds = 0.0;
  double wait_seconds = 0.0;           // trainer idle, waiting for data
  double graph_seconds = 0.0;          // time inside training epochs
  std::shared_ptr<Backbone> backbone;  // the trained networks (the weight average, when there is one)
  std::shared_ptr<Head> head;
};

/// How one kind of transfer mode trains the classifier.
class TransferMethod {
 public:
  virtual ~TransferMethod() = default;
  /// Trains and evaluates; per-epoch metrics go to `dir` under phase "transfer.<mode>".
  virtual TransferResult run(const TransferInputs& in, artefacts::RunDirectory& dir, Progress& progress) const = 0;
};

/// The implementation of `mode`.
std::unique_ptr<TransferMethod> make_transfer_method(const TransferMode& mode);

/// make_transfer_method(transfer_mode(in.mode))->run(in, dir, progress).
TransferResult run_transfer(const TransferInputs& in, artefacts::RunDirectory& dir, Progress& progress);

}  // namespace pretext
