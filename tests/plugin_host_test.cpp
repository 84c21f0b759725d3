// PluginHost: loading, ABI checks, registry, resolution and library lifetime,
// against the test plugins in tests/plugins.
#include "pipeline/plugin_host/plugin_host.hpp"

#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/errors.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

const fs::path kTestPlugins = PRETEXT_TEST_PLUGIN_DIR;

fs::path plugin(const std::string& name) { return kTestPlugins / ("pretext_" + name + ".so"); }

/// Answers every read with its default, the way an empty TOML section would.
/// `failure` makes reads throw instead, as a bad config or a broken option reader would.
class DefaultOptions final : public Options {
 public:
  enum class Failure { none, config_error, runtime_error };
  explicit DefaultOptions(Failure failure = Failure::none) : failure_(failure) {}

  [[nodiscard]] std::string path() const override { return "test"; }
  std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t, std::int64_t,
                       std::string_view) override {
    check(key);
    return fallback;
  }
  double number(std::string_view key, double fallback, double, double, std::string_view) override {
    check(key);
    return fallback;
  }
  bool boolean(std::string_view key, bool fallback, std::string_view) override {
    check(key);
    return fallback;
  }
  std::string string(std::string_view key, std::string_view fallback, std::string_view) override {
    check(key);
    return std::string(fallback);
  }
  std::string choice(std::string_view key, std::string_view fallback, const std::vector<std::string>&,
                     std::string_view) override {
    check(key);
    return std::string(fallback);
  }
  std::vector<std::int64_t> integers(std::string_view key, std::vector<std::int64_t> fallback, std::int64_t,
                                     std::int64_t, std::string_view) override {
    check(key);
    return fallback;
  }
  [[noreturn]] void fail(std::string_view key, std::string_view expected) override {
    throw ConfigError("test.toml:1:1: " + std::string(key) + ": expected " + std::string(expected));
  }

 private:
  void check(std::string_view key) {
    if (failure_ == Failure::config_error) fail(key, "a smaller value");
    if (failure_ == Failure::runtime_error) throw std::runtime_error("option reader broke");
  }
  Failure failure_;
};

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\"\ndoes not contain\n\"" << part << "\"";
}

/// The PluginError message of `action`, or a test failure if it throws nothing.
template <class Action>
std::string plugin_error(Action action) {
  try {
    action();
  } catch (const PluginError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected a PluginError";
  return {};
}

/// Sets an environment variable for one test and restores it afterwards.
class ScopedEnvironment {
 public:
  ScopedEnvironment(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnvironment() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnvironment(const ScopedEnvironment&) = delete;
  ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

/// Whether the dynamic loader still has `file` mapped.
bool is_mapped(const fs::path& file) {
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle != nullptr) dlclose(handle);  // RTLD_NOLOAD still took a reference
  return handle != nullptr;
}

TEST(PluginHost, LoadsGoodPluginAndMakesItsComponents) {
  PluginHost host;
  host.load_library(plugin("good"));

  EXPECT_EQ(host.names(ComponentKind::model), std::vector<std::string>{"test_model"});
  EXPECT_EQ(host.names(ComponentKind::loss), std::vector<std::string>{"test_loss"});
  EXPECT_TRUE(host.names(ComponentKind::pretext).empty());
  EXPECT_EQ(host.origin(ComponentKind::model, "test_model"), fs::canonical(plugin("good")).string());

  DefaultOptions options;
  const auto model = host.make_model("test_model", options);
  ASSERT_NE(model, nullptr);
  const auto backbone = model->make_backbone(ModelInput{ImageShape{3, 8, 8}});
  const FeatureShape features = backbone->feature_shape();
  EXPECT_EQ(features.channels, 4);  // the plugin's default
  const auto head = model->make_head(features, 5);
  const torch::Tensor logits = head->forward(backbone->forward(torch::rand({2, 3, 8, 8})));
  EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{2, 5}));

  const auto loss = host.make_loss("test_loss", options);
  const torch::Tensor value = (*loss)(logits, torch::tensor({0, 4}, torch::kLong));
  EXPECT_TRUE(std::isfinite(value.item<double>()));
}

