// A parsed TOML config plus command-line overrides, and the resolved config
// that validation fills in as it reads.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include <toml++/toml.h>

namespace pretext::config {

class Document {
 public:
  /// Parses `file`. A syntax error throws ConfigError "FILE:LINE:COL: <toml++ description>".
  /// A missing or unreadable file throws ConfigError naming it.
  static Document load(const std::filesystem::path& file);
  /// Parses `text` as if it came from a file called `source_name` (for tests and --set).
  static Document parse(std::string_view text, std::string source_name);

  /// Applies "a.b.c=value" from the command line. The value is parsed as a TOML
  /// value (so 3, 0.5, true, "x", [1, 2] work); if that fails it is taken as a
  /// bare string (so paths need no quotes). Intermediate tables are created as
  /// needed. Whether the key is known is checked later, by Section::finish(),
  /// whose error then names "--set a.b.c=value" as the source.
  /// Throws ConfigError for a malformed assignment (no '=', empty key, a key
  /// path that runs through a non-table value).
  void apply_override(std::string_view assignment);

  [[nodiscard]] toml::table& root() { return root_; }
  [[nodiscard]] const std::string& source_name() const { return source_name_; }

  /// "FILE:LINE:COL" for the node at dotted `key_path`, or "--set k=v" when it
  /// came from an override, or just "FILE" when the key is absent.
  [[nodiscard]] std::string where(const std::string& key_path) const;

  /// The config as validated: every key that was read, with defaults filled in.
  [[nodiscard]] toml::table& resolved() { return resolved_; }
  [[nodiscard]] std::string resolved_text() const;

 private:
  std::string source_name_;
  toml::table root_;
  toml::table resolved_;
  std::map<std::string, std::string> overrides_;  // dotted key -> original "--set" text
};

}  // namespace pretext::config
