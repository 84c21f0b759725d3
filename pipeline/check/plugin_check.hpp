// `pretext check-plugin`: an author's first command. Loads one plugin library
// and exercises what it registers, printing one line per check:
//
//   the ABI descriptor and the components the library registers;
//   for each pretext task:
//     views      make_views on hand-made images, under the guarded view
//                contract: counts, shapes, every element written, labels >= 0;
//     seeded     the same views from the same seed, twice;
//     threads    the same batches from the flow graph with 1 and 2 threads;
//     train      a few train_steps on a synthetic batch: finite loss, weights change;
//     save/load  a checkpoint loaded into a fresh task: the fresh task saves
//                the same tensors and values again (optimisers aside: LibTorch
//                keys their state by parameter address), and the next step
//                gives the same loss;
//   for each model: a backbone and a head, their output shapes, a backward pass;
//   for each loss: a finite scalar with a gradient, on hand-made logits;
//   for each stage: finite pixels, the same result from the same seed.
//
// Everything runs on the config's device with the built-in defaults
// otherwise (conv4, 3x32x32 images), changed by --set like any run.
#pragma once

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

namespace pretext {

struct PluginCheckRequest {
  std::string plugin;                  // a registered name, a pretext_<name>.so name, or a path
  std::vector<std::string> overrides;  // --set KEY=VALUE
};

struct PluginCheckResult {
  int passed = 0;
  int failed = 0;
};

/// Runs the checks, printing to `out`. Throws PluginError when the library
/// cannot be found or loaded (exit 2); a failed check is counted, not thrown.
PluginCheckResult check_plugin(const PluginCheckRequest& request, std::ostream& out);

}  // namespace pretext
