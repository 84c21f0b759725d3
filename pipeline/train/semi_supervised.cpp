#include "pipeline/train/semi_supervised.hpp"

#include <chrono>
#include <stdexcept>
#include <string>

#include <torch/nn/functional/loss.h>

#include "pipeline/train/data_parallel.hpp"
#include "pipeline/train/epoch_record.hpp"
#include "pipeline/train/training_context.hpp"
#include "pipeline/train/transfer_parts.hpp"

namespace pretext {

PseudoLabels pseudo_label_loss(const torch::Tensor& weak_logits, const torch::Tensor& strong_logits, double threshold) {
  return pseudo_label_loss(weak_logits, strong_logits,
                           [threshold](const torch::Tensor&) { return torch::scalar_tensor(threshold); });
}

PseudoLabels pseudo_label_loss(const torch::Tensor& weak_logits, const torch::Tensor& strong_logits,
                               const std::function<torch::Tensor(const torch::Tensor& probabilities)>& thresholds) {
  const torch::Tensor probabilities = torch::softmax(weak_logits.detach().to(torch::kFloat), 1);
  return pseudo_label_loss_from_probabilities(probabilities, strong_logits, thresholds(probabilities));
}

PseudoLabels pseudo_label_loss_from_probabilities(const torch::Tensor& probabilities,
                                                  const torch::Tensor& strong_logits, const torch::Tensor& thresholds) {
  PseudoLabels out;
  auto [top, targets] = probabilities.detach().to(torch::kFloat).max(1);
  out.targets = targets;
  out.mask = top.ge(thresholds.to(top.device(), torch::kFloat)).to(torch::kFloat);
  out.kept = out.mask.sum().item<std::int64_t>();
  namespace F = torch::nn::functional;
  const torch::Tensor per_row =
      F::cross_entropy(strong_logits.to(torch::kFloat), targets, F::CrossEntropyFuncOptions().reduction(torch::kNone));
  out.loss = (per_row * out.mask).mean();
  return out;
}

SelfAdaptiveThreshold::SelfAdaptiveThreshold(std::int64_t classes, double momentum,
                                             std::function<torch::Tensor(const torch::Tensor&)> mean_over_ranks)
    : momentum_(momentum),
      global_(1.0 / static_cast<double>(classes)),
      classes_(torch::full({classes}, 1.0 / static_cast<double>(classes), torch::kDouble)),
      mean_over_ranks_(std::move(mean_over_ranks)) {}

torch::Tensor SelfAdaptiveThreshold::operator()(const torch::Tensor& probabilities) {
  const torch::Tensor p = probabilities.detach().to(torch::kCPU, torch::kDouble);
  auto [top, predicted] = p.max(1);
  // One vector of this batch's statistics, so the ranks average them in one call.
  torch::Tensor batch = torch::cat({top.mean().reshape({1}), p.mean(0)});
  if (mean_over_ranks_) batch = mean_over_ranks_(batch);
  global_ = momentum_ * global_ + (1.0 - momentum_) * batch[0].item<double>();
  classes_.mul_(momentum_).add_(batch.slice(0, 1), 1.0 - momentum_);
  const torch::Tensor per_class = classes_ / classes_.max() * global_;
  return per_class.index_select(0, predicted).to(probabilities.device(), torch::kFloat);
}

DistributionAlignment::DistributionAlignment(const torch::Tensor& target, double momentum,
                                             std::function<torch::Tensor(const torch::Tensor&)> mean_over_ranks)
    : momentum_(momentum),
      target_(target.detach().to(torch::kCPU, torch::kDouble).flatten()),
      mean_over_ranks_(std::move(mean_over_ranks)) {
  if (target_.numel() == 0 || target_.lt(0).any().item<bool>() || target_.sum().item<double>() <= 0.0)
    throw std::invalid_argument(
        "DistributionAlignment: the target class distribution needs non-negative weights "
        "that do not all vanish");
  target_ = target_ / target_.sum();
}

torch::Tensor DistributionAlignment::operator()(const torch::Tensor& probabilities) {
  const torch::Tensor p = probabilities.detach().to(torch::kCPU, torch::kDouble);
  if (p.dim() != 2 || p.size(1) != target_.numel())
    throw std::invalid_argument("DistributionAlignment: expected (N, " + std::to_string(target_.numel()) +
                                ") probabilities");
  torch::Tensor batch = p.mean(0);
  if (mean_over_ranks_) batch = mean_over_ranks_(batch);
  average_ = average_.defined() ? average_ * momentum_ + batch * (1.0 - momentum_) : batch;
  // A class no batch has predicted yet would divide by zero; it keeps its probability instead.
  const torch::Tensor scale =
      torch::where(average_.gt(0), target_ / average_.clamp_min(1e-12), torch::ones_like(target_));
  torch::Tensor aligned = p * scale;
  aligned = aligned / aligned.sum(1, /*keepdim=*/true).clamp_min(1e-12);
  return aligned.to(probabilities.device(), torch::kFloat);
}

void update_weight_average(torch::nn::Module& average, const torch::nn::Module& current, double decay) {
  torch::NoGradGuard no_grad;
  const auto averaged = average.parameters();
  const auto now = current.parameters();
  if (averaged.size() != now.size()) throw std::logic_error("update_weight_average: different architectures");
  for (std::size_t i = 0; i < now.size(); ++i) averaged[i].mul_(decay).add_(now[i].detach(), 1.0 - decay);
  // Batch-norm statistics are averaged with the weights they normalise (as
  // timm's ModelEmaV2): the live network's statistics belong to the live
  // weights, and copied onto the average they mismatch it while it still lags.
  // Counters (num_batches_tracked) are copied.
  const auto average_buffers = average.buffers();
  const auto buffers = current.buffers();
  if (average_buffers.size() != buffers.size()) throw std::logic_error("update_weight_average: different buffers");
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    if (average_buffers[i].is_floating_point())
      average_buffers[i].mul_(decay).add_(buffers[i], 1.0 - decay);
    else
      average_buffers[i].copy_(buffers[i]);
  }
}

