#include "pipeline/config/run_options.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace pretext {
namespace {

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist/";

OptimizerOptions read_optimizer(config::Section& s, const OptimizerOptions& defaults) {
  OptimizerOptions o;
  o.kind = s.choice("optimizer", defaults.kind, {"adam", "adamw", "sgd"},
                    "optimiser; adamw: Adam with decoupled weight decay (Loshchilov and Hutter)");
  o.lr = s.number("lr", defaults.lr, 1e-8, 10.0, "learning rate");
  o.weight_decay = s.number("weight_decay", defaults.weight_decay, 0.0, 1.0,
                            "weight decay: an L2 term in the gradient (adam, sgd), or a shrink of lr x weight_decay "
                            "a step, apart from the gradient (adamw)");
  o.momentum = s.number("momentum", defaults.momentum, 0.0, 0.999, "SGD momentum (sgd only)");
  return o;
}

data::DataOptions read_data(config::Section& s) {
  data::DataOptions d;
  d.source = s.choice("source", d.source, {"idx", "svhn_mat", "folder", "packed"},
                      "idx: IDX files (gzip or raw); svhn_mat: SVHN *_32x32.mat; folder: a folder of PNG/JPEG "
                      "images; packed: a file written by pretext preprocess");
  const bool idx = d.source == "idx";
  d.path = s.string("path", idx ? std::string(kFashionMnistDir) + "train-images-idx3-ubyte.gz" : "",
                    "training file: unlabelled, labelled and validation images are drawn from it; packed: "
                    "may be a glob (\"dir/train-*.pack\"), its files read as one in name order");
  if (d.path.empty()) s.fail("path", "a path to the training file (e.g. train_32x32.mat)");
  d.test_path = s.string("test_path", idx ? std::string(kFashionMnistDir) + "t10k-images-idx3-ubyte.gz" : "",
                         "test file, evaluated separately; empty: no test evaluation; packed: may be a glob");
  if (idx) {
    d.labels_path = s.string("labels_path", "", "IDX label file; empty: derived from path");
    d.test_labels_path = s.string("test_labels_path", "", "IDX test label file; empty: derived from test_path");
  }
  d.labelled = s.integer("labelled", d.labelled, 1, 10'000'000, "labelled training images for transfer");
  d.validation = s.integer("validation", d.validation, 1, 10'000'000, "labelled validation images");
  d.unlabelled = s.integer("unlabelled", d.unlabelled, 0, 100'000'000,
                           "unlabelled images for the pretext task; 0: all that remain");
  d.labelled_draw = s.choice("labelled_draw", d.labelled_draw, {"random", "per_class"},
                             "random: the labelled images are a uniform draw (the study's protocol); per_class: "
                             "data.labelled / classes of each class, as FixMatch draws them");
  // Folders are sized by image_size and packed files were sized when written: no padding by default.
  const bool decoded_already_sized = d.source == "folder" || d.source == "packed";
  d.pad_to = s.integer("pad_to", decoded_already_sized ? 0 : d.pad_to, 0, 4096,
                       "zero-pad images to this square size; 0: keep (default for folder and packed)");
  if (d.source == "folder") {
    d.image_size = s.integer("image_size", d.image_size, 1, 4096,
                             "folder: shorter side resized to this, then the centre square cropped");
    d.channels = s.integer("channels", d.channels, 1, 3, "folder: 1 (grey, ITU-R 601 luma) or 3 (RGB)");
    if (d.channels == 2) s.fail("channels", "1 (grey) or 3 (RGB)");
    d.on_bad_image = s.choice("on_bad_image", d.on_bad_image, {"fail", "skip"},
                              "folder: an undecodable image stops the load (fail) or is reported and left out");
    d.labelled_layout = s.boolean("labelled_layout", d.labelled_layout,
                                  "folder: one sub-folder per class (sorted names = labels 0..); false: any "
                                  "tree of images, labels unknown");
  }
  if (d.source == "packed")
    d.verify_checksum = s.boolean("verify_checksum", d.verify_checksum,
                                  "packed: check the CRC-32 of pixels and labels when loading (a full read)");
  if (d.source == "packed")
    d.access = s.choice("access", d.access, {"mmap", "stream"},
                        "packed: mmap (read in place, no copy; pages read count as the process's memory) or "
                        "stream (one read per image: memory stays flat however large the file)");
  return d;
}

EvaluationOptions read_evaluation(config::Section& s) {
  EvaluationOptions e;
  const std::vector<std::string> pooling = {"flatten", "avg_pool"};
  e.knn = s.boolean("knn", e.knn, "kNN accuracy of the frozen features (cosine, labelled split as memory bank)");
  e.knn_k = s.integer("knn_k", e.knn_k, 1, 1000, "neighbours that vote in kNN (at most the labelled images)");
  e.knn_features = s.choice("knn_features", e.knn_features, pooling,
                            "kNN features: flatten (C*H*W) or avg_pool (global average over H, W: C)");
  e.linear_probe = s.boolean("linear_probe", e.linear_probe,
                             "logistic regression on the frozen features of the labelled split (L-BFGS)");
  e.linear_probe_features = s.choice("linear_probe_features", e.linear_probe_features, pooling,
                                     "linear-probe features: flatten (C*H*W) or avg_pool (C)");
  e.linear_probe_l2 = s.number("linear_probe_l2", e.linear_probe_l2, 0.0, 1e6,
                               "L2 penalty on the probe's weights: loss + l2/2 * |W|^2");
  e.linear_probe_iterations = s.integer("linear_probe_iterations", e.linear_probe_iterations, 1, 10000,
                                        "L-BFGS iterations of the linear probe (full batch)");
  e.random_init = s.boolean("random_init", e.random_init,
                            "also evaluate a freshly initialised backbone: the baseline pretext features must beat");
  return e;
}

SemiSupervisedOptions read_semi_supervised(config::Section& s) {
  SemiSupervisedOptions o;
  o.epochs = s.integer("epochs", o.epochs, 0, 100000, "semi-supervised epochs");
  o.steps_per_epoch = s.integer("steps_per_epoch", o.steps_per_epoch, 0, INT64_MAX,
                                "steps per epoch; 0: one pass over the unlabelled images (mu x batch_size a step)");
  o.mu = s.integer("mu", o.mu, 1, 1024, "unlabelled images per labelled image in a step (mu >= 1)");
  o.threshold = s.number("threshold", o.threshold, 0.0, 1.0,
                         "tau: a pseudo-label counts when its top probability is at least this, in (0, 1]");
  if (o.threshold <= 0.0) s.fail("threshold", "a confidence in (0, 1]; 0 would keep every pseudo-label");
  o.thresholding = s.choice("thresholding", o.thresholding, {"fixed", "self_adaptive"},
                            "how pseudo-labels are kept: fixed (top probability >= threshold) or self_adaptive "
                            "(FreeMatch: a per-class threshold that follows the model's confidence)");
  o.threshold_momentum = s.number("threshold_momentum", o.threshold_momentum, 0.0, 0.999999,
                                  "self_adaptive: momentum of the confidence averages the thresholds follow");
  o.distribution_alignment =
      s.boolean("distribution_alignment", o.distribution_alignment,
                "ReMixMatch's distribution alignment: the weak view's probabilities are scaled by the labelled "
                "images' class distribution over the moving average of the predictions, then renormalised");
  o.alignment_momentum = s.number("alignment_momentum", o.alignment_momentum, 0.0, 0.999999,
                                  "distribution_alignment: momentum of the moving average of the predictions");
  o.unlabelled_weight = s.number("unlabelled_weight", o.unlabelled_weight, 0.0, 1000.0,
                                 "lambda_u: weight of the unlabelled (pseudo-label) loss");
  o.ema_decay = s.number("ema_decay", o.ema_decay, 0.0, 0.999999,
                         "decay of the weights' exponential moving average, which is evaluated and saved; 0: none");
  o.ema_warmup = s.boolean("ema_warmup", o.ema_warmup,
                           "ramp the EMA's decay up as min(ema_decay, (1 + t) / (10 + t)) at update t, so the "
                           "average forgets the untrained first weights of a short run or a fresh backbone");
  o.pseudo_labeller = s.choice("pseudo_labeller", o.pseudo_labeller, {"live", "average"},
                               "which weights label the weak views: live (the weights being trained, FixMatch) or "
                               "average (the EMA of the weights, in evaluation mode: a mean teacher)");
  if (o.pseudo_labeller == "average" && o.ema_decay <= 0.0)
    s.fail("pseudo_labeller", "\"live\" when ema_decay = 0: there is no average of the weights to label with");
  o.rotation_weight = s.number("rotation_weight", o.rotation_weight, 0.0, 1000.0,
                               "weight of an auxiliary loss predicting the rotation (0/90/180/270) of unlabelled "
                               "images, through a 4-way head of its own; 0: none");
  o.labelled_view = s.choice("labelled_view", o.labelled_view, {"weak", "strong"},
                             "the labelled images' augmentation: weak (transfer.stages) or strong (transfer.stages, "
                             "then strong_stages, as the unlabelled images' strong view)");
  return o;
}

CheckpointOptions read_checkpoint(config::Section& s) {
  CheckpointOptions c;
  c.every_steps = s.integer("every_steps", c.every_steps, 0, INT64_MAX,
                            "pretext steps between checkpoints (checkpoints/step-N.pt); 0: only at epoch ends");
  c.keep = s.integer("keep", c.keep, 1, 1000, "newest checkpoints kept; older ones are deleted");
  return c;
}

DistributedOptions read_distributed(config::Section& s) {
  DistributedOptions d;
  d.timeout_seconds = s.integer("timeout", d.timeout_seconds, 1, 86400,
                                "seconds a rank waits for the others (rendezvous, each all-reduce) before it "
                                "reports the missing rank and exits");
  d.bucket_mib = s.integer("bucket_mib", d.bucket_mib, 1, 4096, "MiB of gradients per all-reduce bucket");
  return d;
}

}  // namespace

