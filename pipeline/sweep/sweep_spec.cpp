#include "pipeline/sweep/sweep_spec.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

#include "common/errors.hpp"

namespace pretext::sweep {
namespace {

std::string position(const std::filesystem::path& file, const toml::source_region& region) {
  std::ostringstream out;
  out << file.string();
  if (region.begin.line > 0) out << ':' << region.begin.line << ':' << region.begin.column;
  return out.str();
}

[[noreturn]] void fail(const std::filesystem::path& file, const toml::node* node, const std::string& key,
                       const std::string& message) {
  throw ConfigError(position(file, node != nullptr ? node->source() : toml::source_region{}) + ": " + key + ": " +
                    message);
}

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date or time";
  }
}

/// A leaf value as TOML text that Document::apply_override parses back.
std::string toml_text(const toml::node& node) {
  std::ostringstream out;
  if (const auto* array = node.as_array()) {
    out << toml::toml_formatter{*array, toml::format_flags::none};
  } else if (const auto* table = node.as_table()) {
    out << toml::toml_formatter{*table, toml::format_flags::none};
  } else if (const auto* number = node.as_floating_point()) {
    // Shortest text that reads back as the same double: 0.3, not 0.29999999999999999.
    char buffer[64];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, number->get(), std::chars_format::fixed);
    if (result.ec != std::errc{} || result.ptr - buffer > 12)  // 1e-09 reads better than 0.000000001
      result = std::to_chars(buffer, buffer + sizeof buffer, number->get());
    std::string text(buffer, result.ptr);
    if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // stays a TOML float
    out << text;
  } else {
    node.visit([&](const auto& value) { out << value; });
  }
  std::string text = out.str();
  std::replace(text.begin(), text.end(), '\n', ' ');  // one line: "key=value"
  return text;
}

struct Entry {
  std::string key;
  const toml::node* node;
  toml::source_region key_source;
};

/// Keys of `table` in the order they appear in the file (toml++ sorts them).
std::vector<Entry> in_file_order(const toml::table& table) {
  std::vector<Entry> entries;
  for (const auto& [key, node] : table) entries.push_back({std::string(key.str()), &node, key.source()});
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    const auto& x = a.key_source.begin;
    const auto& y = b.key_source.begin;
    return x.line != y.line ? x.line < y.line : x.column < y.column;
  });
  return entries;
}

/// `set` tables flattened to "dotted.key=value" assignments.
void flatten(const toml::table& table, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& entry : in_file_order(table)) {
    const std::string path = prefix.empty() ? entry.key : prefix + "." + entry.key;
    if (const auto* nested = entry.node->as_table()) {
      flatten(*nested, path, out);
    } else {
      out.push_back(path + "=" + toml_text(*entry.node));
    }
  }
}

class Parser {
 public:
  Parser(const toml::table& root, std::filesystem::path file) : root_(root), file_(std::move(file)) {}

  SweepSpec parse() {
    check_keys(root_, "", {"title", "base", "chart_mode", "set", "studies", "variants"});
    SweepSpec spec;
    spec.file = file_;
    const auto* base = root_.get("base");
    if (base == nullptr || !base->is_string() || base->as_string()->get().empty())
      fail(file_, base, "base", "expected the base config's path (a string, relative to this file)");
    const std::filesystem::path base_path = base->as_string()->get();
    spec.base = base_path.is_absolute() ? base_path : file_.parent_path() / base_path;
    spec.title = optional_string(root_, "title", "");
    spec.chart_mode = optional_string(root_, "chart_mode", "");
    spec.common = overrides(root_, "set");

    const auto* studies = root_.get("studies");
    const auto* variants = root_.get("variants");
    if ((studies == nullptr) == (variants == nullptr))
      fail(file_, studies != nullptr ? studies : variants, "studies",
           "expected either [[studies]] (each with variants or a grid) or top-level [[variants]], not both");
    if (variants != nullptr) {
      study(root_, spec.title.empty() ? "variants" : spec.title, "", spec, /*own_set=*/false);
    } else {
      const auto* list = studies->as_array();
      if (list == nullptr || list->empty()) fail(file_, studies, "studies", "expected a non-empty array of tables");
      for (std::size_t i = 0; i < list->size(); ++i) {
        const std::string key = "studies[" + std::to_string(i) + "]";
        const auto* table = (*list)[i].as_table();
        if (table == nullptr) fail(file_, &(*list)[i], key, std::string("expected a table, found ") + type_name((*list)[i]));
        check_keys(*table, key + ".", {"name", "variants", "grid", "set"});
        const auto* name = table->get("name");
        if (name == nullptr || !name->is_string() || name->as_string()->get().empty())
          fail(file_, name != nullptr ? name : table, key + ".name", "expected the study's name (a string)");
        study(*table, name->as_string()->get(), key + ".", spec, /*own_set=*/true);
      }
    }
    check_unique(spec);
    return spec;
  }

