// One table of a config Document, read through the pretext::Options interface.
//
// Every read validates type and range and records the answer (default or
// given) in Document::resolved() under the same path. finish() rejects keys
// nobody read, suggesting the nearest known key. Error format, always one line:
//
//   quickstart.toml:12:7: transfer.lr: expected a number in [1e-08, 10], found string "fast"
//   quickstart.toml:3:1: unknown key 'transfer.epohcs'; did you mean 'transfer.epochs'?
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/config/document.hpp"
#include "pretext/options.hpp"

namespace pretext::config {

class Section final : public Options {
 public:
  /// `path` is dotted from the root: "" (root), "model", "transfer.loss",
  /// or an element of an array of tables: "pretext.stages[1]".
  /// A path that exists but is not a table is a ConfigError.
  Section(Document& document, std::string path);

  [[nodiscard]] std::string path() const override { return path_; }

  std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t min, std::int64_t max,
                       std::string_view doc) override;
  double number(std::string_view key, double fallback, double min, double max, std::string_view doc) override;
  bool boolean(std::string_view key, bool fallback, std::string_view doc) override;
  std::string string(std::string_view key, std::string_view fallback, std::string_view doc) override;
  std::string choice(std::string_view key, std::string_view fallback, const std::vector<std::string>& choices,
                     std::string_view doc) override;
  std::vector<std::int64_t> integers(std::string_view key, std::vector<std::int64_t> fallback, std::int64_t min,
                                     std::int64_t max, std::string_view doc) override;
  /// A list of strings (e.g. transfer.modes), each one of `choices` when
  /// `choices` is non-empty.
  std::vector<std::string> strings(std::string_view key, std::vector<std::string> fallback,
                                   const std::vector<std::string>& choices, std::string_view doc);
  [[noreturn]] void fail(std::string_view key, std::string_view expected) override;

  /// True when the key is present in the document (does not mark it read).
  [[nodiscard]] bool contains(std::string_view key) const;
  /// A sub-table; marks `key` as read. Absent is fine (an empty section).
  Section child(std::string_view key);
  /// Elements of an array of tables (`[[x.stages]]` or `stages = [{...}, ...]`);
  /// marks `key` as read. Absent gives no sections.
  std::vector<Section> table_array(std::string_view key);
  /// Marks `key` as read without reading it (the caller handles it).
  void mark_read(std::string_view key);

  /// Throws ConfigError for the first key in this table that was never read
  /// (nested tables are the children's business), naming the nearest read key.
  void finish() const;

 private:
  [[nodiscard]] std::string key_path(std::string_view key) const;
  Document* document_;
  std::string path_;
  std::set<std::string, std::less<>> read_;
};

}  // namespace pretext::config
