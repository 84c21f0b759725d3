// pretext preprocess
#include <iostream>

#include "cli/commands.hpp"
#include "data/preprocess.hpp"
#include "pipeline/train/job.hpp"

namespace pretext::cli {

int preprocess_command(const Arguments& args) {
  const std::filesystem::path out = args.required("out", "FILE.pack");
  // The whole config is validated (plugins too), so a packed file is only
  // made for a config that can run; the data itself is loaded here.
  JobRequest request{args.single("CONFIG file"), args.overrides, {}, false};
  const Job job(request);
  data::preprocess_to_packed(job.options().data, out, std::cerr);
  std::cout << out.string() << '\n';
  return 0;
}

}  // namespace pretext::cli
