// pretext plugin SDK: the one header a plugin author includes.
//
// A plugin is a shared library that exports exactly two C symbols, both made
// by PRETEXT_PLUGIN(register_fn):
//   * `pretext_plugin_abi`      — a plain descriptor the host checks before it
//                                 calls anything else in the library;
//   * `pretext_plugin_register` — receives the host's Registrar and adds the
//                                 plugin's components by name.
// Nothing is registered by static initialisers.
//
// Threading: PretextTask::make_views and Stage::apply run concurrently on
// TBB workers and must not mutate shared state. Everything else is called from
// one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/config.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>
#include <torch/version.h>

#include "pretext/image.hpp"
#include "pretext/options.hpp"
#include "pretext/stage.hpp"

namespace pretext {

// ---------------------------------------------------------------- ABI ------

/// Semantic version of this header. A plugin built against another major
/// version is refused; a newer minor than the host's is refused too.
inline constexpr std::uint32_t kPluginApiMajor = 2;
// 2.0: make_views takes ViewSlots (a count and a shape, checked), not bare
//      pointers; the host refuses 1.x plugins, which must be rebuilt.
// (1.1: make_named_loss; 1.2: gradients_finite; 1.3: save_sub_archives, load_sub_archives.)
inline constexpr std::uint32_t kPluginApiMinor = 0;
inline constexpr std::uint32_t kPluginAbiMagic = 0x50525458;  // "PRTX"

/// Plain-old-data descriptor, readable whatever else differs between host and plugin.
struct PluginAbi {
  std::uint32_t magic;
  std::uint32_t size;  // sizeof(PluginAbi) as the plugin saw it
  std::uint32_t api_major;
  std::uint32_t api_minor;
  char torch_version[32];  // TORCH_VERSION the plugin was compiled against
  std::uint32_t cxx11_abi;  // _GLIBCXX_USE_CXX11_ABI
};

// ------------------------------------------------------------ models -------

/// Output shape of a backbone for one input image.
struct FeatureShape {
  std::int64_t channels = 0;
  std::int64_t height = 0;
  std::int64_t width = 0;
};

/// The transferable part of a network: images (N,C,H,W) -> features.
class BOOST_SYMBOL_VISIBLE Backbone : public torch::nn::Module {
 public:
  ~Backbone() override = default;
  virtual torch::Tensor forward(torch::Tensor images) = 0;
  [[nodiscard]] virtual FeatureShape feature_shape() const = 0;
};

/// A task-specific head: features -> logits (N, classes).
class BOOST_SYMBOL_VISIBLE Head : public torch::nn::Module {
 public:
  ~Head() override = default;
  virtual torch::Tensor forward(torch::Tensor features) = 0;
};

/// What a model plugin is told about the data it will see.
struct ModelInput {
  ImageShape image;
};

/// A model plugin: a family of backbones and heads, configured from [model].
class BOOST_SYMBOL_VISIBLE Model {
 public:
  virtual ~Model() = default;
  [[nodiscard]] virtual std::shared_ptr<Backbone> make_backbone(const ModelInput& input) const = 0;
  [[nodiscard]] virtual std::shared_ptr<Head> make_head(const FeatureShape& features,
                                                        std::int64_t classes) const = 0;
};

// ------------------------------------------------------------- losses ------

class BOOST_SYMBOL_VISIBLE Loss {
 public:
  virtual ~Loss() = default;
  /// logits (N, K) float; targets (N) int64 class indices or (N, K) float targets.
  virtual torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets) const = 0;
};

// ------------------------------------------------------- pretext tasks -----

/// Result of one training step, reported by the task to the host.
struct StepResult {
  double loss = 0.0;
  std::int64_t correct = -1;  // -1 when accuracy has no meaning for the task
  std::int64_t count = 0;
  std::vector<std::pair<std::string, double>> extra;  // task-specific metrics (averaged per epoch)
};

