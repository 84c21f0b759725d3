#include "pipeline/train/job.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "common/atomic_file.hpp"
#include "common/errors.hpp"
#include "data/data_source.hpp"
#include "pipeline/plugin_host/plugin_guards.hpp"
#include "pipeline/plugin_host/view_contract.hpp"
#include "pipeline/report/html_report.hpp"
#include "pipeline/train/epoch_record.hpp"
#include "pipeline/train/evaluation.hpp"
#include "pipeline/train/sample.hpp"
#include "pipeline/train/saved_run.hpp"
#include "pipeline/train/trainer.hpp"
#include "pipeline/train/training_context.hpp"
#include "pipeline/train/transfer.hpp"

namespace pretext {
namespace {

using Clock = std::chrono::steady_clock;

std::filesystem::path default_run_directory(const std::filesystem::path& config) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::ostringstream name;
  name << config.stem().string() << '-' << std::put_time(&local, "%Y%m%d-%H%M%S");
  return std::filesystem::path("runs") / name.str();
}

data::ImageSet load_split_file(const data::DataOptions& d, const std::string& path, const std::string& labels,
                               std::vector<std::string>* classes = nullptr) {
  data::LoadCallbacks callbacks;
  callbacks.report_skip = [](const std::string& message) { std::cerr << "pretext: skipped " << message << '\n'; };
  data::LoadedData loaded = data::load_data_source(d, path, labels, callbacks);
  if (loaded.skipped > 0) std::cerr << "pretext: skipped " << loaded.skipped << " bad images in " << path << '\n';
  if (classes != nullptr) *classes = std::move(loaded.classes);
  return std::move(loaded.images);
}

/// What a pretext epoch adds to metrics.csv, and its progress line.
EpochRecord pretext_epoch_record(const EpochReport& last, std::int64_t epoch, std::int64_t epochs) {
  const double wait_fraction = last.wait_seconds / std::max(last.seconds, 1e-9);
  EpochRecord record("pretext", epoch, epochs);
  record.add("loss", last.loss, "loss " + format_fixed(last.loss, 4));
  if (last.accuracy >= 0) record.add("accuracy", last.accuracy, "accuracy " + format_fixed(last.accuracy, 4));
  record.add("images_per_second", last.images_per_second, format_fixed(last.images_per_second, 0) + " img/s");
  record.add("data_wait_fraction", wait_fraction, "data wait " + format_percent(wait_fraction) + "%");
  for (const auto& [name, value] : last.extra) record.add(name, value);
  return record;
}

}  // namespace

Job::Job(const JobRequest& request)
    : assembled_(request.config, request.overrides),
      out_(request.out.empty() ? default_run_directory(request.config) : request.out),
      stop_(request.stop),
      resume_(request.resume),
      force_(request.force),
      compute_(Compute::from(options().trainer)) {
  if (!request.load_data) {
    parallel_ = std::make_shared<DataParallel>(distributed::DistributedEnvironment{}, std::chrono::seconds(1), 1);
    return;
  }
  join_ranks();
  load_data();
}

Job::~Job() = default;

void Job::join_ranks() {
  const auto environment = distributed::read_environment();
  const DistributedOptions& d = options().distributed;
  parallel_ = std::make_shared<DataParallel>(environment, std::chrono::seconds(d.timeout_seconds),
                                             d.bucket_mib << 20U);
  parallel_->check_same_config(resolved_config());
  // The default directory is named by the time: rank 0's names the job's.
  out_ = parallel_->gather("run directory", out_.string())[0];
  // The batch sizes are global: each rank trains on its equal part.
  (void)parallel_->local_batch(options().pretext.batch_size,
                               assembled_.where("pretext.batch_size") + ": pretext.batch_size");
  (void)parallel_->local_batch(options().transfer.batch_size,
                               assembled_.where("transfer.batch_size") + ": transfer.batch_size");
}

