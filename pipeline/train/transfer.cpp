#include "pipeline/train/transfer.hpp"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "pipeline/train/epoch_record.hpp"
#include "pipeline/train/gradient_check.hpp"
#include "pipeline/train/trainer.hpp"
#include "pipeline/train/training_context.hpp"

namespace pretext {
namespace {

double cosine_factor(std::int64_t step, std::int64_t total) {
  constexpr double kPi = 3.14159265358979323846;
  return 0.5 * (1.0 + std::cos(kPi * static_cast<double>(step) / static_cast<double>(total)));
}

void scale_learning_rates(torch::optim::Optimizer& optimizer, const std::vector<double>& base, double factor) {
  auto& groups = optimizer.param_groups();
  for (std::size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(base[i] * factor);
}

/// Frozen: no gradients, and eval mode, so batch-norm statistics and dropout
/// stay exactly as they were.
void freeze(Backbone& backbone, bool frozen) {
  for (auto& p : backbone.parameters()) p.set_requires_grad(!frozen);
  backbone.train(!frozen);
}

}  // namespace

TransferResult run_transfer(const TransferInputs& in, artefacts::RunDirectory& dir, Progress& progress) {
  const auto started = std::chrono::steady_clock::now();
  const RunOptions& o = *in.options;
  const TransferOptions& t = o.transfer;
  const Compute& compute = in.compute;
  const TransferMode& mode = transfer_mode(in.mode);
  const bool fixed_features = !mode.trains_backbone;
  // Linear-probe-then-fine-tune: the backbone may stay frozen for the first epochs.
  const std::int64_t frozen_epochs = fixed_features ? t.epochs : std::min(t.frozen_epochs, t.epochs);

  auto backbone = in.model->make_backbone(ModelInput{in.train->shape});
  compute.place(*backbone);
  if (mode.from_pretext) copy_weights(*in.pretrained, *backbone);
  auto head = in.model->make_head(backbone->feature_shape(), in.classes);
  compute.place(*head);

  std::vector<ParameterGroup> groups{{head->parameters(), t.head_lr}};
  if (!fixed_features) groups.push_back({backbone->parameters(), t.optimizer.lr});
  std::vector<double> base_lrs;
  for (const auto& g : groups) base_lrs.push_back(g.lr);
  // A NaN or infinite gradient skips its update and ends the mode after the step, naming the parameter.
  const std::string phase = "transfer." + in.mode;
  const auto gradient_check = std::make_shared<GradientCheck>(o.trainer.check_gradients);
  gradient_check->name_parameters(*backbone, phase + ".backbone");
  gradient_check->name_parameters(*head, phase + ".head");
  auto optimizer = make_optimizer(t.optimizer, std::move(groups), o.trainer.check_gradients ? gradient_check : nullptr);

  const auto labelled = static_cast<std::int64_t>(in.split->labelled.size());
  const std::int64_t total_steps = std::max<std::int64_t>(1, (labelled / t.batch_size) * t.epochs);
  std::int64_t step = 0;
  progress.begin_phase(phase, t.epochs, labelled / t.batch_size);

  TransferResult result;
  for (std::int64_t epoch = 0; epoch < t.epochs; ++epoch) {
    const bool frozen = epoch < frozen_epochs;
    freeze(*backbone, frozen);
    head->train();
    stages::EpochSpec spec = training_epoch(*in.train, in.split->labelled, o, epoch, t.batch_size);
    spec.drop_last = labelled > t.batch_size;
    spec.stages = *in.stages;
    const auto report = train_epoch(
        spec, compute,
        [&](const torch::Tensor& images, const torch::Tensor& labels) {
          const torch::Tensor logits = compute.autocast_forward([&] {
            if (!frozen) return head->forward(backbone->forward(images));
            torch::Tensor features;
            {
              torch::NoGradGuard no_grad;
              features = backbone->forward(images);
            }
            return head->forward(features);
          });
          const torch::Tensor loss = (*in.loss)(logits, labels);
          optimizer->zero_grad();
          loss.backward();
          if (t.lr_schedule == "cosine") scale_learning_rates(*optimizer, base_lrs, cosine_factor(step, total_steps));
          ++step;
          optimizer->step();
          StepResult r;
          r.loss = loss.item<double>();
          gradient_check->throw_if_found(r.loss);
          r.correct = logits.argmax(1).eq(labels).sum().item<std::int64_t>();
          r.count = images.size(0);
          return r;
        },
        progress, epoch);
    result.wait_seconds += report.wait_seconds;
    result.graph_seconds += report.seconds;
    result.val_accuracy = evaluate_accuracy(*backbone, *head, *in.validation, compute, o.trainer.eval_batch_size);
    if (result.val_accuracy > result.best_val_accuracy || result.best_epoch == 0) {
      result.best_val_accuracy = result.val_accuracy;
      result.best_epoch = epoch + 1;
    }
    EpochRecord(phase, epoch + 1, t.epochs)
        .add("train_loss", report.loss, "loss " + format_fixed(report.loss, 4))
        .add("train_accuracy", report.accuracy, "train " + format_fixed(report.accuracy, 4))
        .add("val_accuracy", result.val_accuracy, "val " + format_fixed(result.val_accuracy, 4))
        .commit(dir, progress);
  }

  if (in.test != nullptr) {
    result.test_accuracy =
        evaluate_accuracy(*backbone, *head, *in.test, compute, o.trainer.eval_batch_size);
    progress.line(phase + ": val " + format_fixed(result.val_accuracy, 4) + ", test " + format_fixed(*result.test_accuracy, 4));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.backbone = std::move(backbone);
  result.head = std::move(head);
  return result;
}

}  // namespace pretext
