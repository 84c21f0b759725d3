#include "pipeline/report/results_table.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include "pipeline/report/markup.hpp"
#include "pipeline/report/seeds.hpp"

namespace pretext::report {
namespace {

constexpr std::string_view kAccuracySuffix = "accuracy";
constexpr const char* kMissing = "—";

bool is_accuracy(std::string_view key, const toml::node& node) {
  return key.size() >= kAccuracySuffix.size() &&
         key.compare(key.size() - kAccuracySuffix.size(), kAccuracySuffix.size(), kAccuracySuffix) == 0 &&
         (node.is_floating_point() || node.is_integer());
}

bool has_accuracy(const toml::table& table) {
  for (const auto& [key, node] : table)
    if (is_accuracy(key.str(), node)) return true;
  return false;
}

const toml::table* table_at(const toml::table& root, const std::vector<std::string>& path) {
  const toml::table* table = &root;
  for (const auto& key : path) {
    table = table->get_as<toml::table>(key);
    if (table == nullptr) return nullptr;
  }
  return table;
}

std::optional<double> number_at(const toml::table* table, const std::string& key) {
  if (table == nullptr) return std::nullopt;
  const toml::node* node = table->get(key);
  if (node == nullptr) return std::nullopt;
  return node->value<double>();
}

int column_rank(const std::string& key) {
  if (key == "val_accuracy") return 0;
  if (key == "best_val_accuracy") return 1;
  if (key == "test_accuracy") return 2;
  return 3;
}

std::string column_label(const std::string& key) {
  if (key == "val_accuracy") return "final val";
  if (key == "best_val_accuracy") return "best val";
  if (key == "test_accuracy") return "test";
  std::string stem = key.substr(0, key.size() - kAccuracySuffix.size());
  while (!stem.empty() && stem.back() == '_') stem.pop_back();
  return stem.empty() ? "accuracy" : humanize(stem);
}

void add_columns(ResultGroup& group, const toml::table& table) {
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    if (!is_accuracy(name, node)) continue;
    const bool known =
        std::any_of(group.columns.begin(), group.columns.end(), [&](const ResultColumn& c) { return c.key == name; });
    if (!known) group.columns.push_back({name, column_label(name)});
  }
}

void add_group(std::vector<ResultGroup>& groups, std::vector<std::string> path, const toml::table& table) {
  auto it = std::find_if(groups.begin(), groups.end(), [&](const ResultGroup& g) { return g.path == path; });
  if (it == groups.end()) {
    std::string label;
    for (const auto& part : path) label += (label.empty() ? "" : ": ") + humanize(part);
    groups.push_back({std::move(path), std::move(label), {}});
    it = std::prev(groups.end());
  }
  add_columns(*it, table);
}

/// The text of one cell; a best accuracy also names its epoch.
std::string cell_text(const toml::table* table, const ResultColumn& column) {
  const auto value = number_at(table, column.key);
  if (!value) return kMissing;
  std::string text = format_percent(*value);
  if (column.key == "best_val_accuracy")
    if (const auto epoch = number_at(table, "best_epoch"))
      text += " <span class=\"epoch\">@ " + format_fixed(*epoch, 0) + "</span>";
  return text;
}

std::string th(const std::string& text, const std::string& attributes = "") {
  return "<th" + attributes + ">" + xml_escape(text) + "</th>";
}

/// The finished rows' values of one figure (`key` in the table at `path`).
std::vector<double> finished_values(const std::vector<SweepRow>& rows, const std::vector<std::string>& path,
                                    const std::string& key) {
  std::vector<double> values;
  for (const auto& row : rows) {
    if (row.status != VariantStatus::finished || row.summary == nullptr) continue;
    const toml::table* table = path.empty() ? row.summary : table_at(*row.summary, path);
    if (const auto value = number_at(table, key)) values.push_back(*value);
  }
  return values;
}

/// "mean ± sd over N seeds": each column over the finished rows.
std::string mean_sd_row(const std::vector<SweepRow>& rows, const std::vector<ResultGroup>& groups) {
  const std::size_t finished = finished_values(rows, {}, "wall_seconds").size();
  std::string html = "<tr class=\"seeds-mean\"><th scope=\"row\">mean ± sd over " + std::to_string(finished) +
                     " seeds</th><td class=\"status\"></td>";
  for (const auto& group : groups) {
    for (std::size_t c = 0; c < group.columns.size(); ++c) {
      const MeanSd stats = mean_sd(finished_values(rows, group.path, group.columns[c].key));
      html += std::string(c == 0 ? "<td class=\"group-start\">" : "<td>") +
              (stats.n == 0 ? std::string(kMissing) : format_mean_sd_percent(stats)) + "</td>";
    }
  }
  const MeanSd wall = mean_sd(finished_values(rows, {}, "wall_seconds"));
  html += "<td>" + (wall.n == 0 ? std::string(kMissing) : format_duration(wall.mean)) + "</td></tr>\n";
  return html;
}

}  // namespace