TEST(PluginHost, LoadingTheSameFileTwiceIsANoOp) {
  PluginHost host;
  host.load_library(plugin("good"));
  host.load_library(kTestPlugins / "." / "pretext_good.so");
  EXPECT_EQ(host.names(ComponentKind::model), std::vector<std::string>{"test_model"});
}

TEST(PluginHost, BuiltinsAreStampedAndClashWithPlugins) {
  PluginHost host;
  host.builtins().add_loss("test_loss", [](Options&) -> std::shared_ptr<Loss> { return nullptr; });
  EXPECT_EQ(host.origin(ComponentKind::loss, "test_loss"), "(built-in)");
  EXPECT_THROW(host.builtins().add_loss("test_loss", [](Options&) -> std::shared_ptr<Loss> { return nullptr; }),
               PluginError);
  // The rejected built-in is gone: the next one registers cleanly.
  host.builtins().add_loss("other_loss", [](Options&) -> std::shared_ptr<Loss> { return nullptr; });
  EXPECT_EQ(host.names(ComponentKind::loss), (std::vector<std::string>{"other_loss", "test_loss"}));
  DefaultOptions options;
  EXPECT_TRUE(contains(plugin_error([&] { host.make_loss("other_loss", options); }),
                       "loss 'other_loss' (built-in): factory returned no object"));

  const std::string message = plugin_error([&] { host.load_library(plugin("good")); });
  EXPECT_TRUE(contains(
      message, "duplicate loss 'test_loss': registered by (built-in) and " + fs::canonical(plugin("good")).string()));
}

TEST(PluginHost, MissingFileIsNamed) {
  PluginHost host;
  const std::string message = plugin_error([&] { host.load_library(plugin("does_not_exist")); });
  EXPECT_TRUE(contains(message, plugin("does_not_exist").string()));
  EXPECT_TRUE(contains(message, "no such file"));
}

TEST(PluginHost, TextFileIsNotALibrary) {
  const fs::path file = fs::path(::testing::TempDir()) / "pretext_not_a_library.so";
  std::ofstream(file) << "this is a text file, long enough to be mistaken for something bigger than an ELF "
                         "header if nobody looked at the magic bytes at the start of it\n";
  PluginHost host;
  const std::string message = plugin_error([&] { host.load_library(file); });
  EXPECT_TRUE(contains(message, file.filename().string()));
  EXPECT_TRUE(contains(message, "not a shared library"));
  fs::remove(file);
}

TEST(PluginHost, MissingRegisterSymbolIsNamed) {
  PluginHost host;
  const std::string message = plugin_error([&] { host.load_library(plugin("no_register")); });
  EXPECT_TRUE(contains(message, "pretext_no_register.so"));
  EXPECT_TRUE(contains(message, "pretext_plugin_register"));
  EXPECT_FALSE(contains(message, "pretext_plugin_abi"));
}

TEST(PluginHost, ApiMajorMismatchNamesExpectedAndFound) {
  PluginHost host;
  const std::string message = plugin_error([&] { host.load_library(plugin("bad_abi")); });
  EXPECT_TRUE(contains(message, "pretext_bad_abi.so: plugin API major version mismatch: expected " +
                                    std::to_string(kPluginApiMajor) + ", found " +
                                    std::to_string(kPluginApiMajor + 1)));
  EXPECT_TRUE(host.names(ComponentKind::loss).empty());
}

TEST(PluginHost, TorchVersionMismatchNamesBothVersions) {
  PluginHost host;
  const std::string message = plugin_error([&] { host.load_library(plugin("torch_mismatch")); });
  EXPECT_TRUE(contains(message, "pretext_torch_mismatch.so"));
  EXPECT_TRUE(contains(message, std::string("LibTorch version mismatch: expected ") + TORCH_VERSION + ", found 0.0.0"));
  EXPECT_TRUE(host.names(ComponentKind::loss).empty());
}

