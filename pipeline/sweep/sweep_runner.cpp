#include "pipeline/sweep/sweep_runner.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <toml++/toml.h>

#include "pipeline/errors.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/report/html_report.hpp"
#include "pipeline/report/sweep_manifest.hpp"
#include "pipeline/run/run_directory.hpp"
#include "pipeline/sweep/child_process.hpp"
#include "pipeline/train/job.hpp"

namespace pretext::sweep {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

enum class State { pending, finished, failed };

struct Planned {
  const Variant* variant = nullptr;
  std::vector<std::string> overrides;
  std::string resolved_config;
  State state = State::pending;
  const Planned* same_as = nullptr;  // an earlier variant with the identical config: its run is shared
  bool skipped = false;
  int exit_code = 0;
  double seconds = 0.0;
};

std::string key_of(const std::string& assignment) { return assignment.substr(0, assignment.find('=')); }

/// A run's config, minus what may differ between a first attempt and a resume
/// without changing the experiment: the thread counts (--jobs splits them).
toml::table comparable_config(const std::string& text, const std::string& origin) {
  toml::table config = toml::parse(text, origin);
  config.erase("threads");
  if (auto* pipeline = config["pipeline"].as_table()) pipeline->erase("threads");
  return config;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_manifest(const fs::path& dir, const SweepSpec& spec, const std::vector<Planned>& plan) {
  toml::table manifest;
  if (!spec.title.empty()) manifest.insert("title", spec.title);
  if (!spec.chart_mode.empty()) manifest.insert("metric_mode", spec.chart_mode);
  manifest.insert("sweep_file", fs::absolute(spec.file).string());
  manifest.insert("base", fs::absolute(spec.base).string());
  toml::array variants;
  for (const auto& p : plan) {
    const Planned& run = p.same_as != nullptr ? *p.same_as : p;
    toml::table v;
    v.insert("study", p.variant->study);
    v.insert("label", p.variant->label);
    v.insert("dir", run.variant->slug);
    v.insert("status", run.state == State::finished ? "finished" : run.state == State::failed ? "failed" : "pending");
    if (p.same_as != nullptr) v.insert("same_run_as", p.same_as->variant->label);
    toml::array overrides;
    for (const auto& o : p.overrides) overrides.push_back(o);
    v.insert("overrides", std::move(overrides));
    if (p.state == State::failed) v.insert("exit_code", p.exit_code);
    if (p.seconds > 0) v.insert("seconds", p.seconds);
    variants.push_back(std::move(v));
  }
  manifest.insert("variants", std::move(variants));
  std::ostringstream text;
  text << "# Written by `pretext sweep`; read by `pretext report`.\n" << manifest << '\n';
  write_file_atomically(dir / report::kSweepManifestName, text.str());
}

/// Validates the variant's whole config, plugins included, without loading data.
std::string validate(const SweepSpec& spec, const Planned& p, const fs::path& run_dir) {
  try {
    JobRequest request{spec.base, p.overrides, run_dir};
    request.load_data = false;
    const Job job(request);
    return job.resolved_config();
  } catch (const ConfigError& e) {
    throw ConfigError("variant '" + p.variant->label + "' (" + p.variant->where + "): " + e.what());
  } catch (const PluginError& e) {
    throw PluginError("variant '" + p.variant->label + "' (" + p.variant->where + "): " + e.what());
  }
}

/// Finished (summary.json), interrupted (a directory without it: cleared) or
/// new. A finished run with another config is refused, not silently reused.
void classify(Planned& p, const fs::path& run_dir) {
  std::error_code ec;
  if (fs::exists(run_dir / "summary.json", ec)) {
    const std::string saved = read_text(run_dir / "config.toml");
    if (comparable_config(saved, (run_dir / "config.toml").string()) !=
        comparable_config(p.resolved_config, "variant"))
      throw ConfigError("variant '" + p.variant->label + "' (" + p.variant->where + ") already ran in " +
                        run_dir.string() + " with another config; delete that directory to run it again, "
                        "or give the sweep another --out");
    p.state = State::finished;
    p.skipped = true;
  } else if (fs::exists(run_dir, ec)) {
    fs::remove_all(run_dir);  // interrupted: start it again from the beginning
  }
}

std::string final_accuracy_line(const fs::path& run_dir) {
  try {
    const toml::table summary = toml::parse_file((run_dir / "summary.toml").string());
    std::string line;
    if (const auto* transfer = summary["transfer"].as_table()) {
      for (const auto& [mode, result] : *transfer) {
        if (const auto v = result.as_table() ? (*result.as_table())["val_accuracy"].value<double>() : std::nullopt)
          line += (line.empty() ? "" : ", ") + std::string(mode.str()) + " " + format_fixed(*v, 4);
      }
    }
    return line.empty() ? "" : " (val " + line + ")";
  } catch (const std::exception&) {
    return "";
  }
}

/// Every variant's overrides and resolved config, validated before anything runs.
std::vector<Planned> validated_plan(const SweepSpec& spec, const SweepRequest& request, const fs::path& directory) {
  std::vector<Planned> plan(spec.variants.size());
  for (std::size_t i = 0; i < plan.size(); ++i) {
    plan[i].variant = &spec.variants[i];
    plan[i].overrides = variant_overrides(spec, spec.variants[i], request);
    plan[i].resolved_config = validate(spec, plan[i], directory / spec.variants[i].slug);
  }
  return plan;
}

}  // namespace

/// The sweep file, with --base applied.
static SweepSpec load_spec(const SweepRequest& request) {
  SweepSpec spec = load_sweep_spec(request.sweep_file);
  if (!request.base.empty()) spec.base = request.base;
  return spec;
}

std::size_t validate_sweep(const SweepRequest& request) {
  const SweepSpec spec = load_spec(request);
  return validated_plan(spec, request, request.out.empty() ? fs::path("runs") : request.out).size();
}

std::vector<std::string> variant_overrides(const SweepSpec& spec, const Variant& variant,
                                           const SweepRequest& request) {
  std::vector<std::string> all = spec.common;
  all.insert(all.end(), variant.overrides.begin(), variant.overrides.end());
  if (request.jobs > 1) {
    const int hardware =
        request.hardware_threads > 0 ? request.hardware_threads : static_cast<int>(std::thread::hardware_concurrency());
    all.push_back("threads=" + std::to_string(std::max(1, hardware / request.jobs)));
    all.push_back("pipeline.threads=1");
  }
  all.insert(all.end(), request.overrides.begin(), request.overrides.end());
  return all;
}

SweepOutcome run_sweep(const SweepRequest& request, Progress& progress) {
  if (request.jobs < 1) throw UsageError("--jobs expects at least 1");
  const SweepSpec spec = load_spec(request);
  SweepOutcome outcome;
  outcome.directory = request.out;
  if (outcome.directory.empty()) {
    std::string name = "sweep-" + request.sweep_file.stem().string();
    if (!request.base.empty()) name += "-" + request.base.stem().string();
    outcome.directory = fs::path("runs") / name;
  }

  std::set<std::string> varied;
  for (const auto& v : spec.variants)
    for (const auto& o : v.overrides) varied.insert(key_of(o));
  for (const auto& o : request.overrides)
    if (varied.count(key_of(o)) != 0)
      progress.line("sweep: warning: --set " + o + " overrides a key the variants vary");
  std::vector<Planned> plan = validated_plan(spec, request, outcome.directory);
  // Studies often share their baseline: a variant whose config is identical
  // to an earlier one's shares that run instead of repeating it.
  std::vector<toml::table> configs;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    configs.push_back(comparable_config(plan[i].resolved_config, plan[i].variant->label));
    for (std::size_t j = 0; j < i && plan[i].same_as == nullptr; ++j)
      if (plan[j].same_as == nullptr && configs[j] == configs[i]) plan[i].same_as = &plan[j];
  }
  fs::create_directories(outcome.directory / "logs");
  const DirectoryLock lock(outcome.directory);  // before anything in it is cleared or written
  for (auto& p : plan)
    if (p.same_as == nullptr) classify(p, outcome.directory / p.variant->slug);

