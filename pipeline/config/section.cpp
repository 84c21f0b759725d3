#include "pipeline/config/section.hpp"

#include <algorithm>
#include <functional>
#include <iterator>
#include <limits>
#include <sstream>
#include <tuple>
#include <utility>

#include "pipeline/config/suggest.hpp"
#include "common/errors.hpp"

namespace pretext::config {
namespace {

constexpr std::size_t kLongestShownValue = 60;

// The value as the user would write it in TOML, kept to one short line.
std::string repr(const toml::node& node) {
  std::ostringstream out;
  // format_flags::none: plain "double-quoted" strings and inline arrays, no
  // multi-line or literal strings, so the text is one line and unambiguous.
  out << toml::toml_formatter{node, toml::format_flags::none};
  std::string text = out.str();
  std::replace(text.begin(), text.end(), '\n', ' ');
  if (text.size() > kLongestShownValue) text = text.substr(0, kLongestShownValue - 3) + "...";
  return text;
}

// "string \"fast\"", "float 2.5", "a table": what the user wrote, for type mismatches.
std::string describe(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array " + repr(node);
    case toml::node_type::string: return "string " + repr(node);
    case toml::node_type::integer: return "integer " + repr(node);
    case toml::node_type::floating_point: return "float " + repr(node);
    case toml::node_type::boolean: return "boolean " + repr(node);
    case toml::node_type::date: return "date " + repr(node);
    case toml::node_type::time: return "time " + repr(node);
    case toml::node_type::date_time: return "date-time " + repr(node);
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string format_number(double value) {
  std::ostringstream out;
  out << value;  // default %g-like precision: "1e-08", "10", "0.5"
  return out.str();
}

std::string integer_range(std::int64_t min, std::int64_t max) {
  const bool low_open = min == std::numeric_limits<std::int64_t>::min();
  const bool high_open = max == std::numeric_limits<std::int64_t>::max();
  if (low_open && high_open) return "";
  if (low_open) return " <= " + std::to_string(max);
  if (high_open) return " >= " + std::to_string(min);
  return " in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
}

std::string number_range(double min, double max) {
  const bool low_open = min <= std::numeric_limits<double>::lowest();
  const bool high_open = max >= std::numeric_limits<double>::max();
  if (low_open && high_open) return "";
  if (low_open) return " <= " + format_number(max);
  if (high_open) return " >= " + format_number(min);
  return " in [" + format_number(min) + ", " + format_number(max) + "]";
}

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : ", ") + item;
  return text;
}

std::string one_of(const std::vector<std::string>& choices) { return "one of " + join(choices); }

bool is_choice(const std::vector<std::string>& choices, const std::string& value) {
  return std::find(choices.begin(), choices.end(), value) != choices.end();
}

std::string element_path(const std::string& array_path, std::size_t index) {
  return array_path + "[" + std::to_string(index) + "]";
}

// The table at `path` inside the resolved config, created on demand. Anything
// in the way is replaced: resolved only ever mirrors what the sections read.
toml::table& resolved_table(toml::table& resolved_root, const std::string& path) {
  if (path.empty()) return resolved_root;
  toml::node* current = &resolved_root;
  const toml::path components{path};
  for (auto part = components.begin(); part != components.end(); ++part) {
    const auto next = std::next(part);
    const bool want_array = next != components.end() && next->type() == toml::path_component_type::array_index;
    const toml::node_type wanted = want_array ? toml::node_type::array : toml::node_type::table;
    if (part->type() == toml::path_component_type::key) {
      toml::table& table = *current->as_table();
      const toml::node* child = table.get(part->key());
      if (child == nullptr || child->type() != wanted) {
        if (want_array) {
          table.insert_or_assign(part->key(), toml::array{});
        } else {
          table.insert_or_assign(part->key(), toml::table{});
        }
      }
      current = table.get(part->key());
    } else {
      toml::array& array = *current->as_array();
      while (array.size() <= part->index()) array.push_back(toml::table{});
      const auto at = array.cbegin() + static_cast<std::ptrdiff_t>(part->index());
      if (array.get(part->index())->type() != wanted) {
        if (want_array) {
          array.replace(at, toml::array{});
        } else {
          array.replace(at, toml::table{});
        }
      }
      current = array.get(part->index());
    }
  }
  return *current->as_table();
}

const toml::table* document_table(Document& document, const std::string& path) {
  const toml::table& root = document.root();
  if (path.empty()) return &root;
  return toml::at_path(root, path).as_table();
}

const toml::node* find(Document& document, const std::string& path, std::string_view key) {
  const toml::table* table = document_table(document, path);
  return table != nullptr ? table->get(key) : nullptr;
}

template <typename Value>
void record(Document& document, const std::string& path, std::string_view key, Value&& value) {
  resolved_table(document.resolved(), path).insert_or_assign(key, std::forward<Value>(value));
}

[[noreturn]] void throw_expected(Document& document, const std::string& key_path, const std::string& expected,
                                 const std::string& found) {
  throw ConfigError(document.where(key_path) + ": " + key_path + ": expected " + expected + ", found " + found);
}

}  // namespace