double WeightAverageDecay::next() {
  const auto t = static_cast<double>(updates_++);
  return warmup_ ? std::min(decay_, (1.0 + t) / (10.0 + t)) : decay_;
}

namespace {

/// `indices` visited in shuffled passes until `count` are drawn; pass r of
/// epoch e is shuffled with key (e, r), so every epoch and pass differ.
std::vector<std::uint32_t> cycled_order(const std::vector<std::uint32_t>& indices, std::uint64_t seed,
                                        std::int64_t epoch, std::size_t count) {
  std::vector<std::uint32_t> order;
  order.reserve(count);
  for (std::uint64_t pass = 0; order.size() < count; ++pass) {
    const auto shuffled = stages::shuffled(indices, seed, (static_cast<std::uint64_t>(epoch) << 24U) + pass);
    const std::size_t take = std::min(shuffled.size(), count - order.size());
    order.insert(order.end(), shuffled.begin(), shuffled.begin() + static_cast<std::ptrdiff_t>(take));
  }
  return order;
}

constexpr std::int64_t kRotations = 4;

/// The rotation pretext task kept alive beside FixMatch (as in S4L, Zhai et
/// al., 2019): the first `count` weak views, image i turned by (i mod 4) x 90
/// degrees, and the loss of predicting the turn. The weak views arrive
/// shuffled, so a fixed turn per position is still a random one per image,
/// and the result does not depend on the thread count.
torch::Tensor auxiliary_rotation_loss(const Compute& compute, Backbone& backbone, Head& head, const torch::Tensor& weak,
                                      std::int64_t count) {
  const std::int64_t n = std::min<std::int64_t>(count, weak.size(0));
  std::vector<torch::Tensor> turned;
  std::vector<torch::Tensor> labels;
  for (std::int64_t k = 0; k < kRotations; ++k) {
    const torch::Tensor group = weak.slice(0, k, n, kRotations);
    if (group.size(0) == 0) continue;
    turned.push_back(torch::rot90(group, k, {2, 3}));
    labels.push_back(torch::full({group.size(0)}, k, torch::TensorOptions().dtype(torch::kLong).device(weak.device())));
  }
  const torch::Tensor inputs = compute.place(torch::cat(turned));
  const torch::Tensor logits = compute.autocast_forward([&] { return head.forward(backbone.forward(inputs)); });
  return torch::nn::functional::cross_entropy(logits.to(torch::kFloat), torch::cat(labels));
}

/// The mean of a statistic over the data-parallel ranks; empty in a one-process run.
std::function<torch::Tensor(const torch::Tensor&)> mean_over_ranks(const TransferInputs& in) {
  if (in.parallel == nullptr || !in.parallel->distributed()) return nullptr;
  return [parallel = in.parallel](const torch::Tensor& values) { return parallel->mean(values); };
}

/// Pseudo-label quality over an epoch, against the unlabelled images' true
/// labels where the data has them (a diagnostic: they never reach training).
struct PseudoLabelTally {
  std::int64_t seen = 0;
  std::int64_t kept = 0;
  std::int64_t kept_correct = 0;
  bool labels_known = true;
};

class SemiSupervisedTransfer final : public TransferMethod {
 public:
  explicit SemiSupervisedTransfer(TransferMode mode) : mode_(std::move(mode)) {}

