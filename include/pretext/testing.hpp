// pretext test kit: test a plugin the way the host will use it, without the host.
//
//   const auto plugin = pretext::testing::load_plugin(PRETEXT_PLUGIN_FILE);  // first: see LoadedPlugin
//   pretext::testing::FakeOptions options({{"both_views", "false"}});
//   auto task = plugin.registrar.make_pretext("upside_down", options);
//   pretext::testing::ViewBuffers views(task->views_per_image(), shape);
//   task->make_views(image.view(), -1, rng, views.slots());
//   EXPECT_TRUE(views.all_written());
//
// Header-only and free of any test framework: use it with GoogleTest (see
// pretext_add_plugin_test() in the installed CMake package) or anything else.
// Link Boost.Filesystem and libdl (Boost.DLL loads the plugin) and LibTorch.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <boost/dll/shared_library.hpp>

#include "pretext/sdk.hpp"
#include "pretext/testing_training.hpp"

namespace pretext::testing {

// ----------------------------------------------------------- FakeOptions ----

/// A value a test sets: text, parsed as the key's read expects ("false", "3",
/// "0.5", "1,2,3" or "[1, 2, 3]"), or a typed value. A class rather than a
/// bare std::variant so that "false" stays text instead of turning into a bool.
class OptionValue {
 public:
  using Value = std::variant<std::string, std::int64_t, double, bool, std::vector<std::int64_t>>;

  OptionValue(const char* text) : value_(std::string(text)) {}  // NOLINT(google-explicit-constructor): map literals
  OptionValue(std::string text) : value_(std::move(text)) {}    // NOLINT(google-explicit-constructor)
  template <class Integer, std::enable_if_t<std::is_integral_v<Integer> && !std::is_same_v<Integer, bool>, int> = 0>
  OptionValue(Integer value) : value_(static_cast<std::int64_t>(value)) {}      // NOLINT(google-explicit-constructor)
  OptionValue(double value) : value_(value) {}                                  // NOLINT(google-explicit-constructor)
  OptionValue(bool value) : value_(value) {}                                    // NOLINT(google-explicit-constructor)
  OptionValue(std::vector<std::int64_t> values) : value_(std::move(values)) {}  // NOLINT(google-explicit-constructor)
  OptionValue(std::initializer_list<std::int64_t> values)  // NOLINT(google-explicit-constructor): {"k", {1, 2}}
      : value_(std::vector<std::int64_t>(values)) {}

  [[nodiscard]] const Value& value() const { return value_; }

  /// As a TOML value would be written, for messages.
  [[nodiscard]] std::string text() const {
    if (const auto* text = std::get_if<std::string>(&value_)) return '"' + *text + '"';
    if (const auto* value = std::get_if<std::int64_t>(&value_)) return std::to_string(*value);
    if (const auto* value = std::get_if<double>(&value_)) {
      std::ostringstream out;
      out << *value;
      return out.str();
    }
    if (const auto* value = std::get_if<bool>(&value_)) return *value ? "true" : "false";
    std::string list;
    for (const auto v : std::get<std::vector<std::int64_t>>(value_))
      list += (list.empty() ? "" : ", ") + std::to_string(v);
    return "[" + list + "]";
  }

 private:
  Value value_;
};

/// pretext::Options over a map set by the test. Reads convert and check the
/// value as the host does (range, choices) and throw std::invalid_argument
/// naming the key, the value and what was expected; a key not set gives the
/// read's fallback. Keys set but never read are in unread_keys(): the host
/// rejects those in a config, so a test can catch a misspelt key as well.
class FakeOptions final : public Options {
 public:
  FakeOptions() = default;
  /// FakeOptions options({{"both_views", "false"}, {"size", 32}}). A list, not
  /// a std::map: a map argument would make `({{"k", "v"}})` ambiguous (the
  /// inner braces would also fit map's iterator-pair constructor).
  explicit FakeOptions(std::initializer_list<std::pair<const std::string, OptionValue>> values,
                       std::string path = "pretext")
      : values_(values), path_(std::move(path)) {}

  /// Sets (or replaces) one key.
  void set(const std::string& key, OptionValue value) { values_.insert_or_assign(key, std::move(value)); }

  [[nodiscard]] std::string path() const override { return path_; }
  void set_path(std::string path) { path_ = std::move(path); }

