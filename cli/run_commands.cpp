// pretext run | config | sample | plugins
#include <iostream>

#include "cli/commands.hpp"
#include "cli/interruptible_run.hpp"
#include "common/errors.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/sweep/child_process.hpp"
#include "pipeline/train/assembled_run.hpp"
#include "pipeline/train/job.hpp"
#include "pipeline/train/sample.hpp"

namespace pretext::cli {

int run_command(const Arguments& args) {
  sweep::exit_with_parent_if_asked();  // a sweep's variant ends with its sweep
  JobRequest request{args.single("CONFIG file"), args.overrides, args.value("out")};
  request.force = args.flag("force");
  return run_interruptibly(request);
}

int config_command(const Arguments& args) {
  const AssembledRun run(args.single("CONFIG file"), args.overrides);
  std::cout << run.resolved_config() << '\n';
  return 0;
}

int sample_command(const Arguments& args) {
  const std::filesystem::path run_dir = args.single("RUN_DIR");
  const std::filesystem::path out = args.required("out", "FILE.png");
  const std::int64_t count = args.integer("count", 64, 1, 4096);
  sample_from_run(run_dir, count, out);
  std::cout << out.string() << '\n';
  return 0;
}

int plugins_command(const Arguments& /*args*/) {
  PluginHost host;
  register_builtins(host);
  for (const auto& message : host.load_search_path()) std::cerr << "skipped: " << message << '\n';
  for (auto kind : {ComponentKind::model, ComponentKind::pretext, ComponentKind::loss, ComponentKind::stage}) {
    std::cout << to_string(kind) << ":\n";
    for (const auto& name : host.names(kind)) std::cout << "  " << name << "  " << host.origin(kind, name) << '\n';
  }
  return 0;
}

}  // namespace pretext::cli
