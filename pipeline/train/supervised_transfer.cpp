// The supervised transfer modes (fixed, finetuned, scratch): the classifier
// trains on the labelled images alone.
#include <chrono>

#include "pipeline/train/epoch_record.hpp"
#include "pipeline/train/transfer_parts.hpp"

namespace pretext {
namespace {

/// Frozen: no gradients, and eval mode, so batch-norm statistics and dropout
/// stay exactly as they were.
void freeze(Backbone& backbone, bool frozen) {
  for (auto& p : backbone.parameters()) p.set_requires_grad(!frozen);
  backbone.train(!frozen);
}

class SupervisedTransfer final : public TransferMethod {
 public:
  explicit SupervisedTransfer(TransferMode mode) : mode_(std::move(mode)) {}

  TransferResult run(const TransferInputs& in, artefacts::RunDirectory& dir, Progress& progress) const override {
    const auto started = std::chrono::steady_clock::now();
    const RunOptions& o = *in.options;
    const TransferOptions& t = o.transfer;
    const Compute& compute = in.compute;
    const bool fixed_features = !mode_.trains_backbone;
    // Linear-probe-then-fine-tune: the backbone may stay frozen for the first epochs.
    const std::int64_t frozen_epochs = fixed_features ? t.epochs : std::min(t.frozen_epochs, t.epochs);
    const std::string phase = "transfer." + mode_.name;

    Classifier net = make_classifier(in, mode_);
    start_replicas(in, net, phase);
    TransferOptimizer optimizer = make_transfer_optimizer(in, net, !fixed_features, phase);
    // Per rank: its share of the labelled images, in steps of its share of the batch.
    const std::int64_t labelled = local_count(in, in.split->labelled.size());
    const std::int64_t batch_size = local_batch(in, t.batch_size);
    LearningRateSchedule schedule(in, optimizer, (labelled / batch_size) * t.epochs);
    progress.begin_phase(phase, t.epochs, labelled / batch_size);

    TransferResult result;
    for (std::int64_t epoch = 0; epoch < t.epochs; ++epoch) {
      const bool frozen = epoch < frozen_epochs;
      freeze(*net.backbone, frozen);
      net.head->train();
      stages::EpochSpec spec = training_epoch(*in.train, in.split->labelled, o, epoch, batch_size, in.parallel);
      spec.drop_last = labelled > batch_size;
      spec.stages = *in.stages;
      const EpochResume stop_hook = stop_checks(in, phase, epoch);
      const auto report = train_epoch(
          spec, compute,
          [&](const torch::Tensor& images, const torch::Tensor& labels) {
            const torch::Tensor logits = compute.autocast_forward([&] {
              if (!frozen) return net.head->forward(net.backbone->forward(images));
              torch::Tensor features;
              {
                torch::NoGradGuard no_grad;
                features = net.backbone->forward(images);
              }
              return net.head->forward(features);
            });
            const torch::Tensor loss = (*in.loss)(logits, labels);
            optimizer.optimizer->zero_grad();
            loss.backward();
            schedule.before_step();
            optimizer.optimizer->step();
            StepResult r;
            r.loss = loss.item<double>();
            optimizer.gradient_check->throw_if_found(r.loss);
            r.correct = logits.argmax(1).eq(labels).sum().item<std::int64_t>();
            r.count = images.size(0);
            return r;
          },
          progress, epoch, &stop_hook, in.parallel);
      end_epoch_replicas(in, net);
      result.wait_seconds += report.wait_seconds;
      result.graph_seconds += report.seconds;
      const double val = record_validation(in, net, epoch, result);
      EpochRecord(phase, epoch + 1, t.epochs)
          .add("train_loss", report.loss, "loss " + format_fixed(report.loss, 4))
          .add("train_accuracy", report.accuracy, "train " + format_fixed(report.accuracy, 4))
          .add("val_accuracy", val, "val " + format_fixed(val, 4))
          .commit(dir, progress);
    }
    finish_transfer(in, phase, std::move(net), started, result, progress);
    return result;
  }

 private:
  TransferMode mode_;
};

}  // namespace

std::unique_ptr<TransferMethod> make_supervised_transfer(const TransferMode& mode) {
  return std::make_unique<SupervisedTransfer>(mode);
}

}  // namespace pretext
