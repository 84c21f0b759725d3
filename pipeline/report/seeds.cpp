#include "pipeline/report/seeds.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/errors.hpp"
#include "common/format.hpp"

namespace pretext::report {
namespace {

bool is_seed_override(const std::string& assignment) { return assignment.rfind("seed=", 0) == 0; }

/// Keys that may differ between the runs of one experiment.
bool ignored(const std::string& key) { return key == "seed" || key == "threads" || key == "pipeline.threads"; }

/// Every leaf of `table` as "dotted.key" -> its TOML text.
void flatten(const toml::table& table, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& [key, node] : table) {
    const std::string name = prefix + std::string(key.str());
    if (const auto* sub = node.as_table()) {
      flatten(*sub, name + ".", out);
      continue;
    }
    if (ignored(name)) continue;
    std::ostringstream text;
    if (const auto* array = node.as_array()) {
      text << *array;
    } else {
      node.visit([&](const auto& value) { text << value; });
    }
    out.emplace_back(name, text.str());
  }
}

}  // namespace

MeanSd mean_sd(const std::vector<double>& values) {
  MeanSd stats;
  stats.n = values.size();
  if (values.empty()) return stats;
  double sum = 0.0;
  for (double v : values) sum += v;
  stats.mean = sum / static_cast<double>(values.size());
  if (values.size() < 2) return stats;
  double squares = 0.0;
  for (double v : values) squares += (v - stats.mean) * (v - stats.mean);
  stats.sd = std::sqrt(squares / static_cast<double>(values.size() - 1));
  return stats;
}

std::string format_mean_sd_percent(const MeanSd& stats) {
  return format_percent(stats.mean) + " ± " + format_percent(stats.sd);
}

bool is_seeds_study(const std::vector<std::vector<std::string>>& overrides_per_variant) {
  if (overrides_per_variant.size() < 2) return false;
  std::vector<std::string> common;
  for (std::size_t i = 0; i < overrides_per_variant.size(); ++i) {
    std::vector<std::string> rest;
    bool has_seed = false;
    for (const auto& o : overrides_per_variant[i]) {
      if (is_seed_override(o)) {
        has_seed = true;
      } else {
        rest.push_back(o);
      }
    }
    if (!has_seed) return false;
    if (i == 0) {
      common = std::move(rest);
    } else if (rest != common) {
      return false;
    }
  }
  return true;
}

void check_differ_only_in_seed(const std::vector<SeedRun>& runs) {
  if (runs.size() < 2) return;
  std::vector<std::pair<std::string, std::string>> first;
  flatten(runs.front().config, "", first);
  std::sort(first.begin(), first.end());
  for (std::size_t i = 1; i < runs.size(); ++i) {
    std::vector<std::pair<std::string, std::string>> other;
    flatten(runs[i].config, "", other);
    std::sort(other.begin(), other.end());  // both sorted by key: walk them together
    std::size_t a = 0;
    std::size_t b = 0;
    while (a < first.size() || b < other.size()) {
      std::string key;
      std::string left = "(absent)";
      std::string right = "(absent)";
      if (b == other.size() || (a < first.size() && first[a].first < other[b].first)) {
        key = first[a].first;
        left = first[a++].second;
      } else if (a == first.size() || other[b].first < first[a].first) {
        key = other[b].first;
        right = other[b++].second;
      } else {
        key = first[a].first;
        left = first[a++].second;
        right = other[b++].second;
        if (left == right) continue;
      }
      throw InputError("a seeds report needs runs that differ only in seed, but '" + runs.front().label + "' (" +
                       runs.front().config_file.string() + ") and '" + runs[i].label + "' (" +
                       runs[i].config_file.string() + ") differ in '" + key + "': " + left + " vs " + right);
    }
  }
}

}  // namespace pretext::report
