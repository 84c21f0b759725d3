// pretext-distributed-bench: what data parallelism costs per training step.
// Two ranks as two threads of this process, each with its own ProcessGroup
// over loopback (c10d's TCPStore and gloo, as `pretext launch` would give two
// processes), average the gradients of a conv4 backbone with its rotation
// head (configs/study.toml's networks) at several bucket sizes. A benchmark
// program, not a test: see bench/README.md. No figure is asserted.
//
//   pretext-distributed-bench [--steps N] [--bytes B] [--width W]
//
// --bytes B replaces the model with B bytes of parameters, 256 KiB each.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "pipeline/distributed/gradient_buckets.hpp"
#include "pipeline/distributed/local_launcher.hpp"
#include "pipeline/distributed/process_group.hpp"

namespace {

using namespace pretext::distributed;
using Clock = std::chrono::steady_clock;

struct Settings {
  int steps = 200;          // measured steps per case, after kWarmup
  std::int64_t bytes = 0;   // 0: the conv4 model's gradients
  std::int64_t width = 64;  // conv4's default filters per layer
};

constexpr int kWarmup = 20;  // steps run before timing: connections, buffers, caches

// plugins/conv4 with 3 input channels on 32x32 images: four 3x3 conv +
// batch-norm blocks of `width` filters, and the rotation head, one conv over
// the 2x2 map to 4 classes. Built here so the bench needs no plugin.
std::vector<torch::Tensor> conv4_parameters(std::int64_t width) {
  torch::nn::Sequential net;
  std::int64_t in = 3;
  for (int block = 0; block < 4; ++block) {
    net->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, width, 3).padding(1)));
    net->push_back(torch::nn::BatchNorm2d(width));
    in = width;
  }
  net->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(width, 4, 2)));
  return net->parameters();
}

std::vector<torch::Tensor> model_parameters(const Settings& s) {
  if (s.bytes <= 0) return conv4_parameters(s.width);
  // Parameters of 256 KiB, like a large conv layer's weight, so that buckets group several.
  constexpr std::int64_t kElements = 65536;
  std::vector<torch::Tensor> parameters;
  for (std::int64_t left = std::max<std::int64_t>(1, s.bytes / 4); left > 0; left -= kElements)
    parameters.push_back(torch::zeros({std::min(left, kElements)}, torch::requires_grad()));
  return parameters;
}

struct Row {
  std::string name;
  std::size_t buckets = 0;
  std::int64_t bytes = 0;
  double ms_per_step = 0;
};

// Runs `step(group, rank)` kWarmup + steps times on two ranks; the time per step is rank 0's.
template <typename Step>
double time_two_ranks(const Settings& s, Step step) {
  const int port = pick_free_port();
  double seconds = 0;
  std::exception_ptr error;
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 2; ++rank)
    ranks.emplace_back([&, rank] {
      try {
        DistributedEnvironment env;
        env.rank = rank;
        env.world_size = 2;
        env.local_rank = rank;
        env.local_world_size = 2;
        env.master_addr = "127.0.0.1";
        env.master_port = port;
        ProcessGroup group(env, std::chrono::seconds(60));
        auto state = step.prepare();
        for (int i = 0; i < kWarmup; ++i) step.run(group, state, rank);
        group.barrier();
        const auto start = Clock::now();
        for (int i = 0; i < s.steps; ++i) step.run(group, state, rank);
        if (rank == 0) seconds = std::chrono::duration<double>(Clock::now() - start).count();
        group.barrier();
      } catch (...) {
        if (rank == 0 || !error) error = std::current_exception();
      }
    });
  for (auto& t : ranks) t.join();
  if (error) std::rethrow_exception(error);
  return 1000.0 * seconds / s.steps;
}

// One training step's gradient averaging: fresh gradients, then average().
struct AverageStep {
  const Settings& settings;
  std::int64_t bucket_bytes;
  struct State {
    std::vector<torch::Tensor> parameters;
    GradientAverager averager;
  };
  State prepare() const {
    auto parameters = model_parameters(settings);
    for (auto& p : parameters) p.mutable_grad() = torch::ones_like(p);
    GradientAverager averager(parameters, bucket_bytes);
    return {parameters, std::move(averager)};
  }
  void run(ProcessGroup& group, State& state, int /*rank*/) const { state.averager.average(group); }
};

// The floor: a barrier, i.e. one collective that moves no data (with its arrival mark in the store).
struct BarrierStep {
  struct State {};
  State prepare() const { return {}; }
  void run(ProcessGroup& group, State&, int) const { group.barrier(); }
};

// A store write: the arrival mark every collective leaves (c10d sends it without waiting for a reply).
struct StoreStep {
  struct State {};
  State prepare() const { return {}; }
  void run(ProcessGroup& group, State&, int rank) const { group.set("bench/" + std::to_string(rank), "1"); }
};

Settings parse(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const auto value = [&]() -> std::int64_t {
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
      return std::stoll(argv[++i]);
    };
    if (flag == "--steps") {
      s.steps = static_cast<int>(std::max<std::int64_t>(1, value()));
    } else if (flag == "--bytes") {
      s.bytes = value();
    } else if (flag == "--width") {
      s.width = std::max<std::int64_t>(1, value());
    } else {
      throw std::invalid_argument("unknown option " + flag + " (--steps N, --bytes B, --width W)");
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Settings s = parse(argc, argv);
    torch::set_num_threads(1);  // two ranks share the machine, as under `pretext launch --nproc-per-node 2`
    std::int64_t gradient_bytes = 0;
    for (const auto& p : model_parameters(s)) gradient_bytes += p.numel() * static_cast<std::int64_t>(p.element_size());
    std::printf("distributed bench: 2 ranks (threads) over loopback, gloo; %s: %lld gradient bytes; %d steps\n",
                s.bytes > 0 ? "256 KiB parameters" : ("conv4 width " + std::to_string(s.width)).c_str(),
                static_cast<long long>(gradient_bytes), s.steps);

    std::vector<Row> rows;
    rows.push_back({"store set (the arrival mark)", 0, 0, time_two_ranks(s, StoreStep{})});
    rows.push_back({"barrier (no data)", 0, 0, time_two_ranks(s, BarrierStep{})});
    for (const std::int64_t bucket : {GradientAverager::kDefaultBucketBytes, std::int64_t{1} << 20,
                                      std::int64_t{256} << 10, std::int64_t{64} << 10, std::int64_t{16} << 10}) {
      const GradientAverager shape(model_parameters(s), bucket);
      Row row;
      row.name = "average, bucket " + std::to_string(bucket >> 10) + " KiB";
      row.buckets = shape.buckets();
      row.bytes = shape.bytes_per_step();
      row.ms_per_step = time_two_ranks(s, AverageStep{s, bucket});
      rows.push_back(row);
    }
    std::printf("%-28s %8s %14s %12s %10s\n", "case", "buckets", "bytes/step", "ms/step", "MB/s");
    for (const auto& r : rows)
      std::printf("%-28s %8zu %14lld %12.3f %10.1f\n", r.name.c_str(), r.buckets, static_cast<long long>(r.bytes),
                  r.ms_per_step, r.bytes > 0 ? r.bytes / (r.ms_per_step * 1000.0) : 0.0);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pretext-distributed-bench: %s\n", e.what());
    return 1;
  }
}
