// pretext check-plugin: see plugin_check.hpp.
#include "pipeline/check/plugin_check.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "common/errors.hpp"
#include "pipeline/config/document.hpp"
#include "pipeline/config/section.hpp"
#include "pipeline/plugin_host/plugin_guards.hpp"
#include "pipeline/plugin_host/view_contract.hpp"
#include "pipeline/train/assembled_run.hpp"
#include "pipeline/train/compute.hpp"
#include "pipeline/train/training_context.hpp"
#include "pretext/image_ops.hpp"
#include "stages/epoch_graph.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

constexpr ImageShape kInput{3, 32, 32};
constexpr int kImages = 16;
constexpr int kTrainSteps = 3;

/// One line per check: "  ok    NAME  DETAIL" or "  FAIL  NAME  REASON".
class Report {
 public:
  explicit Report(std::ostream& out) : out_(out) {}

  /// Runs `check`, which returns a detail or throws the reason it failed.
  bool check(const std::string& name, const std::function<std::string()>& check) {
    try {
      const std::string detail = check();
      out_ << "  ok    " << name << (detail.empty() ? "" : "  " + detail) << '\n';
      ++result_.passed;
      return true;
    } catch (const std::exception& error) {
      out_ << "  FAIL  " << name << "  " << error.what() << '\n';
      ++result_.failed;
      return false;
    }
  }
  void line(const std::string& text) { out_ << text << '\n'; }
  [[nodiscard]] PluginCheckResult result() const { return result_; }

 private:
  std::ostream& out_;
  PluginCheckResult result_;
};

[[noreturn]] void failed(const std::string& why) { throw std::runtime_error(why); }

std::string text(const ImageShape& s) {
  return std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width);
}

/// Hand-made images: gradients, stripes, a checkerboard and noise, so a task
/// sees edges, flat areas and texture. Labels 0..9.
data::ImageSet hand_made_images() {
  data::ImageSet set;
  set.shape = kInput;
  set.origin = "(check-plugin's hand-made images)";
  set.pixels.resize(static_cast<std::size_t>(kImages) * kInput.numel());
  for (int i = 0; i < kImages; ++i) {
    SampleRng rng(i, 0, 0, 0, 0);
    std::uint8_t* image = set.pixels.data() + static_cast<std::size_t>(i) * kInput.numel();
    for (int c = 0; c < kInput.channels; ++c)
      for (int y = 0; y < kInput.height; ++y)
        for (int x = 0; x < kInput.width; ++x) {
          int value = 0;
          switch (i % 4) {
            case 0: value = 8 * x + 2 * c; break;
            case 1: value = ((y / 4) % 2) * 200 + 20 * c; break;
            case 2: value = (((x / 8) + (y / 8)) % 2) * 255; break;
            default: value = static_cast<int>(rng.below(256)); break;
          }
          image[(static_cast<std::size_t>(c) * kInput.height + y) * kInput.width + x] =
              static_cast<std::uint8_t>(value & 255);
        }
    set.labels.push_back(i % 10);
  }
  return set;
}

/// All batches of one epoch over `images`, concatenated: pixels and labels.
struct EpochOutput {
  std::vector<float> pixels;
  std::vector<std::int64_t> labels;
  std::vector<stages::Batch> batches;
};

EpochOutput run_views_epoch(const data::ImageSet& images, const ViewMaker& views, int threads, std::uint64_t seed) {
  stages::EpochSpec spec;
  spec.plan.images = &images;
  for (std::uint32_t i = 0; i < images.size(); ++i) spec.plan.order.push_back(i);
  spec.plan.seed = seed;
  spec.views = &views;
  spec.batch_size = 4 * views.views_per_image();
  spec.graph.threads = threads;
  EpochOutput out;
  stages::run_epoch(spec, [&](const stages::Batch& batch) {
    out.pixels.insert(out.pixels.end(), batch.pixels(), batch.pixels() + batch.numel());
    out.labels.insert(out.labels.end(), batch.labels.begin(), batch.labels.end());
    out.batches.push_back(batch);
  });
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// A config that names `kind` `name` and otherwise takes the defaults, with
/// the library's directory on the search path.
fs::path write_config(const fs::path& dir, const std::string& key, const std::string& name, const fs::path& library) {
  fs::create_directories(dir);
  const fs::path file = dir / "check-plugin.toml";
  std::ofstream out(file);
  if (!library.empty()) out << "[plugins]\nsearch_path = [\"" << library.parent_path().string() << "\"]\n";
  const auto dot = key.find('.');
  out << "[" << key.substr(0, dot) << "]\n" << key.substr(dot + 1) << " = \"" << name << "\"\n";
  return file;
}

std::map<std::string, torch::Tensor> state_of(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : module.named_parameters()) state[p.key()] = p.value().detach().clone();
  for (const auto& b : module.named_buffers()) state[b.key()] = b.value().detach().clone();
  return state;
}