TEST(PluginHost, DuplicateNameNamesBothFilesAndKeepsNothingOfTheLoser) {
  PluginHost host;
  host.load_library(plugin("dup_a"));
  const std::string message = plugin_error([&] { host.load_library(plugin("dup_b")); });
  EXPECT_TRUE(contains(message, "duplicate loss 'dup_loss': registered by " + fs::canonical(plugin("dup_a")).string() +
                                    " and " + fs::canonical(plugin("dup_b")).string()));
  EXPECT_TRUE(host.names(ComponentKind::model).empty());  // dup_b_model was staged, not committed
  EXPECT_EQ(host.origin(ComponentKind::loss, "dup_loss"), fs::canonical(plugin("dup_a")).string());
}

TEST(PluginHost, ThrowingRegistrationIsWrappedAndRolledBack) {
  PluginHost host;
  const std::string message = plugin_error([&] { host.load_library(plugin("throws")); });
  EXPECT_TRUE(contains(message, "pretext_throws.so: registration failed: no GPU found for throws_loss"));
  EXPECT_TRUE(host.names(ComponentKind::loss).empty());
}

TEST(PluginHost, FactoryErrors) {
  PluginHost host;
  host.load_library(plugin("good"));

  DefaultOptions bad_config(DefaultOptions::Failure::config_error);
  EXPECT_THROW(host.make_model("test_model", bad_config), ConfigError);

  DefaultOptions broken(DefaultOptions::Failure::runtime_error);
  const std::string message = plugin_error([&] { host.make_model("test_model", broken); });
  EXPECT_TRUE(contains(message, "model plugin 'test_model' (" + fs::canonical(plugin("good")).string() +
                                    "): factory: option reader broke"));

  DefaultOptions options;
  EXPECT_TRUE(contains(plugin_error([&] { host.make_loss("no_such_loss", options); }),
                       "no loss named 'no_such_loss' is registered (registered: test_loss)"));
}

TEST(PluginHost, SearchPathOrder) {
  ScopedEnvironment environment("PRETEXT_PLUGIN_PATH", "/env/one::/env/two");
  PluginHost host;
  host.set_search_path({"/extra"});
  const std::vector<fs::path> expected{"/extra", "/env/one", "/env/two", PRETEXT_BUILTIN_PLUGIN_DIR};
  EXPECT_EQ(host.search_path(), expected);
}

TEST(PluginHost, ResolvesByNameThroughSearchPath) {
  PluginHost host;
  host.set_search_path({kTestPlugins});
  EXPECT_EQ(host.resolve(ComponentKind::loss, "tiny_loss"), "tiny_loss");
  EXPECT_EQ(host.origin(ComponentKind::loss, "tiny_loss"), fs::canonical(plugin("tiny_loss")).string());
  EXPECT_EQ(host.resolve(ComponentKind::loss, "tiny_loss"), "tiny_loss");  // now from the registry
}

TEST(PluginHost, ResolvesByNameThroughEnvironment) {
  ScopedEnvironment environment("PRETEXT_PLUGIN_PATH", "/nonexistent:" + kTestPlugins.string());
  PluginHost host;
  EXPECT_EQ(host.resolve(ComponentKind::loss, "tiny_loss"), "tiny_loss");
}

TEST(PluginHost, ResolvesByExplicitPath) {
  PluginHost host;
  EXPECT_EQ(host.resolve(ComponentKind::model, plugin("good").string()), "test_model");
  EXPECT_EQ(host.resolve(ComponentKind::loss, plugin("good").string()), "test_loss");
  EXPECT_TRUE(contains(plugin_error([&] { host.resolve(ComponentKind::pretext, plugin("good").string()); }),
                       "registers 0 pretext components, expected exactly one"));
}

