// Plugin host: see plugin_host.hpp for the load order and the lifetime rules.
#include "pipeline/plugin_host/plugin_host.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <ios>
#include <sstream>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include <torch/version.h>
#include <boost/dll/library_info.hpp>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include "common/errors.hpp"
#include "pipeline/plugin_host/plugin_guards.hpp"

#if !defined(PRETEXT_DEFAULT_PLUGIN_DIR) || !defined(PRETEXT_INSTALL_PLUGIN_DIR)
#error "PRETEXT_DEFAULT_PLUGIN_DIR and PRETEXT_INSTALL_PLUGIN_DIR must be defined by the build"
#endif

namespace pretext {

namespace fs = std::filesystem;

namespace {

using Library = boost::dll::shared_library;
using LibraryPtr = std::shared_ptr<Library>;

constexpr const char* kAbiSymbol = "pretext_plugin_abi";
constexpr const char* kRegisterSymbol = "pretext_plugin_register";
constexpr const char* kBuiltinOrigin = "(built-in)";
constexpr const char* kPluginPathVariable = "PRETEXT_PLUGIN_PATH";

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw PluginError("plugin " + file.string() + ": " + what);
}

std::string join(const std::vector<std::string>& items) {
  std::string joined;
  for (const auto& item : items) joined += (joined.empty() ? "" : ", ") + item;
  return joined;
}

// resolve() reads such a reference as a file rather than a component name.
bool looks_like_path(const std::string& reference) {
  const std::string suffix = ".so";
  return reference.find('/') != std::string::npos ||
         (reference.size() > suffix.size() &&
          reference.compare(reference.size() - suffix.size(), suffix.size(), suffix) == 0);
}

boost::dll::fs::path to_boost_path(const fs::path& file) { return boost::dll::fs::path(file.string()); }

// Returns false when the file has no static symbol table (a stripped
// library): Boost 1.74's library_info reads only .symtab, so the exports can
// then only be checked with dlsym once the library is mapped.
bool check_exports_before_loading(const fs::path& file) {
  std::vector<std::string> symbols;
  try {
    boost::dll::library_info info(to_boost_path(file));
    symbols = info.symbols();
  } catch (const std::ios_base::failure&) {
    // library_info reads through an ifstream that throws on a short read.
    fail(file, "not a shared library (too short to hold an ELF header)");
  } catch (const std::exception& error) {
    fail(file, std::string("not a shared library (") + error.what() + ")");
  }
  if (symbols.empty()) return false;

  std::vector<std::string> missing;
  for (const char* required : {kAbiSymbol, kRegisterSymbol}) {
    if (std::find(symbols.begin(), symbols.end(), required) == symbols.end()) missing.emplace_back(required);
  }
  if (!missing.empty()) fail(file, "does not export " + join(missing) + " (not a pretext plugin?)");
  return true;
}

void check_exports_after_loading(const fs::path& file, const Library& library) {
  std::vector<std::string> missing;
  for (const char* required : {kAbiSymbol, kRegisterSymbol}) {
    if (!library.has(required)) missing.emplace_back(required);
  }
  if (!missing.empty()) fail(file, "does not export " + join(missing) + " (not a pretext plugin?)");
}

LibraryPtr open_library(const fs::path& file) {
  // rtld_now: an unresolved symbol is reported here, not as a crash mid-run.
  // rtld_local: every plugin exports the same two names.
  try {
    return std::make_shared<Library>(to_boost_path(file),
                                     boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& error) {
    fail(file, std::string("cannot load: ") + error.what());
  }
}

std::string hex(std::uint32_t value) {
  std::ostringstream out;
  out << "0x" << std::hex << value;
  return out.str();
}

// The descriptor may come from a plugin built against another SDK, so only
// `magic` and `size` are trusted; no byte past `size` is read. Returns it.
PluginAbi check_abi(const fs::path& file, const Library& library) {
  const unsigned char* raw = &library.get<const unsigned char>(kAbiSymbol);

  std::uint32_t magic = 0;
  std::memcpy(&magic, raw + offsetof(PluginAbi, magic), sizeof magic);
  if (magic != kPluginAbiMagic) {
    fail(file, "not a pretext plugin ABI descriptor: magic expected " + hex(kPluginAbiMagic) + ", found " + hex(magic));
  }
  std::uint32_t size = 0;
  std::memcpy(&size, raw + offsetof(PluginAbi, size), sizeof size);

  PluginAbi abi{};
  std::memcpy(&abi, raw, std::min<std::size_t>(size, sizeof abi));
  const auto require = [&](const char* field, std::size_t offset, std::size_t length) {
    if (offset + length > size) {
      fail(file, "ABI descriptor of " + std::to_string(size) + " bytes has no " + field + " (expected " +
                     std::to_string(sizeof(PluginAbi)) + " bytes)");
    }
  };

  require("api_major", offsetof(PluginAbi, api_major), sizeof abi.api_major);
  if (abi.api_major != kPluginApiMajor) {
    // No compatibility path: a 1.x task's make_views writes through bare
    // pointers the host cannot check (docs/writing-a-pretext-task.md).
    const std::string advice = abi.api_major < kPluginApiMajor
                                   ? " (built against an older SDK: rebuild it against this one; since 2.0 "
                                     "make_views takes ViewSlots)"
                                   : " (built against a newer SDK than this pretext's)";
    fail(file, "plugin API major version mismatch: expected " + std::to_string(kPluginApiMajor) + ", found " +
                   std::to_string(abi.api_major) + advice);
  }
  require("api_minor", offsetof(PluginAbi, api_minor), sizeof abi.api_minor);
  if (abi.api_minor > kPluginApiMinor) {
    fail(file, "plugin API minor version too new: expected at most " + std::to_string(kPluginApiMinor) + ", found " +
                   std::to_string(abi.api_minor));
  }
  require("torch_version", offsetof(PluginAbi, torch_version), sizeof abi.torch_version);
  const std::string torch_version(abi.torch_version, strnlen(abi.torch_version, sizeof abi.torch_version));
  if (torch_version != TORCH_VERSION) {
    fail(file, std::string("LibTorch version mismatch: expected ") + TORCH_VERSION + ", found " + torch_version);
  }
  require("cxx11_abi", offsetof(PluginAbi, cxx11_abi), sizeof abi.cxx11_abi);
  if (abi.cxx11_abi != static_cast<std::uint32_t>(_GLIBCXX_USE_CXX11_ABI)) {
    fail(file, "_GLIBCXX_USE_CXX11_ABI mismatch: expected " + std::to_string(_GLIBCXX_USE_CXX11_ABI) + ", found " +
                   std::to_string(abi.cxx11_abi));
  }
  return abi;
}

// Owns a plugin-made object together with its library. The library is the
// first member so that it is destroyed last: the object's destructor and its
// shared_ptr control block are code inside the library.
template <class Product>
struct LibraryBoundObject {
  LibraryPtr library;
  std::shared_ptr<Product> object;
};

template <class Product>
std::shared_ptr<Product> bind_to_library(std::shared_ptr<Product> object, LibraryPtr library) {
  if (!library) return object;  // a built-in: its code is the host's own
  Product* raw = object.get();
  auto holder =
      std::make_shared<LibraryBoundObject<Product>>(LibraryBoundObject<Product>{std::move(library), std::move(object)});
  return std::shared_ptr<Product>(holder, raw);
}

}  // namespace

const char* to_string(ComponentKind kind) {
  switch (kind) {
    case ComponentKind::model:
      return "model";
    case ComponentKind::pretext:
      return "pretext";
    case ComponentKind::loss:
      return "loss";
    case ComponentKind::stage:
      return "stage";
  }
  return "component";
}

// ------------------------------------------------------------ Entry --------

struct PluginHost::Entry {
  using Factory = std::variant<ModelFactory, PretextFactory, LossFactory, StageFactory>;