/// An output archive read back, as load() sees it.
torch::serialize::InputArchive archive_of(torch::serialize::OutputArchive& archive) {
  std::ostringstream bytes;
  archive.save_to(bytes);
  std::istringstream in(bytes.str());
  torch::serialize::InputArchive read;
  read.load_from(in);
  return read;
}

/// Compares two archives key by key, recursing into sub-archives; throws
/// naming the first difference. Returns how many tensors and values it compared.
std::size_t compare_archives(torch::serialize::InputArchive a, torch::serialize::InputArchive b,
                             const std::string& prefix) {
  auto keys = a.keys();
  auto other = b.keys();
  std::sort(keys.begin(), keys.end());
  std::sort(other.begin(), other.end());
  // A LibTorch optimiser's archive keys its state by parameter address, which
  // differs between two tasks: its state is checked by the next step instead.
  const bool optimizer = std::count(keys.begin(), keys.end(), "param_groups") == 1 &&
                         std::count(keys.begin(), keys.end(), "state") == 1;
  if (optimizer) return 0;
  if (keys != other)
    failed("the task loaded from a checkpoint saves other keys" + (prefix.empty() ? "" : " under '" + prefix + "'") +
           " than the checkpoint holds");
  std::size_t compared = 0;
  for (const auto& key : keys) {
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    torch::serialize::InputArchive sub_a;
    torch::serialize::InputArchive sub_b;
    if (a.try_read(key, sub_a) && b.try_read(key, sub_b)) {
      compared += compare_archives(std::move(sub_a), std::move(sub_b), name);
      continue;
    }
    c10::IValue value_a;
    c10::IValue value_b;
    a.read(key, value_a);
    b.read(key, value_b);
    const bool same = value_a.isTensor() && value_b.isTensor()
                          ? value_a.toTensor().sizes() == value_b.toTensor().sizes() &&
                                torch::equal(value_a.toTensor(), value_b.toTensor())
                          : value_a == value_b;
    if (!same) failed("'" + name + "' differs after save -> load -> save: load() does not restore it");
    ++compared;
  }
  return compared;
}

struct TaskUnderTest {
  std::unique_ptr<AssembledRun> run;
  std::unique_ptr<HostTrainingContext> context;
};

TaskUnderTest make_task(const fs::path& config, const std::vector<std::string>& overrides, const fs::path& out,
                        const ImageShape& view_shape) {
  TaskUnderTest t;
  t.run = std::make_unique<AssembledRun>(config, overrides);
  const RunOptions& o = t.run->options();
  AssembledRun* run = t.run.get();
  t.context = std::make_unique<HostTrainingContext>(
      Compute::from(o.trainer), ModelInput{view_shape}, run->model(), run->pretext_loss(), o.pretext.optimizer,
      out.string(), [run](const std::string& name) { return run->loss_with_defaults(name); },
      o.trainer.check_gradients);
  return t;
}