  TransferResult run(const TransferInputs& in, artefacts::RunDirectory& dir, Progress& progress) const override {
    const auto started = std::chrono::steady_clock::now();
    const RunOptions& o = *in.options;
    const SemiSupervisedOptions& semi = o.transfer.semi;
    const Compute& compute = in.compute;
    const std::string phase = "transfer." + mode_.name;
    // Global, as configured; each rank trains on its share of both.
    const std::int64_t labelled_batch = o.transfer.batch_size;
    const std::int64_t unlabelled_batch = semi.mu * labelled_batch;
    const std::int64_t ranks = in.parallel != nullptr ? in.parallel->world_size() : 1;
    if (in.split->unlabelled.empty() || in.split->labelled.empty())
      throw std::logic_error(phase + ": needs labelled and unlabelled images (checked when the data loads)");
    const std::int64_t steps_per_epoch =
        semi.steps_per_epoch > 0
            ? semi.steps_per_epoch
            : std::max<std::int64_t>(1, static_cast<std::int64_t>(in.split->unlabelled.size()) / unlabelled_batch);

    Classifier net = make_classifier(in, mode_);
    // The auxiliary task's own 4-way head; made before start_replicas reseeds the ranks apart.
    std::shared_ptr<Head> rotation_head;
    if (semi.rotation_weight > 0.0) {
      rotation_head = in.model->make_head(net.backbone->feature_shape(), kRotations);
      compute.place(*rotation_head);
      rotation_head->train();
      if (in.parallel != nullptr && in.parallel->distributed()) in.parallel->broadcast(*rotation_head);
    }
    start_replicas(in, net, phase);
    net.backbone->train();
    net.head->train();
    TransferOptimizer optimizer = make_transfer_optimizer(in, net, /*train_backbone=*/true, phase, rotation_head.get());
    LearningRateSchedule schedule(in, optimizer, steps_per_epoch * semi.epochs);
    const bool averaging = semi.ema_decay > 0.0;
    Classifier average;
    if (averaging) {
      average = make_classifier(in, mode_);
      copy_weights(*net.backbone, *average.backbone);
      copy_weights(*net.head, *average.head);
      for (auto& p : average.backbone->parameters()) p.set_requires_grad(false);
      for (auto& p : average.head->parameters()) p.set_requires_grad(false);
    }
    Classifier& evaluated = averaging ? average : net;
    // A mean teacher labels in evaluation mode: batch norm from its averaged
    // statistics, so a weak batch's own statistics do not shape its labels.
    const bool average_labels = averaging && semi.pseudo_labeller == "average";
    if (average_labels) {
      average.backbone->eval();
      average.head->eval();
    }
    WeightAverageDecay average_decay(semi.ema_decay, semi.ema_warmup);
    std::unique_ptr<SelfAdaptiveThreshold> adaptive;
    if (semi.thresholding == "self_adaptive") {
      adaptive = std::make_unique<SelfAdaptiveThreshold>(in.classes, semi.threshold_momentum, mean_over_ranks(in));
    }
    std::unique_ptr<DistributionAlignment> alignment;
    if (semi.distribution_alignment) {
      torch::Tensor target = torch::zeros({in.classes}, torch::kDouble);
      auto counts = target.accessor<double, 1>();
      for (const std::uint32_t index : in.split->labelled) {
        const auto label = in.train->labels[index];
        if (label >= 0 && label < in.classes) counts[label] += 1.0;
      }
      alignment = std::make_unique<DistributionAlignment>(target, semi.alignment_momentum, mean_over_ranks(in));
    }
    const stages::RepeatedViews weak_and_strong(2);
    const auto& labelled_stages = semi.labelled_view == "strong" ? *in.strong_stages : *in.stages;
    progress.begin_phase(phase, semi.epochs, steps_per_epoch);

    TransferResult result;
    for (std::int64_t epoch = 0; epoch < semi.epochs; ++epoch) {
      stages::EpochSpec labelled = training_epoch(*in.train, {}, o, epoch, labelled_batch / ranks);
      labelled.plan.order =
          cycled_order(in.split->labelled, o.seed, epoch, static_cast<std::size_t>(steps_per_epoch * labelled_batch));
      labelled.plan.key_by_position = true;  // an image drawn twice is augmented twice
      labelled.stages = labelled_stages;
      stages::EpochSpec unlabelled = training_epoch(*in.train, {}, o, epoch, 2 * unlabelled_batch / ranks);
      unlabelled.plan.order = cycled_order(in.split->unlabelled, o.seed ^ 0x5EB1ULL, epoch,
                                           static_cast<std::size_t>(steps_per_epoch * unlabelled_batch));
      unlabelled.plan.key_by_position = true;
      if (in.parallel != nullptr) {
        in.parallel->shard(labelled.plan);
        in.parallel->shard(unlabelled.plan);
      }
      unlabelled.views = &weak_and_strong;
      unlabelled.view_stages = {*in.stages, *in.strong_stages};

      PseudoLabelTally tally;
      const EpochResume stop_hook = stop_checks(in, phase, epoch);
      const auto report = train_joint_epoch(
          {&labelled, &unlabelled}, compute,
          [&](const std::vector<BatchTensors>& parts) {
            return step(in, parts, net, rotation_head.get(),
                        {adaptive.get(), alignment.get(), average_labels ? &average : nullptr}, optimizer, schedule,
                        averaging ? &average : nullptr, average_decay, tally);
          },
          progress, epoch, &stop_hook, in.parallel);
      end_epoch_replicas(in, net);
      if (averaging) end_epoch_replicas(in, average);
      if (in.parallel != nullptr && in.parallel->distributed()) {
        tally.seen = in.parallel->sum(tally.seen);
        tally.kept = in.parallel->sum(tally.kept);
        tally.kept_correct = in.parallel->sum(tally.kept_correct);
        tally.labels_known = in.parallel->sum(tally.labels_known ? 1 : 0) == ranks;
      }
      result.wait_seconds += report.wait_seconds;
      result.graph_seconds += report.seconds;
      const double val = record_validation(in, evaluated, epoch, result);
      EpochRecord record(phase, epoch + 1, semi.epochs);
      if (averaging) {  // the live weights too, so one run measures what the average buys
        const double live = evaluate_accuracy(*net.backbone, *net.head, *in.validation, compute,
                                              o.trainer.eval_batch_size, in.parallel);
        record.add("live_val_accuracy", live, "live " + format_fixed(live, 4));
      }
      record.add("train_loss", report.loss, "loss " + format_fixed(report.loss, 4))
          .add("train_accuracy", report.accuracy, "train " + format_fixed(report.accuracy, 4));
      const double mask_rate = tally.seen > 0 ? static_cast<double>(tally.kept) / static_cast<double>(tally.seen) : 0.0;
      for (const auto& [name, value] : report.extra) record.add(name, value);  // the loss's parts
      record.add("mask_rate", mask_rate, "mask " + format_fixed(mask_rate, 3));
      if (tally.labels_known && tally.kept > 0) {
        const double accuracy = static_cast<double>(tally.kept_correct) / static_cast<double>(tally.kept);
        record.add("pseudo_label_accuracy", accuracy, "pseudo-labels " + format_fixed(accuracy, 3));
      }
      record.add("val_accuracy", val, "val " + format_fixed(val, 4)).commit(dir, progress);
    }
    finish_transfer(in, phase, std::move(evaluated), started, result, progress);
    return result;
  }

