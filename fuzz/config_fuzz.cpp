// Fuzz target: a run config, TOML text -> the validated RunOptions.
//
// Input: the TOML text; optionally a NUL byte followed by command-line
// overrides, one "key=value" per line, applied as `--set` would apply them
// (the first bad one stops, as in the CLI). This runs what `pretext run` does
// with a config before LibTorch is involved: parse, overrides, read and
// validate every host option, the plugins' reads, reject unknown keys, write
// the resolved config. The plugins are stood in for (see read_like_a_plugin).
//
// Expected: ConfigError (a clear message naming the file or --set, the key and
// what was expected). Anything else escaping — another exception, a crash,
// a leak, UB, a hang — is a bug.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "fuzz/expected_error.hpp"
#include "pipeline/config/document.hpp"
#include "pipeline/config/section.hpp"
#include "common/errors.hpp"
#include "pipeline/config/run_options.hpp"

namespace {

using pretext::config::Section;

template <typename Element>
bool all_of_type(const toml::array& array) {
  for (const toml::node& element : array)
    if (!element.is<Element>()) return false;
  return true;
}

// Plugins read their own keys in [model], [pretext], the loss tables and the
// stages, through the same Section interface. This stand-in reads every key
// that is there, by the type it has and over the widest range, so that every
// reader sees every kind of value and a valid config gets past finish().
void read_like_a_plugin(pretext::config::Document& document, Section& section) {
  const toml::table* table = toml::at_path(std::as_const(document.root()), section.path()).as_table();
  if (table == nullptr) return;
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  for (auto&& [key_node, node] : *table) {
    const std::string key(key_node.str());
    if (node.is_integer()) {
      section.integer(key, 0, kMin, kMax, "plugin integer");
    } else if (node.is_floating_point()) {
      section.number(key, 0.0, std::numeric_limits<double>::lowest(), std::numeric_limits<double>::max(),
                     "plugin number");
    } else if (node.is_boolean()) {
      section.boolean(key, false, "plugin flag");
    } else if (node.is_string()) {
      section.string(key, "", "plugin string");
    } else if (node.is_array() && all_of_type<std::int64_t>(*node.as_array())) {
      section.integers(key, {}, kMin, kMax, "plugin integers");
    } else if (node.is_array() && all_of_type<std::string>(*node.as_array())) {
      section.strings(key, {}, {}, "plugin strings");
    } else if (!node.is_table()) {  // sub-tables are the business of their own sections
      section.mark_read(key);
    }
  }
}

void validate(std::string_view text, std::string_view overrides) {
  pretext::config::Document document = pretext::config::Document::parse(text, "fuzz.toml");
  while (!overrides.empty()) {
    const std::size_t end = overrides.find('\n');
    document.apply_override(overrides.substr(0, end));
    overrides = end == std::string_view::npos ? std::string_view{} : overrides.substr(end + 1);
  }
  pretext::RunSections sections(document);
  const pretext::RunOptions options = pretext::read_run_options(sections);
  for (Section* plugin_section : {&sections.model, &sections.pretext, &sections.pretext_loss, &sections.transfer_loss})
    read_like_a_plugin(document, *plugin_section);
  for (auto* stages : {&sections.pretext_stages, &sections.transfer_stages}) {
    for (Section& stage : *stages) {
      // As the job does before the stage plugin reads the rest.
      if (stage.string("name", "", "stage name").empty()) stage.fail("name", "the name of a stage");
      read_like_a_plugin(document, stage);
    }
  }
  sections.finish();
  // The resolved config is written into every run directory.
  const std::string resolved = document.resolved_text();
  if (resolved.empty() || options.data.path.empty()) __builtin_trap();  // validation let an impossible value by
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\0');
  const std::string_view text = input.substr(0, split);
  const std::string_view overrides = split == std::string_view::npos ? std::string_view{} : input.substr(split + 1);
  try {
    validate(text, overrides);
  } catch (const pretext::ConfigError& error) {
    // Expected: the clear error for a bad config.
    pretext::fuzz::note_expected(error);
  }
  return 0;
}
