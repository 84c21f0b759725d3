// pretext run | config | sample | plugins
#include <iostream>

#include <boost/filesystem.hpp>

#include "cli/commands.hpp"
#include "cli/interruptible_run.hpp"
#include "pipeline/errors.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/sweep/child_process.hpp"
#include "pipeline/train/job.hpp"
#include "stages/builtin_stages.hpp"

namespace pretext::cli {

int run_command(const Arguments& args) {
  sweep::exit_with_parent_if_asked();  // a sweep's variant ends with its sweep
  JobRequest request{args.single("CONFIG file"), args.overrides, args.value("out")};
  request.force = args.flag("force");
  return run_interruptibly(request);
}

int config_command(const Arguments& args) {
  JobRequest request{args.single("CONFIG file"), args.overrides, {}};
  Job job(request);
  std::cout << job.resolved_config() << '\n';
  return 0;
}

int sample_command(const Arguments& args) {
  const std::filesystem::path run_dir = args.single("RUN_DIR");
  const std::filesystem::path out = args.required("out", "FILE.png");
  const std::int64_t count = args.integer("count", 64, 1, 4096);
  JobRequest request{run_dir / "config.toml", {}, run_dir};
  Job job(request);
  job.sample(run_dir / "pretext.pt", count, out);
  std::cout << out.string() << '\n';
  return 0;
}

int plugins_command(const Arguments& /*args*/) {
  PluginHost host;
  for (auto& [name, maker] : stages::builtin_stages()) host.builtins().add_stage(name, maker);
  for (const auto& dir : host.search_path()) {
    boost::system::error_code ec;
    for (boost::filesystem::directory_iterator it(dir.string(), ec), end; !ec && it != end; it.increment(ec)) {
      const auto file = it->path();
      if (file.extension() == ".so" && file.filename().string().rfind("pretext_", 0) == 0) {
        try {
          host.load_library(file.string());
        } catch (const std::exception& e) {
          std::cerr << "skipped: " << e.what() << '\n';
        }
      }
    }
  }
  for (auto kind : {ComponentKind::model, ComponentKind::pretext, ComponentKind::loss, ComponentKind::stage}) {
    std::cout << to_string(kind) << ":\n";
    for (const auto& name : host.names(kind)) std::cout << "  " << name << "  " << host.origin(kind, name) << '\n';
  }
  return 0;
}

}  // namespace pretext::cli