  std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t min, std::int64_t max,
                       std::string_view /*doc*/) override {
    const OptionValue* set = read(key);
    if (set == nullptr) return fallback;
    const std::string expected = "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    const auto value = as<std::int64_t>(*set, parse_integer);
    if (!value || *value < min || *value > max) reject(key, *set, expected);
    return *value;
  }

  double number(std::string_view key, double fallback, double min, double max, std::string_view /*doc*/) override {
    const OptionValue* set = read(key);
    if (set == nullptr) return fallback;
    const std::string expected = "a number in [" + OptionValue(min).text() + ", " + OptionValue(max).text() + "]";
    auto value = as<double>(*set, parse_number);
    if (const auto* whole = std::get_if<std::int64_t>(&set->value())) value = static_cast<double>(*whole);  // as TOML
    if (!value || !(*value >= min && *value <= max)) reject(key, *set, expected);
    return *value;
  }

  bool boolean(std::string_view key, bool fallback, std::string_view /*doc*/) override {
    const OptionValue* set = read(key);
    if (set == nullptr) return fallback;
    const auto value = as<bool>(*set, [](const std::string& text) -> std::optional<bool> {
      if (text == "true") return true;
      if (text == "false") return false;
      return std::nullopt;
    });
    if (!value) reject(key, *set, "true or false");
    return *value;
  }

  std::string string(std::string_view key, std::string_view fallback, std::string_view /*doc*/) override {
    const OptionValue* set = read(key);
    if (set == nullptr) return std::string(fallback);
    const auto* text = std::get_if<std::string>(&set->value());
    if (text == nullptr) reject(key, *set, "a string");
    return *text;
  }

  std::string choice(std::string_view key, std::string_view fallback, const std::vector<std::string>& choices,
                     std::string_view doc) override {
    std::string value = string(key, fallback, doc);
    if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
      std::string expected = "one of";
      for (const auto& choice : choices) expected += (&choice == &choices.front() ? " \"" : ", \"") + choice + '"';
      reject(key, value, expected);  // the set value, or a fallback that is not among the choices
    }
    return value;
  }

  std::vector<std::int64_t> integers(std::string_view key, std::vector<std::int64_t> fallback, std::int64_t min,
                                     std::int64_t max, std::string_view /*doc*/) override {
    const OptionValue* set = read(key);
    if (set == nullptr) return fallback;
    const std::string expected =
        "a list of integers, each in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    const auto values = as<std::vector<std::int64_t>>(*set, parse_integers);
    if (!values || std::any_of(values->begin(), values->end(), [&](auto v) { return v < min || v > max; }))
      reject(key, *set, expected);
    return *values;
  }

  [[noreturn]] void fail(std::string_view key, std::string_view expected) override {
    const OptionValue* set = read(key);  // the task looked at the key: it is not a typo
    throw std::invalid_argument(qualified(key) + (set != nullptr ? " = " + set->text() : std::string()) + ": " +
                                std::string(expected));
  }

  /// Keys set but never read, sorted: a test expects none.
  [[nodiscard]] std::vector<std::string> unread_keys() const {
    std::vector<std::string> unread;
    for (const auto& [key, value] : values_)
      if (read_.count(key) == 0) unread.push_back(key);
    return unread;
  }
  /// Every key a read asked for, set or not.
  [[nodiscard]] const std::set<std::string>& read_keys() const { return read_; }

 private:
  const OptionValue* read(std::string_view key) {
    read_.emplace(key);
    const auto found = values_.find(std::string(key));
    return found == values_.end() ? nullptr : &found->second;
  }

  [[nodiscard]] std::string qualified(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  [[noreturn]] void reject(std::string_view key, const OptionValue& set, const std::string& expected) const {
    throw std::invalid_argument(qualified(key) + " = " + set.text() + ": expected " + expected);
  }

  /// The typed value if it is a T, else the text parsed by `parse`, else nothing.
  template <class T, class Parse>
  static std::optional<T> as(const OptionValue& set, Parse parse) {
    if (const auto* typed = std::get_if<T>(&set.value())) return *typed;
    if (const auto* text = std::get_if<std::string>(&set.value())) return parse(*text);
    return std::nullopt;
  }

  template <class T>
  static std::optional<T> parse_whole(std::string_view text) {  // all of `text`, nothing else
    T value{};
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
  }
  static std::optional<std::int64_t> parse_integer(const std::string& text) { return parse_whole<std::int64_t>(text); }
  static std::optional<double> parse_number(const std::string& text) { return parse_whole<double>(text); }

  /// "1,2,3" or "[1, 2, 3]"; "[]" is an empty list.
  static std::optional<std::vector<std::int64_t>> parse_integers(const std::string& text) {
    std::string items;
    std::copy_if(text.begin(), text.end(), std::back_inserter(items), [](char c) { return c != ' '; });
    if (items.size() >= 2 && items.front() == '[' && items.back() == ']') items = items.substr(1, items.size() - 2);
    std::vector<std::int64_t> values;
    for (std::size_t begin = 0; !items.empty() && begin <= items.size();) {
      const std::size_t end = std::min(items.find(',', begin), items.size());
      const auto value = parse_whole<std::int64_t>(std::string_view(items).substr(begin, end - begin));
      if (!value) return std::nullopt;
      values.push_back(*value);
      begin = end + 1;
    }
    return values;
  }

  std::map<std::string, OptionValue> values_;
  std::string path_ = "pretext";
  std::set<std::string> read_;
};

