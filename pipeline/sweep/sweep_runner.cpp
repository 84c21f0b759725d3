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

#include "common/atomic_file.hpp"
#include "common/errors.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/report/html_report.hpp"
#include "pipeline/report/sweep_manifest.hpp"
#include "pipeline/sweep/child_process.hpp"
#include "pipeline/train/assembled_run.hpp"
#include "pipeline/train/compute.hpp"

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

report::VariantStatus status_of(State state) {
  return state == State::finished ? report::VariantStatus::finished
         : state == State::failed ? report::VariantStatus::failed
                                  : report::VariantStatus::pending;
}

void write_manifest(const fs::path& dir, const SweepSpec& spec, const std::vector<Planned>& plan) {
  report::SweepManifest manifest;
  manifest.title = spec.title;
  manifest.metric_mode = spec.chart_mode;
  manifest.sweep_file = fs::absolute(spec.file);
  manifest.base = fs::absolute(spec.base);
  for (const auto& p : plan) {
    const Planned& run = p.same_as != nullptr ? *p.same_as : p;
    report::SweepVariant v;
    v.study = p.variant->study;
    v.label = p.variant->label;
    v.dir = run.variant->slug;
    v.status = status_of(run.state);
    if (p.same_as != nullptr) v.same_run_as = p.same_as->variant->label;
    v.overrides = p.overrides;
    v.exit_code = run.exit_code;
    v.seconds = p.seconds;
    manifest.variants.push_back(std::move(v));
  }
  report::write_sweep_manifest(dir / report::kSweepManifestName, manifest);
}

/// Validates the variant's whole config, plugins included, without loading data.
std::string validate(const SweepSpec& spec, const Planned& p) {
  try {
    const AssembledRun run(spec.base, p.overrides);
    Compute::from(run.options().trainer);  // the device, as a run would check it
    return run.resolved_config();
  } catch (const ConfigError& e) {
    throw ConfigError("variant '" + p.variant->label + "' (" + p.variant->where + "): " + e.what());
  } catch (const PluginError& e) {
    throw PluginError("variant '" + p.variant->label + "' (" + p.variant->where + "): " + e.what());
  }
}

/// Finished (summary.json), interrupted (a directory without it: cleared) or
/// new. A finished run with another config is refused, not silently reused.
void classify(Planned& p, const fs::path& run_dir) {
  const artefacts::RunLayout run(run_dir);
  std::error_code ec;
  if (run.finished()) {
    const std::string saved = read_text(run.config());
    if (comparable_config(saved, run.config().string()) != comparable_config(p.resolved_config, "variant"))
      throw ConfigError("variant '" + p.variant->label + "' (" + p.variant->where + ") already ran in " +
                        run_dir.string() +
                        " with another config; delete that directory to run it again, "
                        "or give the sweep another --out");
    p.state = State::finished;
    p.skipped = true;
  } else if (fs::exists(run_dir, ec)) {
    fs::remove_all(run_dir);  // interrupted: start it again from the beginning
  }
}

