#include "pipeline/train/job.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "pipeline/errors.hpp"
#include "pipeline/plugin_host/plugin_guards.hpp"
#include "pipeline/run/data_source.hpp"
#include "pipeline/report/html_report.hpp"
#include "pipeline/run/png_grid.hpp"
#include "pipeline/train/evaluation.hpp"
#include "pipeline/train/saved_run.hpp"
#include "pipeline/train/trainer.hpp"
#include "pipeline/train/transfer.hpp"
#include "pipeline/train/training_context.hpp"
#include "stages/builtin_stages.hpp"

namespace pretext {
namespace {

using Clock = std::chrono::steady_clock;

// Distinct torch seeds per phase, so each mode's initialisation does not
// depend on which modes ran before it.
std::uint64_t phase_seed(std::uint64_t seed, const std::string& phase) {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : phase) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return SampleRng::mix(seed ^ h) >> 1;
}

std::filesystem::path default_run_directory(const std::filesystem::path& config) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::ostringstream name;
  name << config.stem().string() << '-' << std::put_time(&local, "%Y%m%d-%H%M%S");
  return std::filesystem::path("runs") / name.str();
}

data::ImageSet load_split_file(const DataOptions& d, const std::string& path, const std::string& labels,
                               std::vector<std::string>* classes = nullptr) {
  LoadCallbacks callbacks;
  callbacks.report_skip = [](const std::string& message) { std::cerr << "pretext: skipped " << message << '\n'; };
  LoadedData loaded = load_data_source(d, path, labels, callbacks);
  if (loaded.skipped > 0) std::cerr << "pretext: skipped " << loaded.skipped << " bad images in " << path << '\n';
  if (classes != nullptr) *classes = std::move(loaded.classes);
  return std::move(loaded.images);
}

constexpr std::int64_t kSampleGridCount = 64;  // an 8 x 8 grid

/// A grid of generated images, samples-epoch-N.png, for people to judge.
void write_sample_grid(Sampler& sampler, std::int64_t count, const std::filesystem::path& png) {
  const torch::Tensor images = sampler.sample(count).to(torch::kCPU, torch::kFloat).contiguous();
  const ImageShape shape{static_cast<int>(images.size(1)), static_cast<int>(images.size(2)),
                         static_cast<int>(images.size(3))};
  std::vector<float> pixels(images.data_ptr<float>(), images.data_ptr<float>() + images.numel());
  write_png_grid(png, pixels, images.size(0), shape, 8);
}

void write_samples(Sampler& sampler, const RunDirectory& dir, std::int64_t epoch) {
  write_sample_grid(sampler, kSampleGridCount, dir.file("samples-epoch-" + std::to_string(epoch) + ".png"));
}

}  // namespace

Job::Job(const JobRequest& request) : document_(config::Document::load(request.config)) {
  for (const auto& assignment : request.overrides) document_.apply_override(assignment);
  RunSections sections(document_);
  options_ = read_run_options(sections);
  compute_ = Compute::from(options_.trainer);
  load_plugins(sections);
  sections.finish();
  out_ = request.out.empty() ? default_run_directory(request.config) : request.out;
  stop_ = request.stop;
  resume_ = request.resume;
  force_ = request.force;
  if (request.load_data) load_data();
}

Job::~Job() = default;

void Job::load_plugins(RunSections& sections) {
  host_.set_search_path({options_.plugin_path.begin(), options_.plugin_path.end()});
  for (auto& [name, maker] : stages::builtin_stages()) host_.builtins().add_stage(name, maker);

  model_ = host_.make_model(host_.resolve(ComponentKind::model, options_.model_plugin), sections.model);
  const std::string task_name = host_.resolve(ComponentKind::pretext, options_.pretext.plugin);
  task_ = host_.make_pretext(task_name, sections.pretext);
  pretext_plugin_ = plugin_label(ComponentKind::pretext, task_name, host_.origin(ComponentKind::pretext, task_name));
  pretext_loss_ =
      host_.make_loss(host_.resolve(ComponentKind::loss, options_.pretext_loss_plugin), sections.pretext_loss);
  transfer_loss_ =
      host_.make_loss(host_.resolve(ComponentKind::loss, options_.transfer_loss_plugin), sections.transfer_loss);

  auto make_stages = [&](std::vector<config::Section>& specs, std::vector<std::shared_ptr<const Stage>>& out) {
    for (auto& spec : specs) {
      const std::string name = spec.string("name", "", "stage name, e.g. color_jitter");
      if (name.empty()) spec.fail("name", "the name of a stage");
      out.push_back(host_.make_stage(host_.resolve(ComponentKind::stage, name), spec));
    }
  };
  make_stages(sections.pretext_stages, pretext_stages_);
  make_stages(sections.transfer_stages, transfer_stages_);
}