  write_file_atomically(outcome.directory / "sweep.toml", read_text(spec.file));
  write_manifest(outcome.directory, spec, plan);
  const auto is_run = [](const Planned& p) { return p.same_as == nullptr; };
  const auto runs = std::count_if(plan.begin(), plan.end(), is_run);
  const auto pending = std::count_if(plan.begin(), plan.end(),
                                     [&](const Planned& p) { return is_run(p) && p.state == State::pending; });
  progress.line("sweep: " + std::to_string(plan.size()) + " variants (" + std::to_string(runs) + " distinct runs) in " +
                outcome.directory.string() + ", " + std::to_string(runs - pending) + " already finished, " +
                std::to_string(request.jobs) + " at a time");

  std::map<pid_t, std::pair<Planned*, Clock::time_point>> running;
  std::size_t next = 0;
  int done = static_cast<int>(runs - pending);
  auto start_next = [&] {
    while (next < plan.size() && (plan[next].state != State::pending || plan[next].same_as != nullptr)) ++next;
    if (next == plan.size()) return false;
    Planned& p = plan[next++];
    const fs::path run_dir = outcome.directory / p.variant->slug;
    std::vector<std::string> args{"run", spec.base.string()};
    for (const auto& o : p.overrides) {
      args.emplace_back("--set");
      args.push_back(o);
    }
    args.emplace_back("--out");
    args.push_back(run_dir.string());
    const fs::path log = outcome.directory / "logs" / (p.variant->slug + ".log");
    std::error_code ec;
    fs::remove(log, ec);
    running[spawn_process(request.executable, args, log)] = {&p, Clock::now()};
    progress.line("sweep: started '" + p.variant->label + "' (log: " + log.string() + ")");
    return true;
  };
  while (static_cast<int>(running.size()) < request.jobs && start_next()) {
  }
  while (!running.empty()) {
    const ProcessExit exit = wait_for_any_child();
    const auto it = running.find(exit.pid);
    if (it == running.end()) continue;
    Planned& p = *it->second.first;
    p.seconds = std::chrono::duration<double>(Clock::now() - it->second.second).count();
    running.erase(it);
    const fs::path run_dir = outcome.directory / p.variant->slug;
    std::error_code ec;
    p.exit_code = exit.exit_code;
    p.state = exit.exit_code == 0 && fs::exists(run_dir / "summary.json", ec) ? State::finished : State::failed;
    ++done;
    progress.line("sweep: [" + std::to_string(done) + "/" + std::to_string(runs) + "] '" + p.variant->label +
                  "' " + (p.state == State::finished ? "finished" : "FAILED (exit " + std::to_string(exit.exit_code) +
                                                                         ", see logs/" + p.variant->slug + ".log)") +
                  " in " + format_fixed(p.seconds, 0) + " s" +
                  (p.state == State::finished ? final_accuracy_line(run_dir) : ""));
    write_manifest(outcome.directory, spec, plan);
    while (static_cast<int>(running.size()) < request.jobs && start_next()) {
    }
  }

  for (const auto& p : plan) {
    if (!is_run(p)) continue;
    outcome.finished += p.state == State::finished ? 1 : 0;
    outcome.failed += p.state == State::failed ? 1 : 0;
    outcome.skipped += p.skipped ? 1 : 0;
  }
  outcome.report = report::write_sweep_report(outcome.directory);
  return outcome;
}

}  // namespace pretext::sweep
