// Loads plugin libraries with Boost.DLL and holds the registry of components.
//
// Load order for one library:
//   1. the file exists and exports both `pretext_plugin_abi` and
//      `pretext_plugin_register` (checked with boost::dll::library_info,
//      before the library is mapped);
//   2. the library is loaded and its ABI descriptor compared with the host's:
//      magic, plugin-API major (equal) and minor (<= host), LibTorch version,
//      _GLIBCXX_USE_CXX11_ABI. A mismatch names the file, the expected and the
//      found value;
//   3. `pretext_plugin_register` runs with a Registrar that stamps every
//      component with the library it came from. A name taken twice is an
//      error naming both files ("(built-in)" for the host's own).
//
// Lifetime: every object made through make_* holds a reference to its
// library, so a library outlives all it made whatever the destruction order.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pretext/sdk.hpp"

#include "common/errors.hpp"  // PluginError

namespace boost::dll {
class shared_library;
}

namespace pretext {


enum class ComponentKind { model, pretext, loss, stage };
const char* to_string(ComponentKind kind);

class PluginHost {
 public:
  PluginHost();
  ~PluginHost();
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  /// Directories searched for a plugin named by component name, in order:
  /// `extra` (from the config), then $PRETEXT_PLUGIN_PATH (':'-separated),
  /// then the built-in plugins (builtin_plugin_directory()).
  void set_search_path(std::vector<std::filesystem::path> extra);
  [[nodiscard]] const std::vector<std::filesystem::path>& search_path() const { return search_path_; }
  /// Where the built-in plugins are: <prefix>/lib/pretext/plugins for an
  /// installed executable, else the build tree's plugin directory.
  static std::filesystem::path builtin_plugin_directory();

  /// Loads one library (steps 1-3 above). Loading the same file twice is a no-op.
  void load_library(const std::filesystem::path& file);

  /// Loads every plugin library on the search path (files pretext_*.so), as
  /// `pretext plugins` lists them. A library that fails to load is skipped:
  /// its error is returned, one message per library, and loading goes on.
  std::vector<std::string> load_search_path();

  /// Registers a host built-in (origin "(built-in)").
  Registrar& builtins();

  /// Makes sure a component of `kind` is available under `reference` and
  /// returns its registered name. `reference` is either a name ("conv4"),
  /// found in the registry, else by loading `pretext_<name>.so` from the
  /// search path, else by loading every library on the search path and
  /// taking the one that registers it; or a path to a library (contains '/' or ends in ".so"),
  /// which is loaded and must register exactly one component of `kind`.
  /// PluginError lists what was searched when nothing is found.
  std::string resolve(ComponentKind kind, const std::string& reference);

  /// Makes a component. The returned object keeps its library loaded.
  std::shared_ptr<Model> make_model(const std::string& name, Options& options);
  std::shared_ptr<PretextTask> make_pretext(const std::string& name, Options& options);
  std::shared_ptr<Loss> make_loss(const std::string& name, Options& options);
  std::shared_ptr<Stage> make_stage(const std::string& name, Options& options);

  /// Registered names of `kind`, sorted.
  [[nodiscard]] std::vector<std::string> names(ComponentKind kind) const;
  /// The file a component came from, or "(built-in)".
  [[nodiscard]] std::string origin(ComponentKind kind, const std::string& name) const;
  /// The ABI descriptor of a loaded library, by its origin (canonical path);
  /// none for "(built-in)" or a library not loaded.
  [[nodiscard]] std::optional<PluginAbi> library_abi(const std::string& origin) const;

 private:
  struct Entry;
  class StampingRegistrar;
  const Entry& find(ComponentKind kind, const std::string& name) const;

  std::vector<std::filesystem::path> search_path_;
  std::vector<std::shared_ptr<boost::dll::shared_library>> libraries_;
  std::map<std::string, std::shared_ptr<boost::dll::shared_library>> loaded_by_path_;
  std::map<std::string, PluginAbi> abi_by_path_;
  std::map<std::pair<ComponentKind, std::string>, std::shared_ptr<Entry>> entries_;
  std::unique_ptr<StampingRegistrar> builtin_registrar_;
};

}  // namespace pretext
