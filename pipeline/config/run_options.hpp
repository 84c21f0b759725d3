// The host's options: one struct per config section ([data]'s is
// data::DataOptions, data/data_options.hpp), defaults and docs in
// run_options.cpp, validated there and only there. Plugin-owned keys live in
// the same tables ([model], [pretext], [transfer.loss], stages) and are read
// by the plugins themselves through the same Sections.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/data_options.hpp"
#include "pipeline/config/document.hpp"
#include "pipeline/config/section.hpp"

namespace pretext {

struct OptimizerOptions {
  std::string kind = "adam";  // adam | adamw | sgd
  double lr = 1e-3;
  double weight_decay = 0.0;
  double momentum = 0.9;  // sgd only
};

/// How a transfer mode trains: on the labelled images alone, or on the
/// labelled and the unlabelled ones together (FixMatch; [transfer.semi]).
enum class TransferKind { supervised, semi_supervised };

/// A transfer mode: what the classifier's backbone starts from, whether it
/// trains, and how. pipeline/train/transfer.hpp makes its implementation.
struct TransferMode {
  std::string name;
  bool from_pretext = true;     // the pretext backbone's weights; false: freshly initialised
  bool trains_backbone = true;  // false: frozen, in eval mode (batch-norm statistics and dropout as left)
  TransferKind kind = TransferKind::supervised;
  /// Does it read the unlabelled split?
  [[nodiscard]] bool uses_unlabelled() const { return kind == TransferKind::semi_supervised; }
};

/// The transfer modes: fixed, finetuned, scratch, semi and semi_scratch. The
/// one list; the config, transfer and `pretext export` all take it from here.
const std::vector<TransferMode>& transfer_modes();
/// The mode named `name`, or nullptr.
const TransferMode* find_transfer_mode(const std::string& name);
/// The mode named `name`; std::out_of_range for any other name (the config
/// has refused those already).
const TransferMode& transfer_mode(const std::string& name);
bool is_transfer_mode(const std::string& name);
std::vector<std::string> transfer_mode_names();

struct PipelineOptions {
  std::int64_t threads = 1;  // oneTBB arena, trainer thread included
  std::int64_t max_batches_in_flight = 8;
};

struct TrainerOptions {
  std::string device = "cpu";
  std::string memory_format = "channels_last";  // channels_last | contiguous
  std::string autocast = "none";                // none | bf16 | fp16
  std::int64_t eval_batch_size = 500;
  bool check_gradients = true;          // a NaN or infinite gradient stops the run (pipeline/train/gradient_check.hpp)
  std::string check_views = "guarded";  // "guarded" or "basic": pipeline/plugin_host/view_contract.hpp
};

struct PretextOptions {
  std::string plugin = "rotation";
  std::int64_t epochs = 1;
  std::int64_t batch_size = 32;
  OptimizerOptions optimizer;
  std::string lr_schedule = "constant";  // constant | cosine (per step, to 0 at the end)
  std::string load;                      // pretext.pt of an earlier run to start from; empty: fresh
};

/// [transfer.semi]: the semi-supervised modes, FixMatch (Sohn et al., 2020).
/// Each step trains on a labelled batch and mu times as many unlabelled
/// images, each in a weak and a strong view; the weak view's prediction,
/// when at least `threshold` sure, is the strong view's target.
struct SemiSupervisedOptions {
  std::int64_t epochs = 10;
  std::int64_t steps_per_epoch = 0;     // 0: one pass over the unlabelled images
  std::int64_t mu = 7;                  // unlabelled images per labelled image in a step
  double threshold = 0.95;              // tau: the confidence a pseudo-label needs
  std::string thresholding = "fixed";   // fixed: tau | self_adaptive: FreeMatch's, from the model's confidence
  double threshold_momentum = 0.999;    // self_adaptive: momentum of its moving averages
  bool distribution_alignment = false;  // ReMixMatch's: pseudo-labels pulled to the labelled class distribution
  double alignment_momentum = 0.999;    // distribution_alignment: momentum of the predictions' average
  double unlabelled_weight = 1.0;       // lambda_u: weight of the unlabelled loss
  double ema_decay = 0.999;             // EMA of the weights, evaluated and saved; 0: none
  bool ema_warmup = false;              // the EMA's decay ramps up: min(ema_decay, (1 + t) / (10 + t))
  std::string pseudo_labeller = "live";  // live: the trained weights | average: the EMA (a mean teacher)
  double rotation_weight = 0.0;         // auxiliary rotation loss on unlabelled images (0/90/180/270); 0: none
  std::string labelled_view = "weak";   // weak: the transfer stages | strong: also the strong view's
  // The strong view's stages ([[transfer.semi.strong_stages]]) are components: AssembledRun.
};

struct TransferOptions {
  std::vector<std::string> modes = {"fixed", "finetuned", "scratch"};
  std::int64_t epochs = 30;
  std::int64_t batch_size = 32;
  OptimizerOptions optimizer;
  std::string lr_schedule = "constant";  // constant | cosine (per step, to 0 at the end)
  double head_lr = 0.0;                  // learning rate of the new head; 0: optimizer.lr
  std::int64_t frozen_epochs = 0;        // finetuned/scratch: first epochs with the backbone frozen
  SemiSupervisedOptions semi;
};

/// Evaluations of the frozen pretext features, beyond the study's transfer:
/// kNN accuracy and a linear probe, on the pretext backbone and on a freshly
/// initialised one (the reference the pretext features must beat).
struct EvaluationOptions {
  bool knn = true;
  std::int64_t knn_k = 20;
  std::string knn_features = "flatten";  // flatten | avg_pool
  bool linear_probe = true;
  std::string linear_probe_features = "avg_pool";  // flatten | avg_pool
  double linear_probe_l2 = 1e-4;
  std::int64_t linear_probe_iterations = 200;  // L-BFGS iterations
  bool random_init = true;                     // also evaluate a freshly initialised backbone
};

/// Pretext-phase checkpoints (checkpoints/step-<global step>.pt), for `pretext resume`.
struct CheckpointOptions {
  std::int64_t every_steps = 500;  // 0: only at the end of each epoch
  std::int64_t keep = 2;           // newest step checkpoints kept
};

/// Data-parallel runs (several processes, see docs/distributed.md). Read on
/// every run; only used when a launcher sets WORLD_SIZE > 1.
struct DistributedOptions {
  /// Rendezvous, each collective and each store read: a rank that has not
  /// answered within this is reported lost and the others exit.
  std::int64_t timeout_seconds = 60;
  /// Gradients are all-reduced in flat buckets of at most this many MiB.
  std::int64_t bucket_mib = 25;
};

struct RunOptions {
  std::uint64_t seed = 0;
  std::int64_t threads = 2;  // LibTorch intra-op threads
  std::vector<std::string> plugin_path;
  std::string model_plugin = "conv4";
  std::string pretext_loss_plugin = "cross_entropy";
  std::string transfer_loss_plugin = "cross_entropy";
  data::DataOptions data;
  PipelineOptions pipeline;
  TrainerOptions trainer;
  PretextOptions pretext;
  TransferOptions transfer;
  EvaluationOptions evaluation;
  CheckpointOptions checkpoint;
  DistributedOptions distributed;
};

/// Every table of a run config, open for reading. Keeps track of what was
/// read so that finish() can reject the keys nobody knows.
struct RunSections {
  explicit RunSections(config::Document& document);

  config::Section root;
  config::Section data;
  config::Section pipeline;
  config::Section trainer;
  config::Section plugins;
  config::Section model;
  config::Section pretext;
  config::Section pretext_loss;
  config::Section transfer;
  config::Section transfer_loss;
  config::Section transfer_semi;
  config::Section evaluation;
  config::Section checkpoint;
  config::Section distributed;
  std::vector<config::Section> pretext_stages;
  std::vector<config::Section> transfer_stages;
  std::vector<config::Section> semi_strong_stages;

  /// Unknown-key check on every table; call after the plugins have read theirs.
  void finish() const;
};

/// Reads and validates the host's keys. Throws ConfigError.
RunOptions read_run_options(RunSections& sections);

}  // namespace pretext