void check_task(const std::string& name, const std::string& reference, const fs::path& library,
                const PluginCheckRequest& request, const fs::path& scratch, Report& report) {
  report.line("pretext task '" + name + "':");
  const fs::path config = write_config(scratch, "pretext.plugin", reference, library);
  const data::ImageSet images = hand_made_images();
  TaskUnderTest first;
  std::unique_ptr<GuardedViewMaker> views;
  ImageShape shape;
  if (!report.check("make", [&] {
        first.run = std::make_unique<AssembledRun>(config, request.overrides);
        views = std::make_unique<GuardedViewMaker>(*first.run->task(), first.run->task_label(), ViewChecks::guarded);
        shape = views->view_shape(kInput);
        return "made from [pretext] with " + std::to_string(request.overrides.size()) + " --set";
      }))
    return;
  EpochOutput one;
  const bool views_ok = report.check("views", [&] {
    one = run_views_epoch(images, *views, 1, 7);
    const std::set<std::int64_t> labels(one.labels.begin(), one.labels.end());
    std::string seen;
    for (const auto label : labels) seen += (seen.empty() ? "" : ",") + std::to_string(label);
    return std::to_string(views->views_per_image()) + " views of " + text(shape) + " per " + text(kInput) +
           " image, every element written; labels {" + seen + "}";
  });
  if (!views_ok) return;
  report.check("seeded", [&] {
    if (!same_bits(run_views_epoch(images, *views, 1, 7).pixels, one.pixels))
      failed("two epochs with the same seed made different views: make_views must draw only from its rng");
    return std::string("the same seed makes the same views");
  });
  report.check("threads", [&] {
    const EpochOutput two = run_views_epoch(images, *views, 2, 7);
    if (!same_bits(two.pixels, one.pixels) || two.labels != one.labels)
      failed("the flow graph with 2 threads made other views than with 1: make_views must not share state");
    return std::string("1 and 2 threads make the same batches");
  });

  first.run.reset();
  views.reset();
  TaskUnderTest a;
  torch::Tensor x;
  torch::Tensor y;
  const bool trained = report.check("train", [&] {
    a = make_task(config, request.overrides, scratch, shape);
    PretextTask& task = *a.run->task();
    guard_plugin_call(a.run->task_label(), "PretextTask::setup", [&] { task.setup(*a.context); });
    const Compute compute = Compute::from(a.run->options().trainer);
    x = compute.images(one.batches.front());
    y = compute.labels(one.batches.front());
    const auto before = state_of(*task.backbone());
    std::string losses;
    for (int step = 0; step < kTrainSteps; ++step) {
      const StepResult r =
          guard_plugin_call(a.run->task_label(), "PretextTask::train_step", [&] { return task.train_step(x, y); });
      if (!std::isfinite(r.loss)) failed("step " + std::to_string(step + 1) + " reported loss " + std::to_string(r.loss));
      a.context->gradient_check().throw_if_found(r.loss);
      losses += (losses.empty() ? "" : ", ") + std::to_string(r.loss);
    }
    const auto after = state_of(*task.backbone());
    bool changed = false;
    for (const auto& [key, value] : before) changed = changed || !torch::equal(value, after.at(key));
    if (!changed) failed(std::to_string(kTrainSteps) + " steps left every backbone tensor unchanged");
    return std::to_string(kTrainSteps) + " steps on a batch of " + std::to_string(x.size(0)) + ": loss " + losses +
           "; the backbone's weights change";
  });
  if (!trained) return;
  report.check("save/load", [&] {
    PretextTask& task = *a.run->task();
    torch::serialize::OutputArchive archive;
    task.save(archive);
    std::ostringstream bytes;
    archive.save_to(bytes);
    TaskUnderTest b = make_task(config, request.overrides, scratch, shape);
    PretextTask& fresh = *b.run->task();
    fresh.setup(*b.context);
    torch::serialize::InputArchive in;
    std::istringstream read(bytes.str());
    in.load_from(read);
    guard_plugin_call(b.run->task_label(), "PretextTask::load", [&] { fresh.load(in); });
    const auto saved = state_of(*task.backbone());
    const auto loaded = state_of(*fresh.backbone());
    for (const auto& [key, value] : saved) {
      if (loaded.count(key) == 0) failed("the loaded backbone has no tensor '" + key + "'");
      if (!torch::equal(value, loaded.at(key))) failed("backbone tensor '" + key + "' differs after load");
    }
    // Every tensor the task saves: the loaded task saves the same tensors again.
    torch::serialize::OutputArchive again;
    fresh.save(again);
    const std::size_t compared = compare_archives(archive_of(archive), archive_of(again), "");
    // And the state that save() may have missed (heads, optimisers, counters) shows in the next step.
    torch::manual_seed(11);
    const double expected = task.train_step(x, y).loss;
    torch::manual_seed(11);
    const double found = fresh.train_step(x, y).loss;
    if (expected != found)
      failed("the next step's loss is " + std::to_string(found) + " after load, " + std::to_string(expected) +
             " without: save() misses some state (a head, an optimiser, a step counter?)");
    return "all " + std::to_string(compared) + " saved tensors and values restored (" +
           std::to_string(saved.size()) + " in the backbone); optimiser state: the next step's loss is the same";
  });
}