// -------------------------------------------------------- FakeRegistrar ----

/// pretext::Registrar that keeps every factory by kind and name, so a test can
/// see what a plugin registers and make each component with FakeOptions.
class FakeRegistrar final : public Registrar {
 public:
  void add_model(const std::string& name, ModelFactory factory) override { add(models_, "model", name, factory); }
  void add_pretext(const std::string& name, PretextFactory factory) override {
    add(pretexts_, "pretext", name, factory);
  }
  void add_loss(const std::string& name, LossFactory factory) override { add(losses_, "loss", name, factory); }
  void add_stage(const std::string& name, StageFactory factory) override { add(stages_, "stage", name, factory); }

  [[nodiscard]] std::vector<std::string> names_of_models() const { return names(models_); }
  [[nodiscard]] std::vector<std::string> names_of_pretexts() const { return names(pretexts_); }
  [[nodiscard]] std::vector<std::string> names_of_losses() const { return names(losses_); }
  [[nodiscard]] std::vector<std::string> names_of_stages() const { return names(stages_); }

  /// Calls the factory registered as `name`; std::out_of_range naming the known names if none.
  std::shared_ptr<Model> make_model(const std::string& name, Options& options) const {
    return make(models_, "model", name, options);
  }
  std::shared_ptr<PretextTask> make_pretext(const std::string& name, Options& options) const {
    return make(pretexts_, "pretext", name, options);
  }
  std::shared_ptr<Loss> make_loss(const std::string& name, Options& options) const {
    return make(losses_, "loss", name, options);
  }
  std::shared_ptr<Stage> make_stage(const std::string& name, Options& options) const {
    return make(stages_, "stage", name, options);
  }

 private:
  template <class Factory>
  static void add(std::map<std::string, Factory>& table, const char* kind, const std::string& name, Factory& factory) {
    if (!factory) throw std::invalid_argument(std::string(kind) + " '" + name + "' registered with an empty factory");
    if (!table.emplace(name, std::move(factory)).second)
      throw std::invalid_argument(std::string(kind) + " '" + name + "' registered twice");
  }

  template <class Factory>
  static std::vector<std::string> names(const std::map<std::string, Factory>& table) {
    std::vector<std::string> names;
    for (const auto& [name, factory] : table) names.push_back(name);
    return names;
  }

  template <class Factory>
  static typename Factory::result_type make(const std::map<std::string, Factory>& table, const char* kind,
                                            const std::string& name, Options& options) {
    const auto found = table.find(name);
    if (found == table.end()) {
      std::string known;
      for (const auto& other : names(table)) known += (known.empty() ? "" : ", ") + other;
      throw std::out_of_range(std::string("no ") + kind + " named '" + name +
                              "' (registered: " + (known.empty() ? "none" : known) + ")");
    }
    auto made = found->second(options);
    if (!made) throw std::runtime_error(std::string(kind) + " '" + name + "': the factory returned null");
    return made;
  }

  std::map<std::string, ModelFactory> models_;
  std::map<std::string, PretextFactory> pretexts_;
  std::map<std::string, LossFactory> losses_;
  std::map<std::string, StageFactory> stages_;
};

