// pretext export | embed: a finished run's networks and features, for Python.
#include <iostream>

#include "cli/commands.hpp"
#include "pipeline/train/export.hpp"
#include "pipeline/train/saved_run.hpp"

namespace pretext::cli {

int export_command(const Arguments& args) {
  const std::filesystem::path run_dir = args.single("RUN_DIR");
  const std::filesystem::path out = args.required("out", "FILE.pt");
  const SavedRun run(run_dir);
  export_state_dict(run, args.value("mode", "pretext"), out);
  std::cout << out.string() << '\n';
  return 0;
}

int embed_command(const Arguments& args) {
  const std::filesystem::path run_dir = args.single("RUN_DIR");
  const std::filesystem::path data = args.required("data", "CONFIG.toml or a dataset file");
  const std::filesystem::path out = args.required("out", "FILE.npy");
  const std::string mode = args.value("mode", "pretext");
  const Pooling pooling = pooling_from(args.value("pool", "none"));
  labels_file_for(out);  // checks the name before any work is done

  const SavedRun run(run_dir);
  const SavedNetworks networks = run.load(mode);
  torch::set_num_threads(static_cast<int>(run.options().threads));
  const Embedding embedding =
      embed(run, networks, load_embedding_data(data), pooling, Compute::from(run.options().trainer));
  write_embedding(out, embedding);
  std::cout << out.string() << '\n' << labels_file_for(out).string() << '\n';
  return 0;
}

}  // namespace pretext::cli