void check_model(const std::string& name, const std::string& reference, const fs::path& library,
                 const PluginCheckRequest& request, const fs::path& scratch, Report& report) {
  report.line("model '" + name + "':");
  report.check("networks", [&] {
    AssembledRun run(write_config(scratch, "model.plugin", reference, library), request.overrides,
                     AssembledRun::Components::model);
    const auto backbone = run.model()->make_backbone(ModelInput{kInput});
    const FeatureShape f = backbone->feature_shape();
    const torch::Tensor features = backbone->forward(torch::rand({4, kInput.channels, kInput.height, kInput.width}));
    if (features.sizes() != torch::IntArrayRef({4, f.channels, f.height, f.width}))
      failed("the backbone's output is " + std::to_string(features.dim()) + "-d, not (4, " +
             std::to_string(f.channels) + ", " + std::to_string(f.height) + ", " + std::to_string(f.width) +
             ") as feature_shape() says");
    const auto head = run.model()->make_head(f, 10);
    const torch::Tensor logits = head->forward(features);
    if (logits.sizes() != torch::IntArrayRef({4, 10})) failed("the head's output is not (4, 10)");
    logits.sum().backward();
    for (const auto& p : backbone->parameters())
      if (p.grad().defined() && !torch::isfinite(p.grad()).all().item<bool>()) failed("a non-finite gradient");
    return "backbone " + text(kInput) + " -> (" + std::to_string(f.channels) + ", " + std::to_string(f.height) +
           ", " + std::to_string(f.width) + "), head -> 10 logits, backward finite";
  });
}

void check_loss(const std::string& name, PluginHost& host, Report& report) {
  report.line("loss '" + name + "':");
  report.check("value", [&] {
    auto defaults = config::Document::parse("", "(defaults of loss '" + name + "')");
    config::Section options(defaults, "");
    const auto loss = host.make_loss(name, options);
    // The SDK allows class indices or (N, K) float targets; a contrastive
    // loss takes pair ids. A loss must accept one of them.
    const std::vector<std::pair<std::string, torch::Tensor>> targets = {
        {"class indices", torch::randint(10, {8}, torch::kLong)},
        {"float targets", torch::rand({8, 10})},
        {"pair ids", torch::arange(4, torch::kLong).repeat_interleave(2)}};
    std::string refusals;
    for (const auto& [kind, target] : targets) {
      const torch::Tensor logits = torch::randn({8, 10}).requires_grad_(true);
      torch::Tensor value;
      try {
        value = (*loss)(logits, target);
      } catch (const std::exception& error) {
        refusals += "; " + kind + ": " + error.what();
        continue;
      }
      if (value.numel() != 1 || !std::isfinite(value.item<double>()))
        failed("with " + kind + ": not a finite scalar");
      value.backward();
      if (!logits.grad().defined()) failed("with " + kind + ": no gradient reaches the logits");
      return "a finite scalar with a gradient, on 8 x 10 logits and " + kind + ": " +
             std::to_string(value.item<double>());
    }
    failed("refused class indices, float targets and pair ids" + refusals);
  });
}