  // First member, destroyed last: the factory's code lives in the library.
  LibraryPtr library;
  ComponentKind kind;
  std::string name;
  std::string origin;
  Factory factory;

  [[nodiscard]] std::string describe() const { return plugin_label(kind, name, origin); }

  template <class Product>
  std::shared_ptr<Product> make(Options& options) const {
    const auto& make_product = std::get<std::function<std::shared_ptr<Product>(Options&)>>(factory);
    std::shared_ptr<Product> product;
    try {
      product = make_product(options);
    } catch (const ConfigError&) {
      throw;  // already names file:line:column and the key
    } catch (const PluginError&) {
      throw;
    } catch (const std::exception& error) {
      throw PluginError(describe() + ": factory: " + error.what());
    } catch (...) {
      throw PluginError(describe() + ": factory: threw an exception that is not a std::exception");
    }
    if (!product) throw PluginError(describe() + ": factory returned no object");
    auto bound = bind_to_library(std::move(product), library);
    // A task is guarded by the job at its call sites (plugin_guards.hpp); the
    // host's built-ins are host code.
    if constexpr (std::is_same_v<Product, PretextTask>) {
      return bound;
    } else {
      return library ? guard_component(std::move(bound), describe()) : bound;
    }
  }
};

// ------------------------------------------------ StampingRegistrar --------

// Stamps every component with the library it came from. A library's
// components are staged and committed only once its register function has
// returned, so a failed registration leaves nothing behind; built-ins are
// committed one by one as the host adds them.
class PluginHost::StampingRegistrar final : public Registrar {
 public:
  StampingRegistrar(PluginHost& host, std::string origin, LibraryPtr library, bool commit_each)
      : host_(host), origin_(std::move(origin)), library_(std::move(library)), commit_each_(commit_each) {}