Section::Section(Document& document, std::string path) : document_(&document), path_(std::move(path)) {
  if (!path_.empty()) {
    const toml::node* node = toml::at_path(std::as_const(document_->root()), path_).node();
    if (node != nullptr && !node->is_table()) {
      throw ConfigError(document_->where(path_) + ": " + path_ + ": expected a table, found " + describe(*node));
    }
  }
  // Created up front so that an element of a table array that reads nothing
  // still keeps its place (and index) in the resolved array.
  resolved_table(document_->resolved(), path_);
}

std::string Section::key_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

std::int64_t Section::integer(std::string_view key, std::int64_t fallback, std::int64_t min, std::int64_t max,
                              std::string_view /*doc*/) {
  read_.emplace(key);
  std::int64_t value = fallback;
  if (const toml::node* node = find(*document_, path_, key)) {
    const std::string expected = "an integer" + integer_range(min, max);
    const auto* given = node->as_integer();
    if (given == nullptr) throw_expected(*document_, key_path(key), expected, describe(*node));
    value = given->get();
    if (value < min || value > max) throw_expected(*document_, key_path(key), expected, repr(*node));
  }
  record(*document_, path_, key, value);
  return value;
}

double Section::number(std::string_view key, double fallback, double min, double max, std::string_view /*doc*/) {
  read_.emplace(key);
  double value = fallback;
  if (const toml::node* node = find(*document_, path_, key)) {
    const std::string expected = "a number" + number_range(min, max);
    if (const auto* given = node->as_integer()) {
      value = static_cast<double>(given->get());
    } else if (const auto* given_float = node->as_floating_point()) {
      value = given_float->get();
    } else {
      throw_expected(*document_, key_path(key), expected, describe(*node));
    }
    // Written so that NaN fails too.
    if (!(value >= min && value <= max)) throw_expected(*document_, key_path(key), expected, repr(*node));
  }
  record(*document_, path_, key, value);
  return value;
}

bool Section::boolean(std::string_view key, bool fallback, std::string_view /*doc*/) {
  read_.emplace(key);
  bool value = fallback;
  if (const toml::node* node = find(*document_, path_, key)) {
    const auto* given = node->as_boolean();
    if (given == nullptr) throw_expected(*document_, key_path(key), "true or false", describe(*node));
    value = given->get();
  }
  record(*document_, path_, key, value);
  return value;
}

std::string Section::string(std::string_view key, std::string_view fallback, std::string_view /*doc*/) {
  read_.emplace(key);
  std::string value(fallback);
  if (const toml::node* node = find(*document_, path_, key)) {
    const auto* given = node->as_string();
    if (given == nullptr) throw_expected(*document_, key_path(key), "a string", describe(*node));
    value = given->get();
  }
  record(*document_, path_, key, value);
  return value;
}

std::string Section::choice(std::string_view key, std::string_view fallback, const std::vector<std::string>& choices,
                            std::string_view /*doc*/) {
  read_.emplace(key);
  std::string value(fallback);
  if (const toml::node* node = find(*document_, path_, key)) {
    const auto* given = node->as_string();
    if (given == nullptr) throw_expected(*document_, key_path(key), one_of(choices), describe(*node));
    value = given->get();
    if (!is_choice(choices, value)) throw_expected(*document_, key_path(key), one_of(choices), repr(*node));
  }
  record(*document_, path_, key, value);
  return value;
}

std::vector<std::int64_t> Section::integers(std::string_view key, std::vector<std::int64_t> fallback,
                                            std::int64_t min, std::int64_t max, std::string_view /*doc*/) {
  read_.emplace(key);
  std::vector<std::int64_t> values = std::move(fallback);
  if (const toml::node* node = find(*document_, path_, key)) {
    const std::string full = key_path(key);
    const std::string range = integer_range(min, max);
    const auto* array = node->as_array();
    if (array == nullptr) throw_expected(*document_, full, "an array of integers" + range, describe(*node));
    values.clear();
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      const auto* given = element.as_integer();
      if (given == nullptr) throw_expected(*document_, element_path(full, i), "an integer" + range, describe(element));
      if (given->get() < min || given->get() > max) {
        throw_expected(*document_, element_path(full, i), "an integer" + range, repr(element));
      }
      values.push_back(given->get());
    }
  }
  toml::array resolved;
  for (const std::int64_t value : values) resolved.push_back(value);
  record(*document_, path_, key, std::move(resolved));
  return values;
}