void Job::load_data() {
  const DataOptions& d = options_.data;
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
  split_ = data::split_indices(train_.size(), d.labelled, d.validation, d.unlabelled, options_.seed, train_.origin);
  if (split_.unlabelled.empty() && options_.pretext.epochs > 0)
    throw InputError("no unlabelled images left in " + train_.origin + " for the pretext task");
}

toml::table Job::run(Progress& progress) {
  const auto started = Clock::now();
  torch::set_num_threads(static_cast<int>(options_.threads));
  prepare_run_directory(progress);
  RunDirectory dir(out_);
  if (!resume_) dir.write_resolved_config(resolved_config());  // on resume it is the config this Job was read from
  config_hash_ = config_hash(read_text_file(dir.file("config.toml")));
  write_network_shape(dir, NetworkShape{train_.shape, classes_});  // export and embed rebuild the networks from it
  if (!class_names_.empty()) write_file_atomically(dir.file("classes.toml"), classes_toml(class_names_));

  toml::table summary;
  summary.insert("seed", static_cast<std::int64_t>(options_.seed));
  summary.insert("threads", options_.threads);
  summary.insert("run_directory", out_.string());
  progress.line("pretext: run directory " + out_.string() + " (" + std::to_string(split_.unlabelled.size()) +
                " unlabelled, " + std::to_string(split_.labelled.size()) + " labelled, " +
                std::to_string(split_.validation.size()) + " validation, " + std::to_string(test_.size()) +
                " test images)");

  const auto pretrained = run_pretext(dir, progress, summary);
  stop_if_requested("after the pretext phase");
  summary.insert("transfer", toml::table{});
  const EvaluationData evaluation{decode_subset(train_, split_.validation),
                                  options_.data.test_path.empty() ? LabelledTensors{} : decode_all(test_)};
  run_feature_evaluations(*pretrained, evaluation, dir, progress, summary);
  for (const auto& mode : options_.transfer.modes) {
    stop_if_requested("before transfer mode '" + mode + "'");
    run_transfer(mode, pretrained, evaluation, dir, progress, summary);
  }

  const double wall = std::chrono::duration<double>(Clock::now() - started).count();
  summary.insert("wall_seconds", wall);
  summary.insert("data_wait_fraction", graph_seconds_ > 0 ? wait_seconds_ / graph_seconds_ : 0.0);
  dir.flush_metrics();
  dir.write_summary(summary);
  try {
    report::write_run_report(dir.path());  // report.html and charts/*.svg, from the files just written
  } catch (const std::exception& e) {
    // The results are safely on disk; a report can be made later with `pretext report`.
    progress.line("pretext: warning: could not write the report: " + std::string(e.what()));
  }
  progress.line("done in " + format_fixed(wall, 1) + " s; trainer waited for data " +
                format_percent(graph_seconds_ > 0 ? wait_seconds_ / graph_seconds_ : 0.0) + " of the time; summary in " +
                dir.file("summary.json").string());
  return summary;
}