TEST(PluginHost, FileFoundByNameMustRegisterThatName) {
  PluginHost host;
  host.set_search_path({kTestPlugins});
  EXPECT_TRUE(contains(plugin_error([&] { host.resolve(ComponentKind::model, "good"); }),
                       "pretext_good.so: does not register a model named 'good'"));
}

TEST(PluginHost, UnknownNameListsSearchedDirectories) {
  ScopedEnvironment environment("PRETEXT_PLUGIN_PATH", "");
  PluginHost host;
  host.set_search_path({"/first/dir", kTestPlugins});
  const std::string message = plugin_error([&] { host.resolve(ComponentKind::model, "missing"); });
  EXPECT_TRUE(contains(message, "no model plugin named 'missing': no file pretext_missing.so in /first/dir, " +
                                    kTestPlugins.string() + ", " + PRETEXT_BUILTIN_PLUGIN_DIR +
                                    ", and no library there registers a model named 'missing'"));
  // What is registered, and the libraries that could not be looked into.
  EXPECT_TRUE(contains(message, "models registered: "));
  EXPECT_TRUE(contains(message, "test_model"));
  EXPECT_TRUE(contains(message, "skipped plugin " + plugin("bad_abi").string() +
                                    ": plugin API major version mismatch"));
}

TEST(PluginHost, FindsALibraryByTheNameItRegisters) {
  // pretext_misnamed.so registers "renamed-loss": no file is called
  // pretext_renamed-loss.so, and the host still finds it.
  ScopedEnvironment environment("PRETEXT_PLUGIN_PATH", "");
  PluginHost host;
  host.set_search_path({kTestPlugins});
  EXPECT_EQ(host.resolve(ComponentKind::loss, "renamed-loss"), "renamed-loss");
  EXPECT_EQ(host.origin(ComponentKind::loss, "renamed-loss"), fs::canonical(plugin("misnamed")).string());
  DefaultOptions options;
  EXPECT_NE(host.make_loss("renamed-loss", options), nullptr);
}

TEST(PluginHost, APluginBuiltForThePreviousApiIsRefusedWithAdvice) {
  // API 2.0 changed make_views; a 1.x plugin must be rebuilt (no compatibility path).
  PluginHost host;
  const std::string message = plugin_error([&] { host.load_library(plugin("api_v1")); });
  EXPECT_TRUE(contains(message, "pretext_api_v1.so: plugin API major version mismatch: expected " +
                                    std::to_string(kPluginApiMajor) + ", found 1 (built against an older SDK: "
                                    "rebuild it against this one; since 2.0 make_views takes ViewSlots)"));
  EXPECT_TRUE(host.names(ComponentKind::pretext).empty());
}

TEST(PluginHost, MadeObjectsKeepTheirLibraryLoaded) {
  const fs::path file = fs::canonical(plugin("good"));
  ASSERT_FALSE(is_mapped(file));
  std::shared_ptr<Model> model;
  std::shared_ptr<Loss> loss;
  {
    PluginHost host;
    host.load_library(file);
    DefaultOptions options;
    model = host.make_model("test_model", options);
    loss = host.make_loss("test_loss", options);
  }
  ASSERT_TRUE(is_mapped(file));
  {
    // Virtual calls into the plugin's code after the host is gone.
    const auto backbone = model->make_backbone(ModelInput{ImageShape{1, 4, 4}});
    const auto head = model->make_head(backbone->feature_shape(), 3);
    const torch::Tensor logits = head->forward(backbone->forward(torch::rand({2, 1, 4, 4})));
    EXPECT_TRUE(std::isfinite((*loss)(logits, torch::tensor({0, 2}, torch::kLong)).item<double>()));
  }
  model.reset();
  EXPECT_TRUE(is_mapped(file));  // the loss still holds it
  loss.reset();
  // Proves the library can be unloaded at all, so the checks above mean something.
  EXPECT_FALSE(is_mapped(file));
}

}  // namespace
}  // namespace pretext