void Job::load_data() {
  const data::DataOptions& d = options().data;
  train_ = load_split_file(d, d.path, d.labels_path, &class_names_);
  if (!d.test_path.empty()) test_ = load_split_file(d, d.test_path, d.test_labels_path);
  if (d.pad_to > 0) {
    data::pad_to(train_, static_cast<int>(d.pad_to));
    if (!d.test_path.empty()) data::pad_to(test_, static_cast<int>(d.pad_to));
  }
  if (!d.test_path.empty() && test_.shape != train_.shape)
    throw InputError("data.test_path: images in " + test_.origin + " have another shape than those in " +
                     train_.origin);
  classes_ = 1 + *std::max_element(train_.labels.begin(), train_.labels.end());
  if (classes_ < 1)
    throw InputError(train_.origin + ": expected labelled images (transfer needs labels), found none labelled" +
                     (d.source == "folder" ? " (data.labelled_layout = false)" : ""));
  if (!d.test_path.empty()) data::check_labels(test_, classes_);
  split_ =
      d.labelled_draw == "per_class"
          ? data::split_indices_per_class(train_.labels, classes_, d.labelled, d.validation, d.unlabelled,
                                          options().seed, train_.origin)
          : data::split_indices(train_.size(), d.labelled, d.validation, d.unlabelled, options().seed, train_.origin);
  if (split_.unlabelled.empty() && options().pretext.epochs > 0)
    throw InputError("no unlabelled images left in " + train_.origin + " for the pretext task");
  // Each rank trains on its equal share: a set smaller than that leaves a rank nothing.
  const auto ranks = static_cast<std::size_t>(parallel_->world_size());
  if (split_.labelled.size() < ranks)
    throw ConfigError(assembled_.where("data.labelled") + ": data.labelled = " + std::to_string(d.labelled) +
                      " images cannot be shared by " + std::to_string(ranks) + " ranks: expected at least one each");
  if (options().pretext.epochs > 0 && split_.unlabelled.size() < ranks)
    throw InputError(train_.origin + ": " + std::to_string(split_.unlabelled.size()) +
                     " unlabelled images cannot be shared by " + std::to_string(ranks) +
                     " ranks: expected at least one each");
  for (const auto& mode : options().transfer.modes)
    if (split_.unlabelled.empty() && transfer_mode(mode).uses_unlabelled())
      throw ConfigError(assembled_.where("transfer.modes") + ": transfer.modes: the semi-supervised mode '" + mode +
                        "' trains on unlabelled images, but " + train_.origin + " has none left after data.labelled (" +
                        std::to_string(d.labelled) + ") and data.validation (" + std::to_string(d.validation) +
                        "); expected a data set with images to spare, or a supervised mode");
}

toml::table Job::run(Progress& progress) {
  try {
    return run_phases(progress);
  } catch (const RunInterrupted&) {
    throw;  // every rank stops at the same step, together
  } catch (const std::exception& e) {
    // A rank that stops alone says why, so that the others name the cause.
    parallel_->report_failure(e.what());
    throw;
  }
}