std::shared_ptr<Backbone> Job::run_pretext(RunDirectory& dir, Progress& progress, toml::table& summary) {
  torch::manual_seed(phase_seed(options_.seed, "pretext"));
  HostTrainingContext context(compute_, ModelInput{train_.shape}, model_, pretext_loss_, options_.pretext.optimizer,
                              out_.string(), [this](const std::string& name) { return loss_with_defaults(name); },
                              options_.trainer.check_gradients);
  guard_plugin_call(pretext_plugin_, "PretextTask::setup", [&] { task_->setup(context); });
  const GuardedViewMaker task_views(*task_, pretext_plugin_);  // faults in make_views name the task
  const auto& p = options_.pretext;
  if (!p.load.empty()) {
    if (!std::filesystem::is_regular_file(p.load))
      throw InputError("pretext.load: " + p.load + " is not a file (expected a pretext.pt from an earlier run)");
    torch::serialize::InputArchive archive;
    archive.load_from(p.load, compute_.device);
    task_->load(archive);
    progress.line("pretext: started from " + p.load);
  }
  const std::int64_t samples = static_cast<std::int64_t>(split_.unlabelled.size()) * task_->views_per_image();
  const std::int64_t steps_per_epoch = samples / p.batch_size;
  PretextProgress state;
  if (resume_) {
    if (auto restored = restore_newest_checkpoint(progress)) {
      state = std::move(*restored);
      dir.restore_metric_rows(state.metric_rows);
      wait_seconds_ = state.wait_seconds;
      graph_seconds_ = state.graph_seconds;
    }
  }
  state.config_hash = config_hash_;
  progress.begin_phase("pretext " + p.plugin, p.epochs, steps_per_epoch);

  const auto checkpoint = [&] {
    state.metric_rows = dir.metric_rows();
    state.wait_seconds = wait_seconds_;
    state.graph_seconds = graph_seconds_;
    return write_checkpoint(out_, *task_, state, options_.checkpoint.keep);
  };
  toml::table section;
  EpochReport& last = state.last;
  for (std::int64_t epoch = state.epoch; epoch < p.epochs; ++epoch) {
    auto spec = training_epoch(train_, split_.unlabelled, options_, epoch, p.batch_size);
    spec.views = &task_views;
    spec.stages = pretext_stages_;
    EpochResume resume;
    resume.start = state.totals;
    resume.after_step = [&](const EpochTotals& totals) {
      state.step = totals.steps;
      state.totals = totals;
      ++state.global_step;
      const int signal = stop_ != nullptr ? stop_->requested(state.global_step) : 0;
      const std::int64_t every = options_.checkpoint.every_steps;
      // A step checkpoint at an epoch's last step would be replaced by the epoch's own one at once.
      const bool due = every > 0 && state.global_step % every == 0 && totals.steps < steps_per_epoch;
      if (signal == 0 && !due) return;
      const auto file = checkpoint();
      if (signal != 0)
        throw RunInterrupted("interrupted at epoch " + std::to_string(epoch + 1) + " step " +
                                 std::to_string(totals.steps) + "; checkpoint " + file.string() +
                                 "; continue with: pretext resume " + out_.string(),
                             signal);
    };
    try {
      last = train_epoch(spec, compute_,
                         [&](const torch::Tensor& x, const torch::Tensor& y) {
                           const StepResult result = guard_plugin_call(pretext_plugin_, "PretextTask::train_step",
                                                                       [&] { return task_->train_step(x, y); });
                           context.gradient_check().throw_if_found(result.loss);  // before any checkpoint of it
                           return result;
                         },
                         progress, epoch, &resume);
    } catch (const TrainingDiverged& diverged) {
      throw TrainingDiverged(std::string("pretext ") + diverged.what() +
                             (epoch > 0 ? "; the last good checkpoint, from epoch " + std::to_string(epoch) +
                                              ", is kept in " + dir.file("pretext.pt").string()
                                        : "; no checkpoint had been written yet"));
    }
    guard_plugin_call(pretext_plugin_, "PretextTask::end_epoch", [&] { task_->end_epoch(static_cast<int>(epoch)); });
    if (auto* sampler = dynamic_cast<Sampler*>(task_.get())) write_samples(*sampler, dir, epoch + 1);
    state.seconds += last.seconds;
    wait_seconds_ += last.wait_seconds;
    graph_seconds_ += last.seconds;
    const int e = static_cast<int>(epoch) + 1;
    dir.add_metric("pretext", e, "loss", last.loss);
    if (last.accuracy >= 0) dir.add_metric("pretext", e, "accuracy", last.accuracy);
    dir.add_metric("pretext", e, "images_per_second", last.images_per_second);
    dir.add_metric("pretext", e, "data_wait_fraction", last.wait_seconds / std::max(last.seconds, 1e-9));
    for (const auto& [name, value] : last.extra) dir.add_metric("pretext", e, name, value);
    save_pretext_checkpoint(dir);  // every epoch: a later divergence keeps this one
    state.epoch = epoch + 1;
    state.step = 0;
    state.totals = EpochTotals{};
    checkpoint();  // after end_epoch and the samples: the generator state the next epoch starts from
    dir.flush_metrics();
    progress.line("pretext epoch " + std::to_string(e) + "/" + std::to_string(p.epochs) + ": loss " +
                  format_fixed(last.loss, 4) + (last.accuracy >= 0 ? ", accuracy " + format_fixed(last.accuracy, 4) : "") + ", " +
                  format_fixed(last.images_per_second, 0) + " img/s, data wait " +
                  format_percent(last.wait_seconds / std::max(last.seconds, 1e-9)));
  }

  if (p.epochs == 0) save_pretext_checkpoint(dir);
  const double seconds = state.seconds;

  section.insert("final_loss", last.loss);
  if (last.accuracy >= 0) section.insert("final_accuracy", last.accuracy);
  section.insert("images_per_second", last.images_per_second);
  section.insert("seconds", seconds);
  summary.insert("pretext", std::move(section));
  return task_->backbone();
}

