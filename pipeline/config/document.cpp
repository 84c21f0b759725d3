#include "pipeline/config/document.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>

#include "common/errors.hpp"

namespace pretext::config {
namespace {

// Errors must stay on one line so that they read well in logs and scripts.
std::string one_line(std::string_view text) {
  std::string line(text);
  std::replace(line.begin(), line.end(), '\n', ' ');
  std::replace(line.begin(), line.end(), '\r', ' ');
  return line;
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

std::string position(const std::string& source_name, const toml::source_position& at) {
  return source_name + ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
}

std::string type_name(const toml::node& node) {
  std::ostringstream out;
  out << node.type();
  return out.str();
}

// True when `path` is `prefix` itself or lies inside it ("a.b" covers "a.b.c" and "a.b[0]").
bool covers(std::string_view prefix, std::string_view path) {
  if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '.' || path[prefix.size()] == '[';
}

// The value of a --set assignment: TOML when it parses as exactly one TOML
// value, otherwise the raw text, so that paths and names need no quotes.
toml::table parse_override_value(std::string_view value_text) {
  toml::table holder;
  try {
    toml::table parsed = toml::parse("v = " + std::string(value_text), std::string_view("--set"));
    if (parsed.size() == 1 && parsed.contains("v")) {
      // Copying drops the source positions of the throwaway "v = ..." document,
      // which would otherwise pose as line 1 of the config file.
      holder.insert("v", *parsed.get("v"));
      return holder;
    }
  } catch (const toml::parse_error&) {
  }
  holder.insert("v", std::string(value_text));
  return holder;
}

}  // namespace

Document Document::load(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::error_code error;
  if (!std::filesystem::exists(file, error)) {
    throw ConfigError(name + ": cannot read config file: no such file");
  }
  if (std::filesystem::is_directory(file, error)) {
    throw ConfigError(name + ": cannot read config file: it is a directory");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw ConfigError(name + ": cannot read config file: " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw ConfigError(name + ": cannot read config file: read error");
  }
  return parse(text.str(), name);
}

Document Document::parse(std::string_view text, std::string source_name) {
  Document document;
  document.source_name_ = std::move(source_name);
  try {
    document.root_ = toml::parse(text, std::string_view(document.source_name_));
  } catch (const toml::parse_error& error) {
    throw ConfigError(position(document.source_name_, error.source().begin) + ": " +
                      one_line(error.description()));
  }
  return document;
}

void Document::apply_override(std::string_view assignment) {
  const std::string origin = "--set " + one_line(assignment);
  const auto equals = assignment.find('=');
  if (equals == std::string_view::npos) {
    throw ConfigError(origin + ": expected key=value, found no '='");
  }
  const std::string_view key_text = trim(assignment.substr(0, equals));
  if (key_text.empty()) {
    throw ConfigError(origin + ": expected key=value, found an empty key");
  }
  const toml::path key_path{key_text};
  const bool has_empty_segment = std::any_of(key_path.begin(), key_path.end(), [](const toml::path_component& part) {
    return part.type() == toml::path_component_type::key && part.key().empty();
  });
  if (key_path.empty() || has_empty_segment) {
    throw ConfigError(origin + ": expected a dotted key like model.width, found '" + std::string(key_text) + "'");
  }

  // Walk to the parent of the last segment, creating missing tables on the way.
  toml::node* parent = &root_;
  for (auto part = key_path.begin(); part != key_path.end(); ++part) {
    const std::string parent_path = key_path.subpath(key_path.begin(), part).str();
    const bool last = std::next(part) == key_path.end();
    toml::node* next = nullptr;
    if (part->type() == toml::path_component_type::key) {
      toml::table* table = parent->as_table();
      if (table == nullptr) {
        throw ConfigError(origin + ": " + parent_path + ": expected a table, found " + type_name(*parent));
      }
      if (last) break;
      next = table->get(part->key());
      if (next == nullptr && std::next(part)->type() == toml::path_component_type::array_index) {
        // Creating a table here would only fail one step later as "expected
        // an array, found table", about a table the user never wrote.
        throw ConfigError(origin + ": " + key_path.subpath(key_path.begin(), std::next(part)).str() +
                          ": expected an array, found no such key (--set changes an existing element of an array; "
                          "it cannot add one)");
      }
      if (next == nullptr) next = table->insert(part->key(), toml::table{}).first->second.as_table();
    } else {
      toml::array* array = parent->as_array();
      if (array == nullptr) {
        throw ConfigError(origin + ": " + parent_path + ": expected an array, found " + type_name(*parent));
      }
      if (part->index() >= array->size()) {
        throw ConfigError(origin + ": " + parent_path + ": expected an array with more than " +
                          std::to_string(part->index()) + " elements, found " + std::to_string(array->size()));
      }
      if (last) break;
      next = array->get(part->index());
    }
    parent = next;
  }

  toml::table value = parse_override_value(assignment.substr(equals + 1));
  const toml::path_component& leaf = *std::prev(key_path.end());
  if (leaf.type() == toml::path_component_type::key) {
    parent->as_table()->insert_or_assign(leaf.key(), *value.get("v"));
  } else {
    toml::array& array = *parent->as_array();
    array.replace(array.cbegin() + static_cast<std::ptrdiff_t>(leaf.index()), *value.get("v"));
  }

  // A later --set of a whole table supersedes earlier ones inside it.
  const std::string canonical = key_path.str();
  for (auto entry = overrides_.begin(); entry != overrides_.end();) {
    entry = covers(canonical, entry->first) ? overrides_.erase(entry) : std::next(entry);
  }
  overrides_[canonical] = origin;
}

std::string Document::where(const std::string& key_path) const {
  if (key_path.empty()) return source_name_;
  for (const auto& [key, origin] : overrides_) {
    if (covers(key, key_path)) return origin;
  }
  const toml::node* node = toml::at_path(root_, key_path).node();
  if (node == nullptr) return source_name_;
  if (node->source().begin.line > 0) return position(source_name_, node->source().begin);
  // No position: a table that an override created on its way to a deeper key.
  for (const auto& [key, origin] : overrides_) {
    if (covers(key_path, key)) return origin;
  }
  return source_name_;
}

std::string Document::resolved_text() const {
  std::ostringstream out;
  out << resolved_;
  return out.str();
}

}  // namespace pretext::config