toml::table Job::run_phases(Progress& progress) {
  const auto started = Clock::now();
  torch::set_num_threads(static_cast<int>(options().threads));
  if (!parallel_->writes()) progress.mute();  // rank 0 speaks for the job
  std::optional<artefacts::RunDirectory> created;
  parallel_->on_rank0("preparing the run directory", [&] {
    prepare_run_directory(progress);
    created.emplace(out_);
    if (!resume_) created->write_resolved_config(resolved_config());  // on resume: the config this Job was read from
    write_network_shape(*created, NetworkShape{train_.shape, classes_});  // export and embed rebuild the networks
    if (!class_names_.empty()) write_file_atomically(created->classes(), data::classes_toml(class_names_));
  });
  artefacts::RunDirectory dir = created ? std::move(*created)
                                        : artefacts::RunDirectory(out_, artefacts::RunDirectory::ReadOnly{});
  // Checkpoints record it; only rank 0 writes them, and on resume every rank reads the same file.
  if (dir.writes() || resume_) config_hash_ = config_hash(read_text_file(dir.config()));

  toml::table summary;
  summary.insert("seed", static_cast<std::int64_t>(options().seed));
  summary.insert("threads", options().threads);
  summary.insert("world_size", static_cast<std::int64_t>(parallel_->world_size()));
  summary.insert("run_directory", out_.string());
  progress.line("pretext: run directory " + out_.string() + " (" + std::to_string(split_.unlabelled.size()) +
                " unlabelled, " + std::to_string(split_.labelled.size()) + " labelled, " +
                std::to_string(split_.validation.size()) + " validation, " + std::to_string(test_.size()) +
                " test images)");

  const auto pretrained = run_pretext(dir, progress, summary);
  pretext_traffic_ = parallel_->traffic();
  stop_if_requested("after the pretext phase");
  summary.insert("transfer", toml::table{});
  const EvaluationData evaluation{decode_subset(train_, split_.validation),
                                  options().data.test_path.empty() ? LabelledTensors{} : decode_all(test_)};
  run_feature_evaluations(*pretrained, evaluation, dir, progress, summary);
  for (const auto& mode : options().transfer.modes) {
    stop_if_requested("before transfer mode '" + mode + "'");
    run_transfer(mode, pretrained, evaluation, dir, progress, summary);
  }

  const double wall = std::chrono::duration<double>(Clock::now() - started).count();
  summary.insert("wall_seconds", wall);
  if (parallel_->distributed()) {
    // Rank 0's view of the pretext phase's gradient averaging (this
    // session's), for the scaling model in docs/distributed.md.
    const DataParallel::Traffic& traffic = pretext_traffic_;
    const double calls = static_cast<double>(std::max<std::int64_t>(1, traffic.calls));
    toml::table section;
    section.insert("world_size", static_cast<std::int64_t>(parallel_->world_size()));
    section.insert("pretext_allreduce_calls", traffic.calls);
    section.insert("pretext_allreduce_seconds", traffic.seconds);
    section.insert("pretext_allreduce_ms_per_call", 1000.0 * traffic.seconds / calls);
    section.insert("pretext_gradient_bytes_per_call", static_cast<double>(traffic.bytes) / calls);
    summary.insert("distributed", std::move(section));
  }
  summary.insert("data_wait_fraction", graph_seconds_ > 0 ? wait_seconds_ / graph_seconds_ : 0.0);
  parallel_->on_rank0("writing the summary", [&] {
    dir.flush_metrics();
    dir.write_summary(summary);
    try {
      report::write_run_report(dir.path());  // report.html and charts/*.svg, from the files just written
    } catch (const std::exception& e) {
      // The results are safely on disk; a report can be made later with `pretext report`.
      progress.line("pretext: warning: could not write the report: " + std::string(e.what()));
    }
  });  // the other ranks end once the summary is written
  progress.line("done in " + format_fixed(wall, 1) + " s; trainer waited for data " +
                format_percent(graph_seconds_ > 0 ? wait_seconds_ / graph_seconds_ : 0.0) +
                "% of the time; summary in " + dir.summary_json().string());
  return summary;
}

