// Guards around plugin code: see plugin_guards.hpp.
#include "pipeline/plugin_host/plugin_guards.hpp"

#include <cxxabi.h>

#include <ostream>
#include <utility>

#include <c10/util/Exception.h>

#include "common/errors.hpp"

namespace pretext {
namespace {

constexpr const char* kBuiltinOrigin = "(built-in)";

class GuardedStage final : public Stage {
 public:
  GuardedStage(std::shared_ptr<Stage> inner, std::string plugin)
      : inner_(std::move(inner)), plugin_(std::move(plugin)) {}

  void apply(ImageView image, SampleRng& rng) const override {
    try {
      inner_->apply(image, rng);
    } catch (...) {
      rethrow_as_plugin_fault(plugin_, "Stage::apply");
    }
  }

 private:
  std::shared_ptr<Stage> inner_;
  std::string plugin_;
};

class GuardedLoss final : public Loss {
 public:
  GuardedLoss(std::shared_ptr<Loss> inner, std::string plugin) : inner_(std::move(inner)), plugin_(std::move(plugin)) {}

  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets) const override {
    try {
      return (*inner_)(logits, targets);
    } catch (...) {
      rethrow_as_plugin_fault(plugin_, "Loss::operator()");
    }
  }

 private:
  std::shared_ptr<Loss> inner_;
  std::string plugin_;
};

/// A plugin's network behind a proxy that names its faults. The proxy
/// registers the inner network's own parameters, buffers and children under
/// their own names, so parameters(), named_modules(), to() and optimisers see
/// exactly the inner network's tensors under the same names; save and load go
/// to the inner network itself, so checkpoints are unchanged. (A network that
/// registers modules lazily, after it is made, is not mirrored.)
template <class Network>
class GuardedNetwork : public Network {
 public:
  void train(bool on) override {
    torch::nn::Module::train(on);
    inner_->train(on);  // its own is_training() flag too, for functional dropout
  }
  void save(torch::serialize::OutputArchive& archive) const override { inner_->save(archive); }
  void load(torch::serialize::InputArchive& archive) override { inner_->load(archive); }
  [[nodiscard]] bool is_serializable() const override { return inner_->is_serializable(); }
  void pretty_print(std::ostream& stream) const override { inner_->pretty_print(stream); }
  [[nodiscard]] std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<torch::Device>& device = c10::nullopt) const override {
    return inner_->clone(device);
  }

 protected:
  GuardedNetwork(std::shared_ptr<Network> inner, std::string plugin, std::shared_ptr<const Model> model)
      : model_(std::move(model)), inner_(std::move(inner)), plugin_(std::move(plugin)) {
    for (const auto& child : inner_->named_children()) this->register_module(child.key(), child.value());
    for (const auto& parameter : inner_->named_parameters(/*recurse=*/false))
      this->register_parameter(parameter.key(), parameter.value(), parameter.value().requires_grad());
    for (const auto& buffer : inner_->named_buffers(/*recurse=*/false))
      this->register_buffer(buffer.key(), buffer.value());
  }

  // The model that made the network holds its library: declared first, so
  // the library outlives the network's destructor.
  std::shared_ptr<const Model> model_;
  std::shared_ptr<Network> inner_;
  std::string plugin_;
};

class GuardedBackbone final : public GuardedNetwork<Backbone> {
 public:
  GuardedBackbone(std::shared_ptr<Backbone> inner, std::string plugin, std::shared_ptr<const Model> model)
      : GuardedNetwork(std::move(inner), std::move(plugin), std::move(model)) {}

  torch::Tensor forward(torch::Tensor images) override {
    try {
      return inner_->forward(std::move(images));
    } catch (...) {
      rethrow_as_plugin_fault(plugin_, "Backbone::forward");
    }
  }
  [[nodiscard]] FeatureShape feature_shape() const override {
    try {
      return inner_->feature_shape();
    } catch (...) {
      rethrow_as_plugin_fault(plugin_, "Backbone::feature_shape");
    }
  }
};

class GuardedHead final : public GuardedNetwork<Head> {
 public:
  GuardedHead(std::shared_ptr<Head> inner, std::string plugin, std::shared_ptr<const Model> model)
      : GuardedNetwork(std::move(inner), std::move(plugin), std::move(model)) {}

  torch::Tensor forward(torch::Tensor features) override {
    try {
      return inner_->forward(std::move(features));
    } catch (...) {
      rethrow_as_plugin_fault(plugin_, "Head::forward");
    }
  }
};

class GuardedModel final : public Model {
 public:
  GuardedModel(std::shared_ptr<Model> inner, std::string plugin)
      : inner_(std::move(inner)), plugin_(std::move(plugin)) {}

  [[nodiscard]] std::shared_ptr<Backbone> make_backbone(const ModelInput& input) const override {
    auto backbone = guard_plugin_call(plugin_, "Model::make_backbone", [&] { return inner_->make_backbone(input); });
    if (!backbone) throw PluginFault(plugin_ + ": Model::make_backbone returned no network");
    return std::make_shared<GuardedBackbone>(std::move(backbone), plugin_, inner_);
  }
  [[nodiscard]] std::shared_ptr<Head> make_head(const FeatureShape& features, std::int64_t classes) const override {
    auto head = guard_plugin_call(plugin_, "Model::make_head", [&] { return inner_->make_head(features, classes); });
    if (!head) throw PluginFault(plugin_ + ": Model::make_head returned no network");
    return std::make_shared<GuardedHead>(std::move(head), plugin_, inner_);
  }

 private:
  std::shared_ptr<Model> inner_;  // bound to its library by the host
  std::string plugin_;
};

}  // namespace

std::string plugin_label(ComponentKind kind, const std::string& name, const std::string& origin) {
  if (origin == kBuiltinOrigin) return std::string(to_string(kind)) + " '" + name + "' " + origin;
  return std::string(to_string(kind)) + " plugin '" + name + "' (" + origin + ")";
}

void rethrow_as_plugin_fault(const std::string& plugin, const char* where) {
  const auto fault = [&](const std::string& what) { return PluginFault(plugin + ": " + where + ": " + what); };
  try {
    throw;
  } catch (const abi::__forced_unwind&) {
    throw;  // thread cancellation must keep unwinding
  } catch (const PluginFault&) {
    throw;  // names a plugin this one called (a model's forward inside a task's step)
  } catch (const PluginError&) {
    throw;
  } catch (const ConfigError&) {
    throw;
  } catch (const InputError&) {
    throw;
  } catch (const RankLost&) {
    throw;  // a collective the host ran inside the call (an optimiser's step) lost a peer
  } catch (const c10::Error& error) {
    throw fault(error.what_without_backtrace());  // LibTorch's backtrace would bury the message
  } catch (const std::exception& error) {
    throw fault(error.what());
  } catch (...) {
    throw fault("threw an exception that is not a std::exception");
  }
}

std::shared_ptr<Stage> guard_component(std::shared_ptr<Stage> stage, std::string plugin) {
  return std::make_shared<GuardedStage>(std::move(stage), std::move(plugin));
}

std::shared_ptr<Loss> guard_component(std::shared_ptr<Loss> loss, std::string plugin) {
  return std::make_shared<GuardedLoss>(std::move(loss), std::move(plugin));
}

std::shared_ptr<Model> guard_component(std::shared_ptr<Model> model, std::string plugin) {
  return std::make_shared<GuardedModel>(std::move(model), std::move(plugin));
}

}  // namespace pretext
