#include "pipeline/train/transfer.hpp"

#include "pipeline/train/data_parallel.hpp"
#include "pipeline/train/training_context.hpp"
#include "pipeline/train/transfer_parts.hpp"

namespace pretext {

std::unique_ptr<TransferMethod> make_transfer_method(const TransferMode& mode) {
  switch (mode.kind) {
    case TransferKind::supervised:
      return make_supervised_transfer(mode);
    case TransferKind::semi_supervised:
      return make_semi_supervised_transfer(mode);
  }
  throw std::logic_error("transfer mode '" + mode.name + "' has no implementation");
}

TransferResult run_transfer(const TransferInputs& in, artefacts::RunDirectory& dir, Progress& progress) {
  return make_transfer_method(transfer_mode(in.mode))->run(in, dir, progress);
}

Classifier make_classifier(const TransferInputs& in, const TransferMode& mode) {
  Classifier net;
  net.backbone = in.model->make_backbone(ModelInput{in.train->shape});
  in.compute.place(*net.backbone);
  if (mode.from_pretext) copy_weights(*in.pretrained, *net.backbone);
  net.head = in.model->make_head(net.backbone->feature_shape(), in.classes);
  in.compute.place(*net.head);
  return net;
}

void start_replicas(const TransferInputs& in, Classifier& net, const std::string& phase) {
  if (in.parallel == nullptr || !in.parallel->distributed()) return;
  in.parallel->broadcast(*net.backbone);
  in.parallel->broadcast(*net.head);
  if (in.parallel->rank() > 0)
    torch::manual_seed(phase_seed(in.options->seed, phase + ".rank" + std::to_string(in.parallel->rank())));
}

void end_epoch_replicas(const TransferInputs& in, Classifier& net) {
  if (in.parallel == nullptr || !in.parallel->distributed()) return;
  in.parallel->average_buffers(*net.backbone);  // left alone while frozen (eval mode)
  in.parallel->average_buffers(*net.head);
}

std::int64_t local_batch(const TransferInputs& in, std::int64_t batch_size) {
  return in.parallel != nullptr ? in.parallel->local_batch(batch_size, "transfer.batch_size") : batch_size;
}

std::int64_t local_count(const TransferInputs& in, std::size_t images) {
  const std::size_t ranks = in.parallel != nullptr ? static_cast<std::size_t>(in.parallel->world_size()) : 1;
  return static_cast<std::int64_t>(images / ranks);
}

TransferOptimizer make_transfer_optimizer(const TransferInputs& in, const Classifier& net, bool train_backbone,
                                          const std::string& phase, Head* auxiliary) {
  const RunOptions& o = *in.options;
  std::vector<ParameterGroup> groups{{net.head->parameters(), o.transfer.head_lr}};
  if (train_backbone) groups.push_back({net.backbone->parameters(), o.transfer.optimizer.lr});
  if (auxiliary != nullptr) groups.push_back({auxiliary->parameters(), o.transfer.head_lr});
  TransferOptimizer out;
  out.scale = std::make_shared<LearningRateScale>();
  // A NaN or infinite gradient skips its update and ends the mode after the step, naming the parameter.
  out.gradient_check = std::make_shared<GradientCheck>(o.trainer.check_gradients);
  out.gradient_check->name_parameters(*net.backbone, phase + ".backbone");
  out.gradient_check->name_parameters(*net.head, phase + ".head");
  if (auxiliary != nullptr) out.gradient_check->name_parameters(*auxiliary, phase + ".auxiliary_head");
  // Not owned: the job's DataParallel outlives every transfer.
  std::shared_ptr<GradientSync> sync;
  if (in.parallel != nullptr && in.parallel->distributed()) sync = std::shared_ptr<GradientSync>(std::shared_ptr<GradientSync>(), in.parallel);
  out.optimizer = make_optimizer(o.transfer.optimizer, std::move(groups),
                                 o.trainer.check_gradients ? out.gradient_check : nullptr, std::move(sync), out.scale);
  return out;
}

LearningRateSchedule::LearningRateSchedule(const TransferInputs& in, TransferOptimizer& optimizer,
                                           std::int64_t total_steps)
    : optimizer_(&optimizer),
      cosine_(in.options->transfer.lr_schedule == "cosine"),
      total_steps_(std::max<std::int64_t>(1, total_steps)) {}

void LearningRateSchedule::before_step() {
  const std::int64_t step = step_++;
  if (!cosine_) return;
  optimizer_->scale->factor = cosine_decay(step, total_steps_);
}

EpochResume stop_checks(const TransferInputs& in, const std::string& phase, std::int64_t epoch) {
  EpochResume hook;
  if (!in.stop_if_requested) return hook;
  hook.after_step = [&in, phase, epoch](const EpochTotals& totals) {
    in.stop_if_requested("during " + phase + " at epoch " + std::to_string(epoch + 1) + " step " +
                         std::to_string(totals.steps) + " (a resumed run trains the transfer modes again)");
  };
  return hook;
}

double record_validation(const TransferInputs& in, Classifier& net, std::int64_t epoch, TransferResult& result) {
  result.val_accuracy =
      evaluate_accuracy(*net.backbone, *net.head, *in.validation, in.compute, in.options->trainer.eval_batch_size,
                        in.parallel);
  if (result.val_accuracy > result.best_val_accuracy || result.best_epoch == 0) {
    result.best_val_accuracy = result.val_accuracy;
    result.best_epoch = epoch + 1;
  }
  return result.val_accuracy;
}

void finish_transfer(const TransferInputs& in, const std::string& phase, Classifier net,
                     std::chrono::steady_clock::time_point started, TransferResult& result, Progress& progress) {
  // No epoch ran (epochs = 0): the networks as they start, with the best
  // "epoch" 0, rather than a validation accuracy of 0 that was never measured.
  if (result.best_epoch == 0) record_validation(in, net, -1, result);
  if (in.test != nullptr) {
    result.test_accuracy =
        evaluate_accuracy(*net.backbone, *net.head, *in.test, in.compute, in.options->trainer.eval_batch_size,
                          in.parallel);
    progress.line(phase + ": val " + format_fixed(result.val_accuracy, 4) + ", test " +
                  format_fixed(*result.test_accuracy, 4));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.backbone = std::move(net.backbone);
  result.head = std::move(net.head);
}

}  // namespace pretext
