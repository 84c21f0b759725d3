// Guards around plugin code: a throw inside a plugin becomes a PluginFault
// (common/errors.hpp) whose message names the plugin, its file and the SDK
// function that threw, e.g.
//
//   stage plugin 'blur' (/opt/plugins/pretext_blur.so): Stage::apply: kernel too large
//
// Inside the flow graph the PluginFault cancels the graph and comes out of
// run_epoch like any node's exception; on the trainer thread it unwinds the
// training loop. A try block costs nothing until something throws, and the
// proxies allocate nothing per call.
//
// The plugin host wraps what it hands out: stages, losses and models, and the
// backbones and heads those models make. A pretext task is not wrapped (a proxy
// would hide its optional capabilities, such as Sampler, from dynamic_cast):
// the job guards its calls with GuardedViewMaker (view_contract.hpp) and
// guard_plugin_call.
#pragma once

#include <memory>
#include <string>

#include "pipeline/plugin_host/plugin_host.hpp"
#include "pretext/sdk.hpp"

namespace pretext {

/// "stage plugin 'NAME' (FILE)", or "stage 'NAME' (built-in)" for the host's own.
std::string plugin_label(ComponentKind kind, const std::string& name, const std::string& origin);

/// Call only inside a catch block: rethrows the exception being handled as a
/// PluginFault "PLUGIN: WHERE: WHAT". The host's own error types (PluginFault
/// from a plugin called by this one, PluginError, ConfigError, InputError)
/// pass unchanged, so a fault is named after the innermost plugin.
[[noreturn]] void rethrow_as_plugin_fault(const std::string& plugin, const char* where);

/// Runs `call` (plugin code); a throw becomes a PluginFault naming `plugin` and `where`.
template <class Call>
decltype(auto) guard_plugin_call(const std::string& plugin, const char* where, Call&& call) {
  try {
    return call();
  } catch (...) {
    rethrow_as_plugin_fault(plugin, where);
  }
}

/// Wraps a plugin's component so that its faults are named (see above).
std::shared_ptr<Stage> guard_component(std::shared_ptr<Stage> stage, std::string plugin);
std::shared_ptr<Loss> guard_component(std::shared_ptr<Loss> loss, std::string plugin);
std::shared_ptr<Model> guard_component(std::shared_ptr<Model> model, std::string plugin);

}  // namespace pretext