RunSections::RunSections(config::Document& document)
    : root(document, ""),
      data(root.child("data")),
      pipeline(root.child("pipeline")),
      trainer(root.child("trainer")),
      plugins(root.child("plugins")),
      model(root.child("model")),
      pretext(root.child("pretext")),
      pretext_loss(pretext.child("loss")),
      transfer(root.child("transfer")),
      transfer_loss(transfer.child("loss")),
      transfer_semi(transfer.child("semi")),
      evaluation(root.child("evaluation")),
      checkpoint(root.child("checkpoint")),
      distributed(root.child("distributed")),
      pretext_stages(pretext.table_array("stages")),
      transfer_stages(transfer.table_array("stages")),
      semi_strong_stages(transfer_semi.table_array("strong_stages")) {}

void RunSections::finish() const {
  for (const config::Section* s : {&root, &data, &pipeline, &trainer, &plugins, &model, &pretext, &pretext_loss,
                                   &transfer, &transfer_loss, &transfer_semi, &evaluation, &checkpoint, &distributed})
    s->finish();
  for (const auto& s : pretext_stages) s.finish();
  for (const auto& s : transfer_stages) s.finish();
  for (const auto& s : semi_strong_stages) s.finish();
}

const std::vector<TransferMode>& transfer_modes() {
  static const std::vector<TransferMode> kModes = {
      {"fixed", /*from_pretext=*/true, /*trains_backbone=*/false, TransferKind::supervised},
      {"finetuned", /*from_pretext=*/true, /*trains_backbone=*/true, TransferKind::supervised},
      {"scratch", /*from_pretext=*/false, /*trains_backbone=*/true, TransferKind::supervised},
      {"semi", /*from_pretext=*/true, /*trains_backbone=*/true, TransferKind::semi_supervised},
      {"semi_scratch", /*from_pretext=*/false, /*trains_backbone=*/true, TransferKind::semi_supervised},
  };
  return kModes;
}