std::shared_ptr<Loss> Job::loss_with_defaults(const std::string& name) {
  auto defaults = config::Document::parse("", "(defaults of loss '" + name + "')");
  config::Section options(defaults, "");
  return host_.make_loss(host_.resolve(ComponentKind::loss, name), options);
}

void Job::save_pretext_checkpoint(const RunDirectory& dir) const {
  torch::serialize::OutputArchive task_archive;
  task_->save(task_archive);
  save_archive_atomically(task_archive, dir.file("pretext.pt"));
  torch::serialize::OutputArchive backbone_archive;
  task_->backbone()->save(backbone_archive);
  save_archive_atomically(backbone_archive, dir.file("backbone.pt"));
}

void Job::run_transfer(const std::string& mode, const std::shared_ptr<Backbone>& pretrained,
                       const EvaluationData& evaluation, RunDirectory& dir, Progress& progress, toml::table& summary) {
  torch::manual_seed(phase_seed(options_.seed, "transfer." + mode));
  TransferInputs in;
  in.mode = mode;
  in.options = &options_;
  in.model = model_.get();
  in.loss = transfer_loss_.get();
  in.pretrained = pretrained.get();
  in.stages = &transfer_stages_;
  in.train = &train_;
  in.validation = &evaluation.validation;
  in.test = options_.data.test_path.empty() ? nullptr : &evaluation.test;
  in.split = &split_;
  in.compute = compute_;
  in.classes = classes_;
  const TransferResult r = pretext::run_transfer(in, dir, progress);
  save_transfer_networks(dir.file("transfer-" + mode + ".pt"), *r.backbone, *r.head);
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

void Job::run_feature_evaluations(Backbone& pretrained, const EvaluationData& evaluation, RunDirectory& dir,
                                  Progress& progress, toml::table& summary) {
  const EvaluationOptions& e = options_.evaluation;
  if (!e.knn && !e.linear_probe) return;
  const LabelledTensors labelled = decode_subset(train_, split_.labelled);  // no augmentation
  EvaluationInputs in;
  in.options = &e;
  in.compute = compute_;
  in.batch_size = options_.trainer.eval_batch_size;
  in.labelled = &labelled;
  in.validation = &evaluation.validation;
  in.test = options_.data.test_path.empty() ? nullptr : &evaluation.test;
  in.classes = classes_;
  toml::table section;
  run_evaluations(pretrained, in, "", dir, progress, section);
  if (e.random_init) {
    torch::manual_seed(phase_seed(options_.seed, "random-init"));
    const auto fresh = model_->make_backbone(ModelInput{train_.shape});
    compute_.place(*fresh);
    run_evaluations(*fresh, in, "_random_init", dir, progress, section);
  }
  dir.flush_metrics();
  summary.insert("evaluation", std::move(section));
}

void Job::sample(const std::filesystem::path& checkpoint, std::int64_t count, const std::filesystem::path& png) {
  auto* sampler = dynamic_cast<Sampler*>(task_.get());
  if (sampler == nullptr)
    throw InputError("pretext.plugin '" + options_.pretext.plugin + "' does not generate images; nothing to sample");
  if (!std::filesystem::is_regular_file(checkpoint))
    throw InputError(checkpoint.string() + ": no such checkpoint (expected the pretext.pt of a finished run)");
  torch::manual_seed(phase_seed(options_.seed, "sample"));
  HostTrainingContext context(compute_, ModelInput{train_.shape}, model_, pretext_loss_, options_.pretext.optimizer,
                              out_.string(), [this](const std::string& name) { return loss_with_defaults(name); });
  task_->setup(context);
  torch::serialize::InputArchive archive;
  archive.load_from(checkpoint.string(), compute_.device);
  task_->load(archive);
  write_sample_grid(*sampler, count, png);
}

}  // namespace pretext
