// Transfer to the labelled split in one mode:
//   fixed      the pretext backbone, frozen (eval mode: batch-norm statistics
//              and dropout stay as the pretext task left them); a new head trains
//   finetuned  the pretext backbone and a new head, all training
//   scratch    a freshly initialised backbone and head: the baseline
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/image_set.hpp"
#include "data/split.hpp"
#include "pipeline/train/progress.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/config/run_options.hpp"
#include "pipeline/train/compute.hpp"
#include "pipeline/train/trainer.hpp"

namespace pretext {

struct TransferInputs {
  std::string mode;
  const RunOptions* options = nullptr;
  const Model* model = nullptr;
  const Loss* loss = nullptr;
  const Backbone* pretrained = nullptr;  // unused for scratch
  const std::vector<std::shared_ptr<const Stage>>* stages = nullptr;
  const data::ImageSet* train = nullptr;  // the training file; split indexes into it
  const data::Split* split = nullptr;
  // Decoded once by the caller and shared by every mode.
  const LabelledTensors* validation = nullptr;
  const LabelledTensors* test = nullptr;  // nullptr: no test evaluation
  Compute compute;
  std::int64_t classes = 0;
};

struct TransferResult {
  double val_accuracy = 0.0;  // after the last epoch
  double best_val_accuracy = 0.0;
  std::int64_t best_epoch = 0;
  std::optional<double> test_accuracy;  // of the final model
  double seconds = 0.0;
  double wait_seconds = 0.0;   // trainer idle, waiting for data
  double graph_seconds = 0.0;  // time inside training epochs
  std::shared_ptr<Backbone> backbone;  // the trained networks
  std::shared_ptr<Head> head;
};

/// Trains and evaluates one mode; per-epoch metrics go to `dir` under
/// phase "transfer.<mode>".
TransferResult run_transfer(const TransferInputs& in, artefacts::RunDirectory& dir, Progress& progress);

}  // namespace pretext