 private:
  /// How pseudo-labels are made beyond the plain fixed threshold; each may be absent.
  struct PseudoLabelling {
    SelfAdaptiveThreshold* adaptive = nullptr;
    DistributionAlignment* alignment = nullptr;
    Classifier* teacher = nullptr;  // labels the weak views instead of the live weights
  };

  StepResult step(const TransferInputs& in, const std::vector<BatchTensors>& parts, Classifier& net,
                  Head* rotation_head, PseudoLabelling labelling, TransferOptimizer& optimizer,
                  LearningRateSchedule& schedule, Classifier* average, WeightAverageDecay& average_decay,
                  PseudoLabelTally& tally) const {
    const SemiSupervisedOptions& semi = in.options->transfer.semi;
    const Compute& compute = in.compute;
    const BatchTensors& labelled = parts[0];
    const BatchTensors& unlabelled = parts[1];
    const std::int64_t pairs = unlabelled.images.size(0) / 2;
    // Adjacent samples: weak view at even positions, strong at odd ones. Made
    // dense again: a strided batch would send convolutions down a slow path.
    const torch::Tensor weak = compute.place(unlabelled.images.slice(0, 0, 2 * pairs, 2));
    const torch::Tensor strong = unlabelled.images.slice(0, 1, 2 * pairs, 2);

    torch::Tensor weak_logits;
    {
      torch::NoGradGuard no_grad;  // the pseudo-labels are targets, not trained through
      Classifier& labeller = labelling.teacher != nullptr ? *labelling.teacher : net;
      weak_logits = compute.autocast_forward([&] { return labeller.head->forward(labeller.backbone->forward(weak)); });
    }
    const torch::Tensor inputs = compute.place(torch::cat({labelled.images, strong}));
    const torch::Tensor logits =
        compute.autocast_forward([&] { return net.head->forward(net.backbone->forward(inputs)); });
    const std::int64_t n = labelled.images.size(0);
    const torch::Tensor labelled_logits = logits.slice(0, 0, n);
    const torch::Tensor labelled_loss = (*in.loss)(labelled_logits, labelled.labels);
    torch::Tensor probabilities = torch::softmax(weak_logits.to(torch::kFloat), 1);
    if (labelling.alignment != nullptr) probabilities = (*labelling.alignment)(probabilities);
    const torch::Tensor thresholds =
        labelling.adaptive != nullptr ? (*labelling.adaptive)(probabilities) : torch::scalar_tensor(semi.threshold);
    const PseudoLabels pseudo = pseudo_label_loss_from_probabilities(probabilities, logits.slice(0, n), thresholds);
    torch::Tensor loss = labelled_loss + semi.unlabelled_weight * pseudo.loss;
    torch::Tensor rotation_loss;
    if (rotation_head != nullptr) {
      rotation_loss = auxiliary_rotation_loss(compute, *net.backbone, *rotation_head, weak, n);
      loss = loss + semi.rotation_weight * rotation_loss;
    }

    optimizer.optimizer->zero_grad();
    loss.backward();
    schedule.before_step();
    optimizer.optimizer->step();
    StepResult r;
    r.loss = loss.item<double>();
    optimizer.gradient_check->throw_if_found(r.loss);
    if (average != nullptr) {
      const double decay = average_decay.next();
      update_weight_average(*average->backbone, *net.backbone, decay);
      update_weight_average(*average->head, *net.head, decay);
    }
    r.correct = labelled_logits.argmax(1).eq(labelled.labels).sum().item<std::int64_t>();
    r.count = n;
    r.extra = {{"labelled_loss", labelled_loss.item<double>()}, {"unlabelled_loss", pseudo.loss.item<double>()}};
    if (rotation_loss.defined()) r.extra.emplace_back("rotation_loss", rotation_loss.item<double>());
    if (labelling.adaptive != nullptr) r.extra.emplace_back("threshold", thresholds.mean().item<double>());

    const torch::Tensor truth = unlabelled.labels.slice(0, 0, 2 * pairs, 2).cpu();
    tally.seen += pairs;
    tally.kept += pseudo.kept;
    if (truth.lt(0).any().item<bool>()) {
      tally.labels_known = false;
    } else {
      const torch::Tensor right = pseudo.targets.cpu().eq(truth).to(torch::kFloat) * pseudo.mask.cpu();
      tally.kept_correct += right.sum().item<std::int64_t>();
    }
    return r;
  }

  TransferMode mode_;
};

}  // namespace

std::unique_ptr<TransferMethod> make_semi_supervised_transfer(const TransferMode& mode) {
  return std::make_unique<SemiSupervisedTransfer>(mode);
}

}  // namespace pretext