 private:
  void check_keys(const toml::table& table, const std::string& prefix, std::set<std::string> known) {
    for (const auto& [key, node] : table) {
      if (known.count(std::string(key.str())) == 0) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        throw ConfigError(position(file_, key.source()) + ": " + prefix + std::string(key.str()) +
                          ": unknown key (expected one of: " + list + ")");
      }
    }
  }

  std::string optional_string(const toml::table& table, const std::string& key, const std::string& fallback) {
    const auto* node = table.get(key);
    if (node == nullptr) return fallback;
    if (!node->is_string()) fail(file_, node, key, std::string("expected a string, found ") + type_name(*node));
    return node->as_string()->get();
  }

  std::vector<std::string> overrides(const toml::table& table, const std::string& key) {
    std::vector<std::string> out;
    const auto* node = table.get(key);
    if (node == nullptr) return out;
    const auto* set = node->as_table();
    if (set == nullptr)
      fail(file_, node, key, std::string("expected a table of config keys to override, found ") + type_name(*node));
    flatten(*set, "", out);
    return out;
  }

  /// The variants of one study: a list, or the product of a grid's axes.
  /// `own_set`: the table's `set` belongs to the study (false for a top-level
  /// [[variants]] list, whose `set` is the sweep's, already in spec.common).
  void study(const toml::table& table, const std::string& name, const std::string& prefix, SweepSpec& spec,
             bool own_set) {
    const auto study_common = own_set ? overrides(table, "set") : std::vector<std::string>{};
    const auto* variants = table.get("variants");
    const auto* grid = table.get("grid");
    if ((variants == nullptr) == (grid == nullptr))
      fail(file_, &table, prefix + "variants", "expected either a list of variants or a grid, not both");
    if (variants != nullptr) {
      const auto* list = variants->as_array();
      if (list == nullptr || list->empty())
        fail(file_, variants, prefix + "variants", "expected a non-empty array of { label, set } tables");
      for (std::size_t i = 0; i < list->size(); ++i) {
        const std::string key = prefix + "variants[" + std::to_string(i) + "]";
        const auto* v = (*list)[i].as_table();
        if (v == nullptr) fail(file_, &(*list)[i], key, "expected a { label, set } table");
        check_keys(*v, key + ".", {"label", "set"});
        const auto* label = v->get("label");
        if (label == nullptr || !label->is_string() || label->as_string()->get().empty())
          fail(file_, label != nullptr ? label : v, key + ".label", "expected the variant's label (a string)");
        Variant variant{name, label->as_string()->get(), "", study_common, position(file_, v->source())};
        for (auto& o : overrides(*v, "set")) variant.overrides.push_back(std::move(o));
        spec.variants.push_back(std::move(variant));
      }
      return;
    }
    expand_grid(*grid, name, prefix + "grid", study_common, spec);
  }

  void expand_grid(const toml::node& node, const std::string& name, const std::string& key,
                   const std::vector<std::string>& study_common, SweepSpec& spec) {
    const auto* grid = node.as_table();
    if (grid == nullptr || grid->empty())
      fail(file_, &node, key, "expected a table of config keys, each with an array of values");
    struct Axis {
      std::string key;
      std::string short_name;
      std::vector<std::string> values;
    };
    std::vector<Axis> axes;
    std::vector<std::string> flat;
    for (const auto& entry : in_file_order(*grid)) {
      const std::string& axis_key = entry.key;
      const auto* values = entry.node->as_array();
      if (values == nullptr || values->empty())
        throw ConfigError(position(file_, entry.key_source) + ": " + key + "." + axis_key +
                          ": expected a non-empty array of values, found " + type_name(*entry.node));
      Axis axis{axis_key, axis_key.substr(axis_key.rfind('.') + 1), {}};
      for (const auto& v : *values) axis.values.push_back(toml_text(v));
      axes.push_back(std::move(axis));
    }
    // Short labels ("lr=0.001") unless two axes end in the same name.
    std::set<std::string> short_names;
    for (const auto& a : axes) short_names.insert(a.short_name);
    const bool use_short = short_names.size() == axes.size();

    std::vector<std::size_t> index(axes.size(), 0);
    while (true) {
      Variant variant{name, "", "", study_common, position(file_, node.source())};
      for (std::size_t a = 0; a < axes.size(); ++a) {
        const std::string& value = axes[a].values[index[a]];
        variant.overrides.push_back(axes[a].key + "=" + value);
        variant.label += (a == 0 ? "" : ", ") + (use_short ? axes[a].short_name : axes[a].key) + "=" + value;
      }
      spec.variants.push_back(std::move(variant));
      std::size_t a = axes.size();
      while (a > 0 && ++index[a - 1] == axes[a - 1].values.size()) index[--a] = 0;
      if (a == 0) break;
    }
  }

  void check_unique(SweepSpec& spec) {
    std::map<std::string, const Variant*> by_slug;
    for (auto& v : spec.variants) {
      v.slug = slugify(v.label);
      if (v.slug.empty()) throw ConfigError(v.where + ": label '" + v.label + "' has no letters or digits");
      const auto [it, inserted] = by_slug.emplace(v.slug, &v);
      if (!inserted)
        throw ConfigError(v.where + ": variant label '" + v.label + "' (directory '" + v.slug +
                          "') is already used by '" + it->second->label + "' at " + it->second->where +
                          "; labels must be unique");
    }
  }

  const toml::table& root_;
  std::filesystem::path file_;
};

}  // namespace

std::string slugify(const std::string& label) {
  std::string slug;
  bool dash = false;
  for (const unsigned char c : label) {
    if (std::isalnum(c) != 0 || c == '.') {
      if (dash && !slug.empty()) slug += '-';
      slug += static_cast<char>(std::tolower(c));
      dash = false;
    } else {
      dash = true;
    }
  }
  return slug;
}

SweepSpec parse_sweep_spec(const std::string& text, const std::filesystem::path& file) {
  toml::table root;
  try {
    root = toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    throw ConfigError(position(file, e.source()) + ": " + std::string(e.description()));
  }
  return Parser(root, file).parse();
}

SweepSpec load_sweep_spec(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file.string() + ": cannot open the sweep file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_sweep_spec(text.str(), file);
}

}  // namespace pretext::sweep