/// Services the host offers a pretext task during training.
class BOOST_SYMBOL_VISIBLE TrainingContext {
 public:
  virtual ~TrainingContext() = default;
  [[nodiscard]] virtual torch::Device device() const = 0;
  [[nodiscard]] virtual ModelInput input() const = 0;
  /// A fresh backbone / head from the configured model plugin, on device().
  virtual std::shared_ptr<Backbone> make_backbone() = 0;
  virtual std::shared_ptr<Head> make_head(const FeatureShape& features, std::int64_t classes) = 0;
  /// The loss configured in [pretext.loss].
  virtual std::shared_ptr<Loss> make_loss() = 0;
  /// The optimiser configured in [pretext] over `parameters`. It skips an
  /// update whose gradients are not finite (see gradients_finite), and
  /// follows pretext.lr_schedule (a task's own optimisers do not).
  virtual std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> parameters) = 0;
  /// Runs `forward` under the configured autocast (e.g. bf16 on CPU), if any.
  virtual torch::Tensor autocast(const std::function<torch::Tensor()>& forward) = 0;
  /// Where the task may write artefacts (sample grids, ...).
  [[nodiscard]] virtual std::string run_directory() const = 0;
  /// A loss plugin by name with its default options, for tasks whose loss is
  /// part of their definition (the GAN's BCE). Since plugin API 1.1.
  virtual std::shared_ptr<Loss> make_named_loss(const std::string& name) = 0;
  /// For an optimiser the task made itself (optimisers from make_optimizer()
  /// do this by themselves): call it after backward() and call step() only
  /// when it returns true. False when a gradient of `module`'s parameters is
  /// NaN or infinite, which a finite loss does not show; the host then ends
  /// the run after this train_step, naming `name`.<parameter>, the epoch,
  /// the step and the loss the step reports, and keeps the last good
  /// checkpoint. Always true with [trainer] check_gradients = false.
  /// In a data-parallel run it first averages `module`'s gradients over the
  /// ranks (as make_optimizer()'s optimisers do before each step), so call
  /// it on every rank for each module your own optimiser steps.
  /// Since plugin API 1.2.
  virtual bool gradients_finite(const torch::nn::Module& module, const std::string& name) = 0;
};

/// A self-supervised task: makes labelled views of unlabelled images, and
/// owns its training step (so tasks with several networks fit the same host).
class BOOST_SYMBOL_VISIBLE PretextTask : public ViewMaker {
 public:
  ~PretextTask() override = default;

  // --- flow-graph side (ViewMaker): views_per_image, view_shape, make_views.

  // --- training side: one thread ------------------------------------------
  virtual void setup(TrainingContext& context) = 0;
  /// images: (N, C, H, W) float on the device; labels: (N) int64.
  virtual StepResult train_step(const torch::Tensor& images, const torch::Tensor& labels) = 0;
  /// Called after each epoch; a task may write artefacts here.
  virtual void end_epoch(int /*epoch*/) {}
  /// The features to transfer.
  [[nodiscard]] virtual std::shared_ptr<Backbone> backbone() const = 0;
  /// Checkpoint the task's full state (networks, optimisers).
  virtual void save(torch::serialize::OutputArchive& archive) const = 0;
  virtual void load(torch::serialize::InputArchive& archive) = 0;
};

/// Optional capability of a pretext task with a generator (a GAN): the host
/// writes a grid of samples into the run directory after every epoch.
/// Implement it next to PretextTask; the host finds it with dynamic_cast.
class BOOST_SYMBOL_VISIBLE Sampler {
 public:
  virtual ~Sampler() = default;
  /// `count` generated images (N, C, H, W), values in [0, 1], on any device.
  virtual torch::Tensor sample(std::int64_t count) = 0;
};

// ------------------------------------------------------- checkpoints -----
//
// A task's save/load usually stores each of its parts (modules, heads,
// optimisers) in a sub-archive of its own, by name. These helpers write that
// once. They are inline and compiled into the plugin: no new symbol, virtual
// or layout, so they need nothing from the host and leave the plugin ABI as
// it is. The archive they make is exactly the hand-written one's: one
// sub-archive per part, with the given names, written in the given order.
// Scalar state (archive.write("step", tensor)) stays the task's own code.
//
//   save_sub_archives(archive, {{"backbone", *backbone_}, {"optimizer", *optimizer_}});
//   load_sub_archives(archive, {{"backbone", *backbone_}, {"optimizer", *optimizer_}});