std::shared_ptr<Backbone> Job::run_pretext(artefacts::RunDirectory& dir, Progress& progress, toml::table& summary) {
  PretextTask& task = *assembled_.task();
  const std::string& label = assembled_.task_label();
  torch::manual_seed(phase_seed(options().seed, "pretext"));
  // Ranks other than 0 leave the run directory to rank 0; a task writing
  // artefacts of its own writes them into a scratch directory instead.
  const RankScratch scratch(*parallel_, out_);
  HostTrainingContext context(
      compute_, ModelInput{train_.shape}, assembled_.model(), assembled_.pretext_loss(), options().pretext.optimizer,
      scratch.path().string(), [this](const std::string& name) { return assembled_.loss_with_defaults(name); },
      options().trainer.check_gradients, parallel_->distributed() ? parallel_ : nullptr);
  guard_plugin_call(label, "PretextTask::setup", [&] { task.setup(context); });
  const auto& p = options().pretext;
  const bool cosine = p.lr_schedule == "cosine";
  if (cosine && context.optimizers_made() == 0)
    throw InputError("pretext.lr_schedule = \"cosine\": " + label +
                     " made no optimiser with TrainingContext::make_optimizer (it makes its own), so the host "
                     "cannot schedule its learning rate; use \"constant\" (the task's own options may offer one)");
  pretext_context_ = &context;
  // Faults in make_views name the task; its views are checked (view_contract.hpp).
  const GuardedViewMaker task_views(
      task, label, options().trainer.check_views == "basic" ? ViewChecks::basic : ViewChecks::guarded);
  if (!p.load.empty()) {
    if (!std::filesystem::is_regular_file(p.load))
      throw InputError("pretext.load: " + p.load + " is not a file (expected a pretext.pt from an earlier run)");
    load_pretext_state(task, p.load, compute_.device);
    progress.line("pretext: started from " + p.load);
  }
  start_replicas(task);
  const std::int64_t batch = parallel_->local_batch(p.batch_size, "pretext.batch_size");
  const std::int64_t samples =
      static_cast<std::int64_t>(split_.unlabelled.size() / static_cast<std::size_t>(parallel_->world_size())) *
      task.views_per_image();
  const std::int64_t steps_per_epoch = samples / batch;
  PretextProgress state = restore_pretext_progress(dir, progress);
  progress.begin_phase("pretext " + p.plugin, p.epochs, steps_per_epoch);

  EpochReport& last = state.last;
  for (std::int64_t epoch = state.epoch; epoch < p.epochs; ++epoch) {
    auto spec = training_epoch(train_, split_.unlabelled, options(), epoch, batch, parallel_.get());
    spec.views = &task_views;
    spec.stages = assembled_.pretext_stages();
    EpochResume resume;
    resume.start = state.totals;
    resume.after_step = [&](const EpochTotals& totals) {
      after_pretext_step(state, totals, resume.start, epoch, steps_per_epoch, dir);
    };
    std::int64_t step = resume.start.steps;  // of this epoch, for fault messages
    try {
      last = train_epoch(
          spec, compute_,
          [&](const torch::Tensor& x, const torch::Tensor& y) {
            ++step;
            if (cosine)
              context.set_learning_rate_factor(
                  cosine_decay(epoch * steps_per_epoch + step - 1, p.epochs * steps_per_epoch));
            StepResult result;
            try {
              result = guard_plugin_call(label, "PretextTask::train_step", [&] { return task.train_step(x, y); });
            } catch (const PluginFault&) {
              rethrow_with_context(" (pretext epoch " + std::to_string(epoch + 1) + ", step " +
                                   std::to_string(step) + ")");
            }
            context.gradient_check().throw_if_found(result.loss);  // before any checkpoint of it
            return result;
          },
          progress, epoch, &resume, parallel_.get());
    } catch (const TrainingDiverged& diverged) {
      throw TrainingDiverged(std::string("pretext ") + diverged.what() +
                             (epoch > 0 ? "; the last good checkpoint, from epoch " + std::to_string(epoch) +
                                              ", is kept in " + dir.pretext_state().string()
                                        : "; no checkpoint had been written yet"));
    }
    end_epoch_replicas(task, context);
    guard_plugin_call(label, "PretextTask::end_epoch", [&] { task.end_epoch(static_cast<int>(epoch)); });
    if (auto* sampler = dynamic_cast<Sampler*>(&task))
      parallel_->on_rank0("writing " + dir.samples(epoch + 1).string(),
                          [&] { write_sample_grid(*sampler, kSampleGridCount, dir.samples(epoch + 1)); });
    state.seconds += last.seconds;
    wait_seconds_ += last.wait_seconds;
    graph_seconds_ += last.seconds;

    const EpochRecord record = pretext_epoch_record(last, epoch + 1, p.epochs);
    record.record(dir);
    save_pretext_checkpoint(dir);  // every epoch: a later divergence keeps this one
    state.epoch = epoch + 1;
    state.step = 0;
    state.totals = EpochTotals{};
    write_step_checkpoint(state, dir);  // after end_epoch and the samples: the state the next epoch starts from
    dir.flush_metrics();
    record.print(progress);
  }
  if (p.epochs == 0) save_pretext_checkpoint(dir);
  pretext_context_ = nullptr;
  parallel_->forget_buckets();

  toml::table section;
  section.insert("final_loss", last.loss);
  if (last.accuracy >= 0) section.insert("final_accuracy", last.accuracy);
  section.insert("images_per_second", last.images_per_second);
  section.insert("seconds", state.seconds);
  summary.insert("pretext", std::move(section));
  return task.backbone();
}

