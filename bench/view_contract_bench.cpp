// pretext-view-contract-bench: what the view contract's checks cost the flow
// graph (pipeline/plugin_host/view_contract.hpp). The rotation task's four
// views per 3x32x32 image (bench_support's RotationViews), with color_jitter,
// through the real graph: unchecked, with basic checks and guarded, at 1 and
// 2 threads, side by side in one run (this machine's speed drifts by the hour).
//
//   pretext-view-contract-bench [--images N] [--rounds R]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "bench/bench_support.hpp"
#include "pipeline/plugin_host/view_contract.hpp"
#include "stages/builtin_stages.hpp"
#include "stages/epoch_graph.hpp"

namespace {

using namespace pretext;

double views_per_second(const data::ImageSet& set, const ViewMaker& views, int threads, std::uint64_t epoch) {
  stages::EpochSpec spec;
  spec.plan.images = &set;
  std::vector<std::uint32_t> order(set.size());
  std::iota(order.begin(), order.end(), 0U);
  spec.plan.order = stages::shuffled(std::move(order), 1, epoch);
  spec.plan.seed = 1;
  spec.plan.epoch = epoch;
  spec.views = &views;
  spec.batch_size = 128;
  spec.graph.threads = threads;
  volatile float sink = 0.0F;
  const stages::EpochStats stats =
      stages::run_epoch(spec, [&](const stages::Batch& batch) { sink = sink + batch.pixels()[0]; });
  return static_cast<double>(stats.samples) / stats.seconds;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t images = 20000;
  int rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--images") images = std::strtoul(argv[i + 1], nullptr, 10);
    if (flag == "--rounds") rounds = std::atoi(argv[i + 1]);
  }
  const data::ImageSet set = bench::synthetic_images(images);
  const bench::RotationViews rotation;
  const std::string label = "pretext plugin 'rotation' (bench)";
  const GuardedViewMaker basic(rotation, label, ViewChecks::basic);
  const GuardedViewMaker guarded(rotation, label, ViewChecks::guarded);
  struct Row {
    const char* name;
    const ViewMaker* views;
  };
  const Row rows[] = {{"unchecked", &rotation}, {"basic", &basic}, {"guarded", &guarded}};

  std::printf("views/s through the flow graph: %zu images x 4 rotation views (3x32x32), best of %d rounds\n", images,
              rounds);
  std::printf("%-10s %8s %14s %10s\n", "checks", "threads", "views/s", "vs none");
  for (const int threads : {1, 2}) {
    double best[3] = {0, 0, 0};
    // Interleaved rounds: drift in the machine's speed hits every row alike.
    for (int round = 0; round < rounds; ++round)
      for (int r = 0; r < 3; ++r)
        best[r] = std::max(best[r], views_per_second(set, *rows[r].views, threads, static_cast<std::uint64_t>(round)));
    for (int r = 0; r < 3; ++r)
      std::printf("%-10s %8d %14.0f %9.2fx\n", rows[r].name, threads, best[r], best[r] / best[0]);
  }
  return 0;
}
