#include "pipeline/train/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>

#include "pipeline/train/data_parallel.hpp"
#include "pipeline/train/gradient_check.hpp"
#include "pretext/image_ops.hpp"

namespace pretext {

stages::EpochSpec training_epoch(const data::ImageSet& set, const std::vector<std::uint32_t>& indices,
                                 const RunOptions& options, std::int64_t epoch, std::int64_t batch_size,
                                 const DataParallel* parallel) {
  stages::EpochSpec spec;
  spec.plan.images = &set;
  spec.plan.order = stages::shuffled(indices, options.seed, static_cast<std::uint64_t>(epoch));
  if (parallel != nullptr) parallel->shard(spec.plan);
  spec.plan.seed = options.seed;
  spec.plan.epoch = static_cast<std::uint64_t>(epoch);
  spec.batch_size = static_cast<int>(batch_size);
  spec.drop_last = true;
  spec.graph.threads = static_cast<int>(options.pipeline.threads);
  spec.graph.max_batches_in_flight = static_cast<int>(options.pipeline.max_batches_in_flight);
  return spec;
}

EpochReport train_epoch(const stages::EpochSpec& spec, const Compute& compute, const TrainStep& step,
                        Progress& progress, std::int64_t epoch, const EpochResume* resume, DataParallel* parallel) {
  return train_joint_epoch(
      {&spec}, compute,
      [&](const std::vector<BatchTensors>& parts) { return step(parts.front().images, parts.front().labels); },
      progress, epoch, resume, parallel);
}

EpochReport train_joint_epoch(const std::vector<const stages::EpochSpec*>& parts, const Compute& compute,
                              const JointTrainStep& step, Progress& progress, std::int64_t epoch,
                              const EpochResume* resume, DataParallel* parallel) {
  EpochReport report;
  EpochTotals totals = resume != nullptr ? resume->start : EpochTotals{};
  const auto skipped = static_cast<std::uint64_t>(totals.steps);
  std::uint64_t trained_samples = 0;  // this session's, for the throughput figure
  const auto started = std::chrono::steady_clock::now();

  std::vector<BatchTensors> tensors(parts.size());
  const auto stats = stages::run_joint_epoch(parts, [&](const std::vector<const stages::Batch*>& batches) {
    const stages::Batch& batch = *batches.front();
    if (batch.seq < skipped) return;  // trained before the interruption
    for (std::size_t p = 0; p < batches.size(); ++p)
      tensors[p] = {compute.images(*batches[p]), compute.labels(*batches[p])};
    StepResult result;
    try {
      result = step(tensors);
    } catch (const NonFiniteGradient& found) {
      std::ostringstream msg;
      msg << "training diverged: " << found.what() << " at epoch " << epoch + 1 << ", step " << totals.steps + 1
          << ", with a loss of " << found.loss();
      throw TrainingDiverged(msg.str());
    }
    std::fill(tensors.begin(), tensors.end(), BatchTensors{});  // the batch buffers go back to their pools
    ++totals.steps;
    if (!std::isfinite(result.loss)) {
      std::ostringstream msg;
      msg << "training diverged: loss is " << result.loss << " at epoch " << epoch + 1 << ", step " << totals.steps;
      throw TrainingDiverged(msg.str());
    }
    totals.loss_sum += result.loss * static_cast<double>(batch.count);
    if (result.correct >= 0) {
      totals.correct += result.correct;
      totals.counted += result.count;
    }
    for (const auto& [name, value] : result.extra) totals.extra_sum[name] += value;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    totals.samples += static_cast<std::uint64_t>(batch.count);
    trained_samples += static_cast<std::uint64_t>(batch.count);
    progress.step(epoch, totals.steps, result.loss, static_cast<double>(trained_samples) / std::max(elapsed, 1e-9));
    if (resume != nullptr && resume->after_step) resume->after_step(totals);
  });

  if (parallel != nullptr && parallel->distributed()) {
    totals = sum_over_ranks(totals, resume != nullptr ? resume->start : EpochTotals{}, *parallel);
    trained_samples = static_cast<std::uint64_t>(parallel->sum(static_cast<std::int64_t>(trained_samples)));
  }
  const double ranks = parallel != nullptr ? parallel->world_size() : 1;
  report.samples = totals.samples;
  report.seconds = stats.seconds;
  report.wait_seconds = stats.wait_seconds;
  report.loss = report.samples > 0 ? totals.loss_sum / static_cast<double>(report.samples) : 0.0;
  report.accuracy =
      totals.counted > 0 ? static_cast<double>(totals.correct) / static_cast<double>(totals.counted) : -1.0;
  report.images_per_second = static_cast<double>(trained_samples) / std::max(stats.seconds, 1e-9);
  for (const auto& [name, sum] : totals.extra_sum)
    report.extra.emplace_back(name, sum / (static_cast<double>(totals.steps) * ranks));
  return report;
}

EpochTotals sum_over_ranks(const EpochTotals& running, const EpochTotals& start, DataParallel& parallel) {
  auto start_extra = [&](const std::string& name) {
    const auto found = start.extra_sum.find(name);
    return found != start.extra_sum.end() ? found->second : 0.0;
  };
  EpochTotals session = running;
  session.samples -= start.samples;
  session.loss_sum -= start.loss_sum;
  session.correct -= start.correct;
  session.counted -= start.counted;
  for (auto& [name, value] : session.extra_sum) value -= start_extra(name);
  parallel.sum(session);
  EpochTotals global = running;
  global.samples = start.samples + session.samples;
  global.loss_sum = start.loss_sum + session.loss_sum;
  global.correct = start.correct + session.correct;
  global.counted = start.counted + session.counted;
  for (auto& [name, value] : global.extra_sum) value = start_extra(name) + session.extra_sum[name];
  return global;
}

LabelledTensors decode_subset(const data::ImageSet& set, const std::vector<std::uint32_t>& indices) {
  const auto& s = set.shape;
  const auto n = static_cast<std::int64_t>(indices.size());
  LabelledTensors out;
  out.images = torch::empty({n, s.channels, s.height, s.width}, torch::kFloat);
  out.labels = torch::empty({n}, torch::kLong);
  float* pixels = out.images.data_ptr<float>();
  std::int64_t* labels = out.labels.data_ptr<std::int64_t>();
  std::vector<std::uint8_t> scratch(set.streamed() ? s.numel() : 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto idx = indices[static_cast<std::size_t>(i)];
    ops::to_float(set.image(idx, scratch.data()), {pixels + static_cast<std::size_t>(i) * s.numel(), s});
    labels[i] = set.labels[idx];
  }
  return out;
}

LabelledTensors decode_all(const data::ImageSet& set) {
  std::vector<std::uint32_t> all(set.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint32_t>(i);
  return decode_subset(set, all);
}

double evaluate_accuracy(Backbone& backbone, Head& head, const LabelledTensors& data, const Compute& compute,
                         std::int64_t batch_size, DataParallel* parallel) {
  if (data.size() == 0) return 0.0;
  const bool backbone_training = backbone.is_training();
  const bool head_training = head.is_training();
  backbone.eval();
  head.eval();
  torch::NoGradGuard no_grad;
  std::int64_t correct = 0;
  const std::int64_t ranks = parallel != nullptr ? parallel->world_size() : 1;
  const std::int64_t first = parallel != nullptr ? parallel->rank() : 0;
  for (std::int64_t start = first * batch_size; start < data.size(); start += ranks * batch_size) {
    const std::int64_t end = std::min(start + batch_size, data.size());
    const auto images = compute.place(data.images.slice(0, start, end));
    const auto logits = compute.autocast_forward([&] { return head.forward(backbone.forward(images)); });
    correct += logits.argmax(1).cpu().eq(data.labels.slice(0, start, end)).sum().item<std::int64_t>();
  }
  backbone.train(backbone_training);
  head.train(head_training);
  if (parallel != nullptr) correct = parallel->sum(correct);
  return static_cast<double>(correct) / static_cast<double>(data.size());
}

}  // namespace pretext