void Job::run_transfer(const std::string& mode, const std::shared_ptr<Backbone>& pretrained,
                       const EvaluationData& evaluation, artefacts::RunDirectory& dir, Progress& progress,
                       toml::table& summary) {
  torch::manual_seed(phase_seed(options().seed, "transfer." + mode));
  TransferInputs in;
  in.mode = mode;
  in.options = &options();
  in.model = assembled_.model().get();
  in.loss = assembled_.transfer_loss().get();
  in.pretrained = pretrained.get();
  in.stages = &assembled_.transfer_stages();
  in.strong_stages = &assembled_.strong_stages();
  in.train = &train_;
  in.validation = &evaluation.validation;
  in.test = options().data.test_path.empty() ? nullptr : &evaluation.test;
  in.split = &split_;
  in.compute = compute_;
  in.classes = classes_;
  in.parallel = parallel_.get();
  in.stop_if_requested = [this](const std::string& where) { stop_if_requested(where); };
  const TransferResult r = pretext::run_transfer(in, dir, progress);
  parallel_->forget_buckets();
  parallel_->on_rank0("writing " + dir.transfer_networks(mode).string(),
                      [&] { save_transfer_networks(dir.transfer_networks(mode), *r.backbone, *r.head); });
  wait_seconds_ += r.wait_seconds;
  graph_seconds_ += r.graph_seconds;

  toml::table result;
  result.insert("val_accuracy", r.val_accuracy);
  result.insert("best_val_accuracy", r.best_val_accuracy);
  result.insert("best_epoch", r.best_epoch);
  if (r.test_accuracy) result.insert("test_accuracy", *r.test_accuracy);
  result.insert("seconds", r.seconds);
  summary["transfer"].as_table()->insert(mode, std::move(result));
}

void Job::run_feature_evaluations(Backbone& pretrained, const EvaluationData& evaluation, artefacts::RunDirectory& dir,
                                  Progress& progress, toml::table& summary) {
  const EvaluationOptions& e = options().evaluation;
  if (!e.knn && !e.linear_probe) return;
  const LabelledTensors labelled = decode_subset(train_, split_.labelled);  // no augmentation
  EvaluationInputs in;
  in.options = &e;
  in.compute = compute_;
  in.batch_size = options().trainer.eval_batch_size;
  in.labelled = &labelled;
  in.validation = &evaluation.validation;
  in.test = options().data.test_path.empty() ? nullptr : &evaluation.test;
  in.classes = classes_;
  toml::table section;
  run_evaluations(pretrained, in, "", dir, progress, section);
  if (e.random_init) {
    torch::manual_seed(phase_seed(options().seed, "random-init"));
    const auto fresh = assembled_.model()->make_backbone(ModelInput{train_.shape});
    compute_.place(*fresh);
    run_evaluations(*fresh, in, "_random_init", dir, progress, section);
  }
  dir.flush_metrics();
  summary.insert("evaluation", std::move(section));
}

}  // namespace pretext