std::string final_accuracy_line(const fs::path& run_dir) {
  try {
    const toml::table summary = toml::parse_file(artefacts::RunLayout(run_dir).summary_toml().string());
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
std::vector<Planned> validated_plan(const SweepSpec& spec, const SweepRequest& request) {
  std::vector<Planned> plan(spec.variants.size());
  for (std::size_t i = 0; i < plan.size(); ++i) {
    plan[i].variant = &spec.variants[i];
    plan[i].overrides = variant_overrides(spec, spec.variants[i], request);
    plan[i].resolved_config = validate(spec, plan[i]);
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
  return validated_plan(spec, request).size();
}

std::vector<std::string> variant_overrides(const SweepSpec& spec, const Variant& variant, const SweepRequest& request) {
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

namespace {

fs::path sweep_directory(const SweepRequest& request) {
  if (!request.out.empty()) return request.out;
  std::string name = "sweep-" + request.sweep_file.stem().string();
  if (!request.base.empty()) name += "-" + request.base.stem().string();
  return fs::path("runs") / name;
}

bool is_run(const Planned& p) { return p.same_as == nullptr; }

/// Validates every variant (before anything is written) and shares the runs
/// of identical configs.
std::vector<Planned> plan_sweep(const SweepSpec& spec, const SweepRequest& request, Progress& progress) {
  std::set<std::string> varied;
  for (const auto& v : spec.variants)
    for (const auto& o : v.overrides) varied.insert(key_of(o));
  for (const auto& o : request.overrides)
    if (varied.count(key_of(o)) != 0)
      progress.line("sweep: warning: --set " + o + " overrides a key the variants vary");
  std::vector<Planned> plan = validated_plan(spec, request);
  // Studies often share their baseline: a variant whose config is identical
  // to an earlier one's shares that run instead of repeating it.
  std::vector<toml::table> configs;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    configs.push_back(comparable_config(plan[i].resolved_config, plan[i].variant->label));
    for (std::size_t j = 0; j < i && plan[i].same_as == nullptr; ++j)
      if (plan[j].same_as == nullptr && configs[j] == configs[i]) plan[i].same_as = &plan[j];
  }
  return plan;
}

/// Runs the pending variants, `request.jobs` at a time, each as a child
/// `pretext run`; the manifest is rewritten as each one ends.
void schedule_runs(const SweepSpec& spec, const SweepRequest& request, const fs::path& directory,
                   std::vector<Planned>& plan, Progress& progress) {
  const auto runs = std::count_if(plan.begin(), plan.end(), is_run);
  const auto pending =
      std::count_if(plan.begin(), plan.end(), [&](const Planned& p) { return is_run(p) && p.state == State::pending; });
  progress.line("sweep: " + std::to_string(plan.size()) + " variants (" + std::to_string(runs) + " distinct runs) in " +
                directory.string() + ", " + std::to_string(runs - pending) + " already finished, " +
                std::to_string(request.jobs) + " at a time");

  std::map<pid_t, std::pair<Planned*, Clock::time_point>> running;
  std::size_t next = 0;
  int done = static_cast<int>(runs - pending);
  auto start_next = [&] {
    while (next < plan.size() && (plan[next].state != State::pending || !is_run(plan[next]))) ++next;
    if (next == plan.size()) return false;
    Planned& p = plan[next++];
    std::vector<std::string> args{"run", spec.base.string()};
    for (const auto& o : p.overrides) {
      args.emplace_back("--set");
      args.push_back(o);
    }
    args.emplace_back("--out");
    args.push_back((directory / p.variant->slug).string());
    const fs::path log = directory / "logs" / (p.variant->slug + ".log");
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
    const fs::path run_dir = directory / p.variant->slug;
    p.exit_code = exit.exit_code;
    p.state = exit.exit_code == 0 && artefacts::RunLayout(run_dir).finished() ? State::finished : State::failed;
    ++done;
    progress.line("sweep: [" + std::to_string(done) + "/" + std::to_string(runs) + "] '" + p.variant->label + "' " +
                  (p.state == State::finished
                       ? "finished"
                       : "FAILED (exit " + std::to_string(exit.exit_code) + ", see logs/" + p.variant->slug + ".log)") +
                  " in " + format_fixed(p.seconds, 0) + " s" +
                  (p.state == State::finished ? final_accuracy_line(run_dir) : ""));
    write_manifest(directory, spec, plan);
    while (static_cast<int>(running.size()) < request.jobs && start_next()) {
    }
  }
}

/// Counts the outcome (in distinct runs) and writes the sweep report.
SweepOutcome summarise(const fs::path& directory, const std::vector<Planned>& plan) {
  SweepOutcome outcome;
  outcome.directory = directory;
  for (const auto& p : plan) {
    if (!is_run(p)) continue;
    outcome.finished += p.state == State::finished ? 1 : 0;
    outcome.failed += p.state == State::failed ? 1 : 0;
    outcome.skipped += p.skipped ? 1 : 0;
  }
  outcome.report = report::write_sweep_report(directory);
  return outcome;
}

}  // namespace

SweepOutcome run_sweep(const SweepRequest& request, Progress& progress) {
  if (request.jobs < 1) throw UsageError("--jobs expects at least 1");
  const SweepSpec spec = load_spec(request);
  const fs::path directory = sweep_directory(request);
  std::vector<Planned> plan = plan_sweep(spec, request, progress);
  fs::create_directories(directory / "logs");
  const DirectoryLock lock(directory);  // before anything in it is cleared or written
  for (auto& p : plan)
    if (is_run(p)) classify(p, directory / p.variant->slug);
  write_file_atomically(directory / "sweep.toml", read_text(spec.file));
  write_manifest(directory, spec, plan);
  schedule_runs(spec, request, directory, plan, progress);
  return summarise(directory, plan);
}

}  // namespace pretext::sweep