/// A named part to save: anything with `save(torch::serialize::OutputArchive&) const`
/// (torch::nn::Module, Backbone, Head, torch::optim::Optimizer, ...). Holds a
/// reference: use it only within the call it is made for.
class PartToSave {
 public:
  template <class Part>
  PartToSave(std::string name, const Part& part)
      : name_(std::move(name)), part_(&part), save_([](const void* part, torch::serialize::OutputArchive& archive) {
          static_cast<const Part*>(part)->save(archive);
        }) {}

  [[nodiscard]] const std::string& name() const { return name_; }
  void save(torch::serialize::OutputArchive& archive) const { save_(part_, archive); }

 private:
  std::string name_;
  const void* part_;
  void (*save_)(const void*, torch::serialize::OutputArchive&);
};

/// A named part to load: anything with `load(torch::serialize::InputArchive&)`.
/// Holds a reference: use it only within the call it is made for.
class PartToLoad {
 public:
  template <class Part>
  PartToLoad(std::string name, Part& part)
      : name_(std::move(name)),
        part_(&part),
        load_([](void* part, torch::serialize::InputArchive& archive) { static_cast<Part*>(part)->load(archive); }) {}

  [[nodiscard]] const std::string& name() const { return name_; }
  void load(torch::serialize::InputArchive& archive) const { load_(part_, archive); }

 private:
  std::string name_;
  void* part_;
  void (*load_)(void*, torch::serialize::InputArchive&);
};

/// Saves each part into a sub-archive of `archive` named after it. Every part
/// is saved before the first is written, so a part that throws leaves
/// `archive` untouched.
inline void save_sub_archives(torch::serialize::OutputArchive& archive, std::initializer_list<PartToSave> parts) {
  std::vector<torch::serialize::OutputArchive> subs(parts.size());
  auto sub = subs.begin();
  for (const auto& part : parts) part.save(*sub++);
  sub = subs.begin();
  for (const auto& part : parts) archive.write(part.name(), *sub++);
}

/// Loads each part from the sub-archive of `archive` named after it. Every
/// sub-archive is read before the first part is loaded, so a checkpoint that
/// lacks one (torch throws) changes no part.
inline void load_sub_archives(torch::serialize::InputArchive& archive, std::initializer_list<PartToLoad> parts) {
  std::vector<torch::serialize::InputArchive> subs(parts.size());
  auto sub = subs.begin();
  for (const auto& part : parts) archive.read(part.name(), *sub++);
  sub = subs.begin();
  for (const auto& part : parts) part.load(*sub++);
}

// --------------------------------------------------------- registration ----

using ModelFactory = std::function<std::shared_ptr<Model>(Options&)>;
using PretextFactory = std::function<std::shared_ptr<PretextTask>(Options&)>;
using LossFactory = std::function<std::shared_ptr<Loss>(Options&)>;
using StageFactory = std::function<std::shared_ptr<Stage>(Options&)>;

/// The host's registry, handed to `pretext_plugin_register`. A name already
/// taken (by any library, or the host's built-ins) is an error naming both.
class BOOST_SYMBOL_VISIBLE Registrar {
 public:
  virtual ~Registrar() = default;
  virtual void add_model(const std::string& name, ModelFactory factory) = 0;
  virtual void add_pretext(const std::string& name, PretextFactory factory) = 0;
  virtual void add_loss(const std::string& name, LossFactory factory) = 0;
  virtual void add_stage(const std::string& name, StageFactory factory) = 0;
};

}  // namespace pretext

#define PRETEXT_DETAIL_STR2(x) #x
#define PRETEXT_DETAIL_STR(x) PRETEXT_DETAIL_STR2(x)

/// Exports the ABI descriptor and the register entry point.
/// Use once per plugin library: PRETEXT_PLUGIN(my_register_function)
#define PRETEXT_PLUGIN(register_fn)                                                         \
  extern "C" BOOST_SYMBOL_EXPORT const ::pretext::PluginAbi pretext_plugin_abi = {          \
      ::pretext::kPluginAbiMagic, sizeof(::pretext::PluginAbi), ::pretext::kPluginApiMajor, \
      ::pretext::kPluginApiMinor, TORCH_VERSION, _GLIBCXX_USE_CXX11_ABI};                   \
  extern "C" BOOST_SYMBOL_EXPORT void pretext_plugin_register(::pretext::Registrar& registrar) { \
    register_fn(registrar);                                                                 \
  }