void check_stage(const std::string& name, PluginHost& host, Report& report) {
  report.line("stage '" + name + "':");
  report.check("apply", [&] {
    auto defaults = config::Document::parse("", "(defaults of stage '" + name + "')");
    config::Section options(defaults, "");
    const auto stage = host.make_stage(name, options);
    const data::ImageSet images = hand_made_images();
    std::vector<float> a(kInput.numel());
    std::vector<float> b(kInput.numel());
    for (int i = 0; i < kImages; ++i) {
      ops::to_float(images.image(i), {a.data(), kInput});
      b = a;
      SampleRng r1(3, 0, i, 0, 0);
      SampleRng r2(3, 0, i, 0, 0);
      stage->apply({a.data(), kInput}, r1);
      stage->apply({b.data(), kInput}, r2);
      if (!same_bits(a, b)) failed("image " + std::to_string(i) + ": the same seed gave different pixels");
      for (const float v : a)
        if (!std::isfinite(v)) failed("image " + std::to_string(i) + ": a non-finite pixel");
    }
    return std::to_string(kImages) + " " + text(kInput) + " images: finite, the same from the same seed";
  });
}

}  // namespace

PluginCheckResult check_plugin(const PluginCheckRequest& request, std::ostream& out) {
  PluginHost host;
  register_builtins(host);
  const std::vector<ComponentKind> kinds = {ComponentKind::pretext, ComponentKind::model, ComponentKind::loss,
                                            ComponentKind::stage};
  std::string origin;
  const bool names_a_file =
      request.plugin.find('/') != std::string::npos ||
      (request.plugin.size() > 3 && request.plugin.compare(request.plugin.size() - 3, 3, ".so") == 0);
  if (names_a_file) {
    host.load_library(request.plugin);
    origin = fs::canonical(request.plugin).string();
  } else {
    std::string first_error;
    for (const auto kind : kinds) {
      try {
        origin = host.origin(kind, host.resolve(kind, request.plugin));
        break;
      } catch (const PluginError& error) {
        if (first_error.empty()) first_error = error.what();
      }
    }
    // The pretext kind's message lists the search path and the libraries skipped.
    if (origin.empty())
      throw PluginError("no model, pretext task, loss or stage is named '" + request.plugin + "'; " + first_error);
  }

  Report report(out);
  out << "library: " << origin << '\n';
  if (const auto abi = host.library_abi(origin)) {
    out << "  ABI: plugin API " << abi->api_major << "." << abi->api_minor << " (this pretext: " << kPluginApiMajor
        << "." << kPluginApiMinor << "), LibTorch " << abi->torch_version << ", _GLIBCXX_USE_CXX11_ABI "
        << abi->cxx11_abi << ": accepted\n";
  }
  const fs::path library = origin.front() == '/' ? fs::path(origin) : fs::path();
  if (!library.empty() && library.filename() != "pretext_" + request.plugin + ".so" &&
      request.plugin.find('/') == std::string::npos) {
    out << "  note: found by the name it registers; the file a name is looked up by first is pretext_"
        << request.plugin << ".so (or name the library by its path)\n";
  }
  std::vector<std::pair<ComponentKind, std::string>> components;
  for (const auto kind : kinds)
    for (const auto& name : host.names(kind))
      if (host.origin(kind, name) == origin) components.emplace_back(kind, name);
  out << "  registers:";
  for (const auto& [kind, name] : components) out << ' ' << to_string(kind) << " '" << name << "'";
  out << '\n';

  const fs::path scratch = fs::temp_directory_path() / ("pretext-check-plugin-" + std::to_string(::getpid()));
  // The runs name this very file when it registers one component of the
  // kind (a name could resolve to another library on the search path);
  // otherwise the name, with the file's directory first on the path.
  const auto reference = [&](ComponentKind kind, const std::string& name) {
    const auto same_kind = std::count_if(components.begin(), components.end(),
                                         [kind](const auto& component) { return component.first == kind; });
    return !library.empty() && same_kind == 1 ? library.string() : name;
  };
  for (const auto& [kind, name] : components) {
    switch (kind) {
      case ComponentKind::pretext: check_task(name, reference(kind, name), library, request, scratch, report); break;
      case ComponentKind::model: check_model(name, reference(kind, name), library, request, scratch, report); break;
      case ComponentKind::loss: check_loss(name, host, report); break;
      case ComponentKind::stage: check_stage(name, host, report); break;
    }
  }
  std::error_code ignored;
  fs::remove_all(scratch, ignored);
  const PluginCheckResult result = report.result();
  out << (result.failed == 0 ? "passed" : "FAILED") << ": " << result.passed << " checks passed, " << result.failed
      << " failed\n";
  return result;
}

}  // namespace pretext