  void add_model(const std::string& name, ModelFactory factory) override {
    add(ComponentKind::model, name, std::move(factory));
  }
  void add_pretext(const std::string& name, PretextFactory factory) override {
    add(ComponentKind::pretext, name, std::move(factory));
  }
  void add_loss(const std::string& name, LossFactory factory) override {
    add(ComponentKind::loss, name, std::move(factory));
  }
  void add_stage(const std::string& name, StageFactory factory) override {
    add(ComponentKind::stage, name, std::move(factory));
  }

  /// Moves the staged components into the host, or none if a name is taken.
  void commit() {
    // Taken out first so that a rejected batch is dropped, not retried with the next built-in.
    std::vector<std::shared_ptr<Entry>> staged = std::move(staged_);
    staged_.clear();
    for (std::size_t i = 0; i < staged.size(); ++i) {
      const Entry& entry = *staged[i];
      const auto taken = host_.entries_.find({entry.kind, entry.name});
      if (taken != host_.entries_.end()) {
        throw PluginError("duplicate " + std::string(to_string(entry.kind)) + " '" + entry.name + "': registered by " +
                          taken->second->origin + " and " + entry.origin);
      }
      for (std::size_t j = 0; j < i; ++j) {
        if (staged[j]->kind == entry.kind && staged[j]->name == entry.name) {
          throw PluginError("duplicate " + std::string(to_string(entry.kind)) + " '" + entry.name +
                            "': registered twice by " + entry.origin);
        }
      }
    }
    for (auto& entry : staged) {
      const auto key = std::make_pair(entry->kind, entry->name);
      host_.entries_.emplace(key, std::move(entry));
    }
  }