const TransferMode* find_transfer_mode(const std::string& name) {
  for (const auto& mode : transfer_modes())
    if (mode.name == name) return &mode;
  return nullptr;
}

const TransferMode& transfer_mode(const std::string& name) {
  if (const TransferMode* mode = find_transfer_mode(name)) return *mode;
  throw std::out_of_range("no transfer mode named '" + name + "'");
}

std::vector<std::string> transfer_mode_names() {
  std::vector<std::string> names;
  for (const auto& mode : transfer_modes()) names.push_back(mode.name);
  return names;
}

bool is_transfer_mode(const std::string& name) { return find_transfer_mode(name) != nullptr; }

namespace {

// This process's share of the cores: all of them, or under `pretext launch`
// (or torchrun) 1 / LOCAL_WORLD_SIZE, since the node's ranks train side by
// side. The variable is only read here; the process group validates it.
std::int64_t cores_per_process() {
  const auto cores = static_cast<std::int64_t>(std::max(1U, std::thread::hardware_concurrency()));
  const char* local = std::getenv("LOCAL_WORLD_SIZE");
  const long processes = local != nullptr ? std::strtol(local, nullptr, 10) : 1;
  return std::max<std::int64_t>(1, cores / std::max(1L, processes));
}

}  // namespace

RunOptions read_run_options(RunSections& s) {
  RunOptions o;
  o.seed = static_cast<std::uint64_t>(
      s.root.integer("seed", 0, 0, INT64_MAX, "seeds shuffling, splits, augmentation and initialisation"));
  const auto cores = cores_per_process();
  o.threads = s.root.integer("threads", cores, 1, 1024, "LibTorch intra-op threads");

  o.data = read_data(s.data);

  // Measured on 2 cores: a second oneTBB worker spinning beside LibTorch's
  // two OpenMP threads cut pretext training from 1,390 to 927 images/s, while
  // the input work itself needs under 1 % of one core. So by default the
  // graph only gets the cores LibTorch leaves, plus the trainer's own thread.
  const std::int64_t spare = std::max<std::int64_t>(1, cores - o.threads + 1);
  o.pipeline.threads =
      s.pipeline.integer("threads", spare, 1, 1024, "oneTBB threads for the input graph, the trainer's included");
  o.pipeline.max_batches_in_flight =
      s.pipeline.integer("max_batches_in_flight", o.pipeline.max_batches_in_flight, 1, 4096,
                         "bound on batches being prepared or trained on at once (memory: this many batch buffers)");
  // Before the graph carried whole batches it carried blocks of images; run
  // directories written then still name these keys, so they load (and resume).
  (void)s.pipeline.integer("block_size", 64, 1, 65536, "ignored: kept so older configs load (a message is a batch)");
  (void)s.pipeline.integer("max_blocks_in_flight", 16, 1, 65536,
                           "ignored: kept so older configs load (see max_batches_in_flight)");

  o.trainer.device = s.trainer.string("device", o.trainer.device, "LibTorch device: cpu, cuda, cuda:1, ...");
  o.trainer.memory_format = s.trainer.choice("memory_format", o.trainer.memory_format, {"channels_last", "contiguous"},
                                             "layout of images and conv weights");
  o.trainer.autocast =
      s.trainer.choice("autocast", o.trainer.autocast, {"none", "bf16", "fp16"}, "mixed precision for forward passes");
  o.trainer.eval_batch_size =
      s.trainer.integer("eval_batch_size", o.trainer.eval_batch_size, 1, 1 << 20, "batch size for evaluation");
  o.trainer.check_gradients = s.trainer.boolean(
      "check_gradients", o.trainer.check_gradients,
      "before each update, look for NaN or infinite gradients (one sum per parameter); stop the run naming one");
  o.trainer.check_views = s.trainer.choice(
      "check_views", o.trainer.check_views, {"guarded", "basic"},
      "the pretext task's make_views: guarded also catches writes past a view's end (docs/performance.md)");

  for (const auto& dir : s.plugins.strings("search_path", {}, {}, "extra directories searched for plugins"))
    o.plugin_path.push_back(dir);

  o.model_plugin = s.model.string("plugin", o.model_plugin, "model plugin: a name or a path to a library");

  o.pretext.plugin = s.pretext.string("plugin", o.pretext.plugin, "pretext task plugin: a name or a path");
  o.pretext.epochs = s.pretext.integer("epochs", o.pretext.epochs, 0, 100000, "pretext training epochs");
  o.pretext.batch_size =
      s.pretext.integer("batch_size", o.pretext.batch_size, 1, 1 << 16, "samples per pretext step (after views)");
  o.pretext.optimizer = read_optimizer(s.pretext, OptimizerOptions{});
  o.pretext.lr_schedule =
      s.pretext.choice("lr_schedule", o.pretext.lr_schedule, {"constant", "cosine"},
                       "constant, or cosine decay to 0 over all pretext steps (of the optimisers the task makes with "
                       "TrainingContext::make_optimizer)");
  o.pretext.load = s.pretext.string("load", "", "pretext.pt of an earlier run to start from (same model and task)");
  o.pretext_loss_plugin = s.pretext_loss.string("plugin", o.pretext_loss_plugin, "loss plugin for the pretext task");

  o.transfer.modes =
      s.transfer.strings("modes", o.transfer.modes, transfer_mode_names(), "transfer modes to run, in order");
  o.transfer.epochs = s.transfer.integer("epochs", o.transfer.epochs, 0, 100000, "transfer epochs per mode");
  o.transfer.batch_size = s.transfer.integer("batch_size", o.transfer.batch_size, 1, 1 << 16, "transfer batch size");
  o.transfer.optimizer = read_optimizer(s.transfer, OptimizerOptions{});
  o.transfer.head_lr = s.transfer.number("head_lr", 0.0, 0.0, 10.0,
                                         "learning rate of the new head (all a fixed transfer trains); 0: lr");
  if (o.transfer.head_lr == 0.0) o.transfer.head_lr = o.transfer.optimizer.lr;
  o.transfer.frozen_epochs = s.transfer.integer(
      "frozen_epochs", 0, 0, 100000, "finetuned/scratch: epochs that train the head alone before all trains");
  o.transfer.lr_schedule = s.transfer.choice("lr_schedule", o.transfer.lr_schedule, {"constant", "cosine"},
                                             "constant, or cosine decay to 0 over all transfer steps");
  o.transfer.semi = read_semi_supervised(s.transfer_semi);
  const bool semi_supervised =
      std::any_of(o.transfer.modes.begin(), o.transfer.modes.end(),
                  [](const std::string& mode) { return transfer_mode(mode).uses_unlabelled(); });
  if (semi_supervised && s.semi_strong_stages.empty())
    s.transfer_semi.fail("strong_stages",
                         "the strong view's stages for the semi-supervised modes, e.g. "
                         "strong_stages = [{ name = \"rand_augment\" }]");
  o.transfer_loss_plugin = s.transfer_loss.string("plugin", o.transfer_loss_plugin, "loss plugin for transfer");
  o.evaluation = read_evaluation(s.evaluation);
  o.checkpoint = read_checkpoint(s.checkpoint);
  o.distributed = read_distributed(s.distributed);
  return o;
}

}  // namespace pretext