std::vector<ResultGroup> find_result_groups(const std::vector<const toml::table*>& summaries,
                                            const std::vector<std::string>& mode_order) {
  std::vector<ResultGroup> groups;
  for (const auto* summary : summaries) {
    if (summary == nullptr) continue;
    for (const auto& [key, node] : *summary) {
      const std::string top(key.str());
      const auto* table = node.as_table();
      if (table == nullptr || top == "pretext") continue;
      if (has_accuracy(*table)) add_group(groups, {top}, *table);
      for (const auto& [sub_key, sub_node] : *table)
        if (const auto* sub = sub_node.as_table(); sub != nullptr && has_accuracy(*sub))
          add_group(groups, {top, std::string(sub_key.str())}, *sub);
    }
  }
  // Transfer modes in training order, then everything else by name (TOML tables iterate sorted).
  auto rank = [&](const ResultGroup& g) -> std::size_t {
    if (g.path.size() != 2 || g.path[0] != "transfer") return mode_order.size() + 1;
    const auto it = std::find(mode_order.begin(), mode_order.end(), g.path[1]);
    return static_cast<std::size_t>(it - mode_order.begin());
  };
  std::stable_sort(groups.begin(), groups.end(),
                   [&](const ResultGroup& a, const ResultGroup& b) { return rank(a) < rank(b); });
  for (auto& group : groups)
    std::stable_sort(group.columns.begin(), group.columns.end(), [](const ResultColumn& a, const ResultColumn& b) {
      return column_rank(a.key) != column_rank(b.key) ? column_rank(a.key) < column_rank(b.key) : a.key < b.key;
    });
  return groups;
}

std::string run_results_table(const toml::table& summary, const std::vector<ResultGroup>& groups) {
  if (groups.empty()) return "<p class=\"note\">No accuracies in this run's summary.</p>\n";
  std::vector<ResultColumn> columns;  // the union, in the groups' order
  for (const auto& group : groups)
    for (const auto& column : group.columns)
      if (std::none_of(columns.begin(), columns.end(), [&](const ResultColumn& c) { return c.key == column.key; }))
        columns.push_back(column);
  std::stable_sort(columns.begin(), columns.end(), [](const ResultColumn& a, const ResultColumn& b) {
    return column_rank(a.key) < column_rank(b.key);
  });

  std::string html = "<table class=\"results\">\n<thead><tr>" + th("");
  for (const auto& column : columns) html += th(column.label + " (%)");
  html += th("time") + "</tr></thead>\n<tbody>\n";
  for (const auto& group : groups) {
    const toml::table* table = table_at(summary, group.path);
    html += "<tr><th scope=\"row\">" + xml_escape(group.label) + "</th>";
    for (const auto& column : columns) html += "<td>" + cell_text(table, column) + "</td>";
    const auto seconds = number_at(table, "seconds");
    html += "<td>" + (seconds ? format_duration(*seconds) : std::string(kMissing)) + "</td></tr>\n";
  }
  html += "</tbody>\n</table>\n";
  return html;
}

std::string sweep_results_table(const std::vector<SweepRow>& rows, const std::vector<ResultGroup>& groups,
                                bool mean_row) {
  // The best finished value per column, for bold type; only worth marking when
  // there is a choice, and not among seeds of one experiment.
  std::vector<std::vector<std::optional<double>>> best(groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (const auto& column : groups[g].columns) {
      std::optional<double> top;
      int count = 0;
      for (const auto& row : rows) {
        if (row.status != VariantStatus::finished || row.summary == nullptr) continue;
        const auto value = number_at(table_at(*row.summary, groups[g].path), column.key);
        if (!value || !std::isfinite(*value)) continue;
        ++count;
        if (!top || *value > *top) top = value;
      }
      best[g].push_back(count > 1 && !mean_row ? top : std::nullopt);
    }
  }

  std::string html = "<table class=\"results sweep\">\n<thead>\n<tr>" + th("variant", " rowspan=\"2\"") +
                     th("status", " rowspan=\"2\"");
  for (const auto& group : groups)
    html += th(group.label + " (%)", " colspan=\"" + std::to_string(group.columns.size()) + "\" class=\"group\"");
  html += th("wall time", " rowspan=\"2\"") + "</tr>\n<tr>";
  for (const auto& group : groups)
    for (std::size_t c = 0; c < group.columns.size(); ++c)
      html += th(group.columns[c].label, c == 0 ? " class=\"group-start\"" : "");
  html += "</tr>\n</thead>\n<tbody>\n";

  for (const auto& row : rows) {
    const bool finished = row.status == VariantStatus::finished && row.summary != nullptr;
    html += std::string("<tr class=\"variant ") + to_string(row.status) + "\"><th scope=\"row\">";
    html += row.href.empty()
                ? xml_escape(row.label)
                : "<a href=\"" + xml_escape(href_escape(row.href)) + "\">" + xml_escape(row.label) + "</a>";
    html += std::string("</th><td class=\"status\">") + to_string(row.status) + "</td>";
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const toml::table* table = finished ? table_at(*row.summary, groups[g].path) : nullptr;
      for (std::size_t c = 0; c < groups[g].columns.size(); ++c) {
        const auto& column = groups[g].columns[c];
        const auto value = number_at(table, column.key);
        const bool is_best = value && best[g][c] && *value == *best[g][c];
        const std::string text = cell_text(table, column);
        html += std::string(c == 0 ? "<td class=\"group-start\">" : "<td>") +
                (is_best ? "<strong>" + text + "</strong>" : text) + "</td>";
      }
    }
    const auto wall = finished ? number_at(row.summary, "wall_seconds") : std::nullopt;
    html += "<td>" + (wall ? format_duration(*wall) : std::string(kMissing)) + "</td></tr>\n";
  }
  if (mean_row) html += mean_sd_row(rows, groups);
  html += "</tbody>\n</table>\n";
  return html;
}

}  // namespace pretext::report