 private:
  void add(ComponentKind kind, const std::string& name, Entry::Factory factory) {
    const std::string what = std::string(to_string(kind)) + " '" + name + "'";
    if (name.empty()) throw PluginError(std::string("a ") + to_string(kind) + " needs a non-empty name");
    if (looks_like_path(name)) {
      throw PluginError(what + ": a component name must not contain '/' or end in \".so\"");
    }
    const bool has_factory = std::visit([](const auto& make) { return static_cast<bool>(make); }, factory);
    if (!has_factory) throw PluginError(what + ": empty factory");
    staged_.push_back(std::make_shared<Entry>(Entry{library_, kind, name, origin_, std::move(factory)}));
    if (commit_each_) commit();
  }

  PluginHost& host_;
  std::string origin_;
  LibraryPtr library_;
  bool commit_each_;
  std::vector<std::shared_ptr<Entry>> staged_;
};

// ------------------------------------------------------- PluginHost --------

PluginHost::PluginHost()
    : builtin_registrar_(std::make_unique<StampingRegistrar>(*this, kBuiltinOrigin, nullptr, true)) {
  set_search_path({});
}

PluginHost::~PluginHost() = default;

void PluginHost::set_search_path(std::vector<fs::path> extra) {
  search_path_ = std::move(extra);
  if (const char* variable = std::getenv(kPluginPathVariable)) {
    std::istringstream directories(variable);
    std::string directory;
    while (std::getline(directories, directory, ':')) {
      if (!directory.empty()) search_path_.emplace_back(directory);
    }
  }
  search_path_.push_back(builtin_plugin_directory());
}

fs::path PluginHost::builtin_plugin_directory() {
  // An installed executable finds the plugins installed beside it
  // (<prefix>/bin/pretext -> <prefix>/lib/pretext/plugins); a binary in the
  // build tree uses the build's plugin directory.
  boost::system::error_code ec;
  const boost::dll::fs::path program = boost::dll::program_location(ec);
  if (!ec) {
    const fs::path installed = fs::path(program.parent_path().parent_path().string()) / PRETEXT_INSTALL_PLUGIN_DIR;
    std::error_code exists_error;
    if (fs::is_directory(installed, exists_error)) return installed;
  }
  return PRETEXT_DEFAULT_PLUGIN_DIR;
}

std::vector<std::string> PluginHost::load_search_path() {
  std::vector<std::string> skipped;
  for (const auto& dir : search_path_) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const auto& file = it->path();
      if (file.extension() == ".so" && file.filename().string().rfind("pretext_", 0) == 0) files.push_back(file);
    }
    std::sort(files.begin(), files.end());  // the same order, and so the same duplicate reported, on every file system
    for (const auto& file : files) {
      try {
        load_library(file);
      } catch (const std::exception& e) {
        skipped.emplace_back(e.what());
      }
    }
  }
  return skipped;
}

void PluginHost::load_library(const fs::path& file) {
  std::error_code error;
  if (!fs::exists(file, error)) fail(file, "no such file");
  if (!fs::is_regular_file(file, error)) fail(file, "not a regular file");
  // The canonical path identifies a library; errors name the file as the
  // user wrote it, made absolute (dlopen would search a bare name elsewhere).
  const fs::path canonical = fs::canonical(file);
  if (loaded_by_path_.count(canonical.string()) != 0) return;
  const fs::path absolute = fs::absolute(file).lexically_normal();

  const bool exports_checked = check_exports_before_loading(absolute);
  LibraryPtr library = open_library(absolute);
  if (!exports_checked) check_exports_after_loading(absolute, *library);
  const PluginAbi abi = check_abi(absolute, *library);

  StampingRegistrar registrar(*this, canonical.string(), library, /*commit_each=*/false);
  auto& register_components = library->get<void(Registrar&)>(kRegisterSymbol);
  try {
    register_components(registrar);
  } catch (const std::exception& failure) {
    fail(absolute, std::string("registration failed: ") + failure.what());
  } catch (...) {
    fail(absolute, "registration failed: unknown exception");
  }
  registrar.commit();

  libraries_.push_back(library);
  loaded_by_path_.emplace(canonical.string(), std::move(library));
  abi_by_path_.emplace(canonical.string(), abi);
}