// ------------------------------------------------------------ test images ----

/// A planar CHW float image that owns its pixels.
struct TestImage {
  ImageShape shape;
  std::vector<float> pixels;

  [[nodiscard]] ConstImageView view() const { return {pixels.data(), shape}; }
  [[nodiscard]] float at(int c, int y, int x) const { return view().at(c, y, x); }
};

/// Pixels in [0, 1) drawn from SampleRng(seed, ...): the same on every machine,
/// and distinct enough that a flip, a transpose or an off-by-one shows.
inline TestImage make_test_image(ImageShape shape, std::uint64_t seed) {
  SampleRng rng(seed, 0, 0, 0, 0);
  TestImage image{shape, std::vector<float>(shape.numel())};
  for (float& pixel : image.pixels) pixel = static_cast<float>(rng.uniform());
  return image;
}

// ------------------------------------------------------------ ViewBuffers ----

/// Memory for one make_views call: `count` views of `shape` and their labels.
/// Pixels start as a NaN marker and labels as INT64_MIN, the host's own
/// "not written" values, so all_written() / all_labelled() check what the
/// host checks after every call (the host stops a run that fails either).
class ViewBuffers {
 public:
  ViewBuffers(int count, ImageShape shape) : count_(count), shape_(shape) {
    if (count < 0) throw std::invalid_argument("ViewBuffers: negative view count " + std::to_string(count));
    reset();
  }

  /// Slots over this memory, to pass to make_views; valid while *this lives.
  ViewSlots slots() {
    views_.clear();
    for (int i = 0; i < count_; ++i)
      views_.push_back({pixels_.data() + static_cast<std::size_t>(i) * shape_.numel(), shape_});
    return {views_.data(), labels_.data(), count_};
  }

  /// Back to "nothing written", to reuse the buffers for another call.
  void reset() {
    pixels_.assign(static_cast<std::size_t>(count_) * shape_.numel(), unwritten());
    labels_.assign(static_cast<std::size_t>(count_), kUnsetLabel);
  }

  [[nodiscard]] int size() const { return count_; }
  [[nodiscard]] ImageShape shape() const { return shape_; }
  [[nodiscard]] ConstImageView view(int i) const {
    return {pixels_.data() + static_cast<std::size_t>(check(i)) * shape_.numel(), shape_};
  }
  [[nodiscard]] std::int64_t label(int i) const { return labels_[static_cast<std::size_t>(check(i))]; }
  [[nodiscard]] const std::vector<std::int64_t>& labels() const { return labels_; }

  /// Every element of every view was written.
  [[nodiscard]] bool all_written() const {
    return std::none_of(pixels_.begin(), pixels_.end(), [](float pixel) { return is_unwritten(pixel); });
  }
  /// Every view has a label >= 0.
  [[nodiscard]] bool all_labelled() const {
    return std::all_of(labels_.begin(), labels_.end(), [](std::int64_t label) { return label >= 0; });
  }

  /// The views as a (count, C, H, W) float tensor and the labels as (count) int64: a batch for train_step.
  [[nodiscard]] torch::Tensor images_tensor() const {
    return torch::tensor(pixels_).reshape({count_, shape_.channels, shape_.height, shape_.width});
  }
  [[nodiscard]] torch::Tensor labels_tensor() const { return torch::tensor(labels_, torch::kInt64); }

 private:
  // A quiet NaN with a payload no arithmetic produces, as the host uses.
  static constexpr std::uint32_t kUnwrittenBits = 0x7FC5A5A5U;
  static constexpr std::int64_t kUnsetLabel = std::numeric_limits<std::int64_t>::min();

  static float unwritten() {
    float value = 0.0F;
    std::memcpy(&value, &kUnwrittenBits, sizeof value);
    return value;
  }
  static bool is_unwritten(float value) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    return bits == kUnwrittenBits;
  }

  [[nodiscard]] int check(int i) const {
    if (i < 0 || i >= count_)
      throw std::out_of_range("ViewBuffers: no view " + std::to_string(i) + " of " + std::to_string(count_));
    return i;
  }

  int count_;
  ImageShape shape_;
  std::vector<float> pixels_;
  std::vector<std::int64_t> labels_;
  std::vector<ImageView> views_;  // rebuilt by slots(), so a copy of *this points at its own pixels
};

