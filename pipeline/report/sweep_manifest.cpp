#include "pipeline/report/sweep_manifest.hpp"

#include <sstream>

#include <toml++/toml.h>

#include "common/atomic_file.hpp"
#include "common/errors.hpp"

namespace pretext::report {
namespace {

std::string where(const std::filesystem::path& file, const toml::node* node) {
  std::string text = file.string();
  if (node != nullptr && node->source().begin.line > 0)
    text += ":" + std::to_string(node->source().begin.line) + ":" + std::to_string(node->source().begin.column);
  return text;
}

/// The string at `key`, `fallback` when absent; an error when present but not a string.
std::string optional_string(const toml::table& table, const char* key, const std::string& fallback,
                            const std::filesystem::path& file, const std::string& name) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return fallback;
  const auto* value = node->as_string();
  if (value == nullptr) throw InputError(where(file, node) + ": " + name + " must be a string");
  return value->get();
}

std::string required_string(const toml::table& table, const char* key, const std::filesystem::path& file,
                            const std::string& name, const std::string& expected) {
  if (table.get(key) == nullptr)
    throw InputError(where(file, &table) + ": " + name + " is missing (expected " + expected + ")");
  std::string value = optional_string(table, key, "", file, name);
  if (value.empty())
    throw InputError(where(file, table.get(key)) + ": " + name + " is empty (expected " + expected + ")");
  return value;
}

}  // namespace

const char* to_string(VariantStatus status) {
  switch (status) {
    case VariantStatus::finished:
      return "finished";
    case VariantStatus::failed:
      return "failed";
    case VariantStatus::pending:
      return "pending";
  }
  return "pending";
}

SweepManifest read_sweep_manifest(const std::filesystem::path& manifest) {
  if (!std::filesystem::is_regular_file(manifest))
    throw InputError(manifest.string() + ": cannot read (expected a sweep manifest)");
  toml::table root;
  try {
    root = toml::parse_file(manifest.string());
  } catch (const toml::parse_error& error) {
    const auto& begin = error.source().begin;
    throw InputError(manifest.string() + ":" + std::to_string(begin.line) + ":" + std::to_string(begin.column) + ": " +
                     std::string(error.description()));
  }

  SweepManifest sweep;
  sweep.title = optional_string(root, "title", "", manifest, "title");
  sweep.metric_mode = optional_string(root, "metric_mode", "", manifest, "metric_mode");
  const toml::node* variants = root.get("variants");
  if (variants == nullptr) return sweep;  // nothing has been scheduled yet
  const auto* array = variants->as_array();
  if (array == nullptr)
    throw InputError(where(manifest, variants) + ": variants must be an array of tables ([[variants]])");

  for (std::size_t i = 0; i < array->size(); ++i) {
    const std::string name = "variants[" + std::to_string(i) + "]";
    const auto* table = array->get(i)->as_table();
    if (table == nullptr) throw InputError(where(manifest, array->get(i)) + ": " + name + " must be a table");
    SweepVariant variant;
    variant.study = optional_string(*table, "study", kDefaultStudy, manifest, name + ".study");
    variant.label = required_string(*table, "label", manifest, name + ".label", "the variant's name");
    variant.dir =
        required_string(*table, "dir", manifest, name + ".dir", "its run directory, relative to the sweep directory");
    if (variant.dir.is_absolute())
      throw InputError(where(manifest, table->get("dir")) + ": " + name + ".dir '" + variant.dir.string() +
                       "' must be relative to the sweep directory");
    const std::string status =
        required_string(*table, "status", manifest, name + ".status", "\"finished\", \"failed\" or \"pending\"");
    if (status == "finished") {
      variant.status = VariantStatus::finished;
    } else if (status == "failed") {
      variant.status = VariantStatus::failed;
    } else if (status == "pending") {
      variant.status = VariantStatus::pending;
    } else {
      throw InputError(where(manifest, table->get("status")) + ": " + name + ".status is '" + status +
                       "'; expected \"finished\", \"failed\" or \"pending\"");
    }
    if (const toml::node* overrides = table->get("overrides")) {
      const auto* list = overrides->as_array();
      if (list == nullptr) throw InputError(where(manifest, overrides) + ": " + name + ".overrides must be an array");
      for (const auto& item : *list) {
        const auto* text = item.as_string();
        if (text == nullptr)
          throw InputError(where(manifest, &item) + ": " + name + ".overrides must hold strings (KEY=VALUE)");
        variant.overrides.push_back(text->get());
      }
    }
    sweep.variants.push_back(std::move(variant));
  }
  return sweep;
}

void write_sweep_manifest(const std::filesystem::path& manifest, const SweepManifest& sweep) {
  toml::table root;
  if (!sweep.title.empty()) root.insert("title", sweep.title);
  if (!sweep.metric_mode.empty()) root.insert("metric_mode", sweep.metric_mode);
  root.insert("sweep_file", sweep.sweep_file.string());
  root.insert("base", sweep.base.string());
  toml::array variants;
  for (const auto& variant : sweep.variants) {
    toml::table v;
    v.insert("study", variant.study);
    v.insert("label", variant.label);
    v.insert("dir", variant.dir.generic_string());
    v.insert("status", to_string(variant.status));
    if (!variant.same_run_as.empty()) v.insert("same_run_as", variant.same_run_as);
    toml::array overrides;
    for (const auto& o : variant.overrides) overrides.push_back(o);
    v.insert("overrides", std::move(overrides));
    if (variant.status == VariantStatus::failed) v.insert("exit_code", variant.exit_code);
    if (variant.seconds > 0) v.insert("seconds", variant.seconds);
    variants.push_back(std::move(v));
  }
  root.insert("variants", std::move(variants));
  std::ostringstream text;
  text << "# Written by `pretext sweep`; read by `pretext report`.\n" << root << '\n';
  write_file_atomically(manifest, text.str());
}

}  // namespace pretext::report