Registrar& PluginHost::builtins() { return *builtin_registrar_; }

std::string PluginHost::resolve(ComponentKind kind, const std::string& reference) {
  const std::string kind_name = to_string(kind);
  if (reference.empty()) throw PluginError("empty " + kind_name + " name");

  if (looks_like_path(reference)) {
    load_library(reference);
    const std::string file = fs::canonical(reference).string();
    std::vector<std::string> provided;
    for (const auto& [key, entry] : entries_) {
      if (key.first == kind && entry->origin == file) provided.push_back(key.second);
    }
    if (provided.size() != 1) {
      fail(file, "registers " + std::to_string(provided.size()) + " " + kind_name +
                     " components, expected exactly one" + (provided.empty() ? "" : " (" + join(provided) + ")"));
    }
    return provided.front();
  }

  if (entries_.count({kind, reference}) != 0) return reference;
  const std::string file_name = "pretext_" + reference + ".so";
  std::vector<std::string> searched;
  for (const auto& directory : search_path_) {
    const fs::path candidate = directory / file_name;
    searched.push_back(directory.string());
    std::error_code error;
    if (!fs::exists(candidate, error)) continue;
    load_library(candidate);
    if (entries_.count({kind, reference}) == 0) {
      fail(candidate, "does not register a " + kind_name + " named '" + reference + "'");
    }
    return reference;
  }
  // No file of that name: a library on the path may register the name under
  // another file name (pretext_jigsaw4.so registering "jigsaw-4"). Loading
  // them all runs their register functions, as `pretext plugins` does.
  const std::vector<std::string> skipped = load_search_path();
  if (entries_.count({kind, reference}) != 0) return reference;
  std::string message = "no " + kind_name + " plugin named '" + reference + "': no file " + file_name + " in " +
                        join(searched) + ", and no library there registers a " + kind_name + " named '" +
                        reference + "'";
  const auto known = names(kind);
  message += " (" + kind_name + "s registered: " + (known.empty() ? std::string("none") : join(known)) + ")";
  for (const auto& error : skipped) message += "\n  skipped " + error;
  throw PluginError(message);
}

const PluginHost::Entry& PluginHost::find(ComponentKind kind, const std::string& name) const {
  const auto found = entries_.find({kind, name});
  if (found == entries_.end()) {
    const auto known = names(kind);
    throw PluginError("no " + std::string(to_string(kind)) + " named '" + name +
                      "' is registered (registered: " + (known.empty() ? std::string("none") : join(known)) + ")");
  }
  return *found->second;
}

std::shared_ptr<Model> PluginHost::make_model(const std::string& name, Options& options) {
  return find(ComponentKind::model, name).make<Model>(options);
}

std::shared_ptr<PretextTask> PluginHost::make_pretext(const std::string& name, Options& options) {
  return find(ComponentKind::pretext, name).make<PretextTask>(options);
}

std::shared_ptr<Loss> PluginHost::make_loss(const std::string& name, Options& options) {
  return find(ComponentKind::loss, name).make<Loss>(options);
}

std::shared_ptr<Stage> PluginHost::make_stage(const std::string& name, Options& options) {
  return find(ComponentKind::stage, name).make<Stage>(options);
}

std::vector<std::string> PluginHost::names(ComponentKind kind) const {
  std::vector<std::string> sorted;
  for (const auto& entry : entries_) {
    if (entry.first.first == kind) sorted.push_back(entry.first.second);
  }
  return sorted;  // the map's (kind, name) order
}

std::string PluginHost::origin(ComponentKind kind, const std::string& name) const { return find(kind, name).origin; }

std::optional<PluginAbi> PluginHost::library_abi(const std::string& origin) const {
  const auto found = abi_by_path_.find(origin);
  if (found == abi_by_path_.end()) return std::nullopt;
  return found->second;
}

}  // namespace pretext