// ------------------------------------------------------------ load_plugin ----

/// A plugin loaded as the host loads it, with what it registered.
///
/// Lifetime: everything the plugin made (tasks, models, losses, stages, and
/// anything they return) runs code from the library, so it must be destroyed
/// before the LoadedPlugin. In a test, declare the LoadedPlugin first: locals
/// are destroyed in reverse order. `library` is declared before `registrar`
/// for the same reason: the factories are plugin code too.
struct LoadedPlugin {
  std::string file;
  boost::dll::shared_library library;
  FakeRegistrar registrar;
};

namespace detail {

[[noreturn]] inline void plugin_error(const std::string& file, const std::string& what) {
  throw std::runtime_error("load_plugin(" + file + "): " + what);
}

/// The host's checks of the ABI descriptor. Only `magic` and `size` are
/// trusted until they pass: the plugin may be built against another SDK.
inline void check_abi(const std::string& file, const unsigned char* raw) {
  const auto field = [&](std::size_t offset) {
    std::uint32_t value = 0;
    std::memcpy(&value, raw + offset, sizeof value);
    return value;
  };
  const auto expected = [](auto want, auto found) {
    return "expected " + std::to_string(want) + ", found " + std::to_string(found);
  };
  if (field(offsetof(PluginAbi, magic)) != kPluginAbiMagic)
    plugin_error(file, "pretext_plugin_abi is not a pretext ABI descriptor (wrong magic)");
  if (field(offsetof(PluginAbi, size)) < offsetof(PluginAbi, api_minor))
    plugin_error(file, "ABI descriptor too short to hold api_major");
  const std::uint32_t major = field(offsetof(PluginAbi, api_major));
  if (major != kPluginApiMajor)
    plugin_error(file, "plugin API major version mismatch: " + expected(kPluginApiMajor, major) +
                           (major < kPluginApiMajor ? " (built against an older SDK: rebuild it against this one)"
                                                    : " (built against a newer SDK than this one)"));
  // Same major: the descriptor has this SDK's layout.
  if (field(offsetof(PluginAbi, size)) < sizeof(PluginAbi))
    plugin_error(
        file, "ABI descriptor too short, in bytes: " + expected(sizeof(PluginAbi), field(offsetof(PluginAbi, size))));
  PluginAbi abi{};
  std::memcpy(&abi, raw, sizeof abi);
  if (abi.api_minor > kPluginApiMinor)
    plugin_error(file, "plugin API minor version too new: " + expected(kPluginApiMinor, abi.api_minor));
  const std::string torch_version(abi.torch_version, strnlen(abi.torch_version, sizeof abi.torch_version));
  if (torch_version != TORCH_VERSION)
    plugin_error(file,
                 "LibTorch version mismatch: expected " + std::string(TORCH_VERSION) + ", found " + torch_version);
  if (abi.cxx11_abi != static_cast<std::uint32_t>(_GLIBCXX_USE_CXX11_ABI))
    plugin_error(file, "_GLIBCXX_USE_CXX11_ABI mismatch: " + expected(_GLIBCXX_USE_CXX11_ABI, abi.cxx11_abi));
}

}  // namespace detail

/// Loads a built plugin (rtld_now | rtld_local, as the host does), checks its
/// two exports and its ABI descriptor, and calls its register function with a
/// FakeRegistrar. Throws std::runtime_error naming the file and the problem.
inline LoadedPlugin load_plugin(const std::string& file) {
  LoadedPlugin plugin;
  plugin.file = file;
  try {
    // rtld_now: an unresolved symbol fails here, not mid-test.
    plugin.library.load(boost::dll::fs::path(file),
                        boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& error) {
    detail::plugin_error(file, std::string("cannot load: ") + error.what());
  }
  for (const char* symbol : {"pretext_plugin_abi", "pretext_plugin_register"})
    if (!plugin.library.has(symbol))
      detail::plugin_error(file, std::string("does not export ") + symbol + " (no PRETEXT_PLUGIN(...) in it?)");
  detail::check_abi(file, &plugin.library.get<const unsigned char>("pretext_plugin_abi"));
  plugin.library.get<void(Registrar&)>("pretext_plugin_register")(plugin.registrar);
  return plugin;
}

}  // namespace pretext::testing