std::vector<std::string> Section::strings(std::string_view key, std::vector<std::string> fallback,
                                          const std::vector<std::string>& choices, std::string_view /*doc*/) {
  read_.emplace(key);
  std::vector<std::string> values = std::move(fallback);
  if (const toml::node* node = find(*document_, path_, key)) {
    const std::string full = key_path(key);
    const std::string element_expected = choices.empty() ? "a string" : one_of(choices);
    const auto* array = node->as_array();
    if (array == nullptr) {
      const std::string of_what = choices.empty() ? "strings" : "strings, each " + one_of(choices);
      throw_expected(*document_, full, "an array of " + of_what, describe(*node));
    }
    values.clear();
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      const auto* given = element.as_string();
      if (given == nullptr) throw_expected(*document_, element_path(full, i), element_expected, describe(element));
      if (!choices.empty() && !is_choice(choices, given->get())) {
        throw_expected(*document_, element_path(full, i), element_expected, repr(element));
      }
      values.push_back(given->get());
    }
  }
  toml::array resolved;
  for (const std::string& value : values) resolved.push_back(value);
  record(*document_, path_, key, std::move(resolved));
  return values;
}

void Section::fail(std::string_view key, std::string_view expected) {
  const std::string full = key_path(key);
  std::string message = document_->where(full) + ": " + full + ": expected " + std::string(expected);
  if (const toml::node* given = find(*document_, path_, key)) {
    message += ", found " + (given->is_table() ? std::string("a table") : repr(*given));
  } else if (const toml::node* used = resolved_table(document_->resolved(), path_).get(key)) {
    message += ", found the default " + (used->is_table() ? std::string("(a table)") : repr(*used));
  }
  throw ConfigError(message);
}

bool Section::contains(std::string_view key) const { return find(*document_, path_, key) != nullptr; }

Section Section::child(std::string_view key) {
  read_.emplace(key);
  // The constructor rejects a key that exists but is not a table.
  return Section(*document_, key_path(key));
}

std::vector<Section> Section::table_array(std::string_view key) {
  read_.emplace(key);
  std::vector<Section> sections;
  const toml::node* node = find(*document_, path_, key);
  if (node == nullptr) return sections;
  const std::string full = key_path(key);
  const auto* array = node->as_array();
  const bool all_tables = array != nullptr && std::all_of(array->begin(), array->end(), [](const toml::node& element) {
                            return element.is_table();
                          });
  if (!all_tables) throw_expected(*document_, full, "an array of tables", describe(*node));

  // An empty array is a deliberate choice ("no stages") worth keeping in resolved.
  toml::table& resolved = resolved_table(document_->resolved(), path_);
  const toml::node* already = resolved.get(key);
  if (already == nullptr || !already->is_array()) resolved.insert_or_assign(key, toml::array{});

  sections.reserve(array->size());
  for (std::size_t i = 0; i < array->size(); ++i) sections.emplace_back(*document_, element_path(full, i));
  return sections;
}

void Section::mark_read(std::string_view key) {
  read_.emplace(key);
  // The caller interprets the value its own way; copy it verbatim so that the
  // resolved config still reproduces the run.
  const toml::node* given = find(*document_, path_, key);
  toml::table& resolved = resolved_table(document_->resolved(), path_);
  if (given != nullptr && !resolved.contains(key)) resolved.insert(key, *given);
}

void Section::finish() const {
  const toml::table* table = document_table(*document_, path_);
  if (table == nullptr) return;
  struct Unread {
    std::string key;
    toml::source_position at;
  };
  std::vector<Unread> unread;
  for (auto&& [key, value] : *table) {
    if (read_.find(key.str()) == read_.end()) unread.push_back({std::string(key.str()), key.source().begin});
  }
  if (unread.empty()) return;

  // Report the first in document order; keys from --set have no position and
  // come last, by name, so the same mistake always gives the same message.
  const auto order = [](const Unread& unknown) {
    return std::make_tuple(unknown.at.line == 0, unknown.at.line, unknown.at.column, std::cref(unknown.key));
  };
  const Unread& first = *std::min_element(unread.begin(), unread.end(), [&](const Unread& a, const Unread& b) {
    return order(a) < order(b);
  });

  const std::string full = key_path(first.key);
  std::string location = document_->where(full);
  const bool from_override = location.rfind("--set ", 0) == 0;
  if (!from_override && first.at.line > 0) {
    // The key's own position reads better than its value's: "epohcs" is the typo.
    location = document_->source_name() + ":" + std::to_string(first.at.line) + ":" + std::to_string(first.at.column);
  }

  const std::vector<std::string> known(read_.begin(), read_.end());
  const std::string suggestion = nearest(first.key, known);
  std::string message = location + ": unknown key '" + full + "'";
  if (!suggestion.empty()) {
    message += "; did you mean '" + key_path(suggestion) + "'?";
  } else if (known.empty()) {
    message += " (this table takes no keys)";
  } else {
    message += " (known keys: " + join(known) + ")";
  }
  throw ConfigError(message);
}

}  // namespace pretext::config
