// pretext-bench: throughput and memory of the training-input pipeline.
//
// Runs the real flow graph (stages::run_epoch) with the rotation task's four
// views and the color_jitter stage, from three sources (memory, a packed
// file, a folder of PNGs), and a plain memcpy loop writing the same bytes as
// a bandwidth reference. The stages case puts rand_augment (FixMatch's strong
// view) in color_jitter's place. Prints one JSON object per line; see bench/README.md.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <oneapi/tbb/task_arena.h>

#include "bench/bench_support.hpp"
#include "data/image_folder.hpp"
#include "data/packed.hpp"
#include "stages/builtin_stages.hpp"
#include "stages/epoch_graph.hpp"

namespace pretext::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kBatchSize = 128;
constexpr int kViews = 4;
constexpr std::size_t kImageBytes = 3 * 32 * 32;

struct Settings {
  std::size_t images = 20000;
  int repeats = 3;
  std::vector<int> threads;
  std::vector<std::string> cases{"copy", "memory", "packed", "png", "rss", "stages"};

  [[nodiscard]] bool runs(const std::string& name) const {
    return std::find(cases.begin(), cases.end(), name) != cases.end();
  }
};

std::vector<std::string> parse_cases(const std::string& list) {
  static const std::vector<std::string> known{"copy", "memory", "packed", "png", "rss", "stages"};
  std::vector<std::string> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (std::find(known.begin(), known.end(), item) == known.end())
      throw std::invalid_argument("--cases: unknown case '" + item +
                                  "' (expected copy, memory, packed, png, rss, stages)");
    out.push_back(item);
  }
  if (out.empty()) throw std::invalid_argument("--cases: expected a list like memory,packed");
  return out;
}

int hardware_threads() { return std::max(1U, std::thread::hardware_concurrency()); }

std::vector<int> parse_threads(const std::string& list) {
  std::vector<int> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    const int t = std::stoi(item);
    if (t < 1) throw std::invalid_argument("--threads: every entry must be >= 1, got " + item);
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  }
  if (out.empty()) throw std::invalid_argument("--threads: expected a list like 1,2");
  return out;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

/// The built-in stage `wanted`, made as from a TOML section holding `numbers`
/// (every other key at its default).
std::shared_ptr<const Stage> builtin_stage(const std::string& wanted, std::map<std::string, double> numbers) {
  FixedOptions options(std::move(numbers));
  for (auto& [name, maker] : stages::builtin_stages())
    if (name == wanted) return maker(options);
  throw std::runtime_error("no built-in " + wanted + " stage");
}

/// The stages a pipeline row may run: color_jitter everywhere, rand_augment
/// (defaults: 2 ops, magnitude up to 10, cutout 0.5) in the stages case.
const std::shared_ptr<const Stage>& stage_named(const std::string& name) {
  static const std::map<std::string, std::shared_ptr<const Stage>> stages{
      {"color_jitter", builtin_stage("color_jitter", {{"brightness", 0.2}, {"contrast", 0.4}, {"saturation", 0.5}})},
      {"rand_augment", builtin_stage("rand_augment", {})}};
  return stages.at(name);
}

/// One epoch through the real graph; the consumer only touches each batch.
stages::EpochStats run_pipeline(const data::ImageSet& set, int threads, std::uint64_t epoch,
                                double consumer_seconds_per_batch = 0.0, const std::string& stage = "color_jitter") {
  static const RotationViews rotation;
  stages::EpochSpec spec;
  spec.plan.images = &set;
  std::vector<std::uint32_t> order(set.size());
  std::iota(order.begin(), order.end(), 0U);
  spec.plan.order = stages::shuffled(std::move(order), 1, epoch);
  spec.plan.seed = 1;
  spec.plan.epoch = epoch;
  spec.views = &rotation;
  spec.stages = {stage_named(stage)};
  spec.batch_size = kBatchSize;
  spec.graph.threads = threads;
  volatile double sink = 0.0;
  const stages::EpochStats stats = run_epoch(spec, [&](const stages::Batch& batch) {
    sink = sink + batch.pixels()[0] + batch.pixels()[batch.numel() - 1] + static_cast<double>(batch.labels.front());
    if (consumer_seconds_per_batch > 0) {  // stands in for a training step: busy, as a trainer is
      const auto until = Clock::now() + std::chrono::duration<double>(consumer_seconds_per_batch);
      while (Clock::now() < until) {
      }
    }
  });
  return stats;
}

std::size_t output_bytes(std::size_t samples) { return samples * 3 * 32 * 32 * sizeof(float); }

/// memcpy of `bytes` in total, split over `threads`, through 64 MiB source and
/// destination buffers (larger than any cache, so this is memory bandwidth).
double copy_seconds(std::size_t bytes, int threads) {
  constexpr std::size_t kBuffer = 64U << 20;
  constexpr std::size_t kChunk = 1U << 20;
  std::vector<char> src(kBuffer, 1);
  std::vector<char> dst(kBuffer, 0);
  const std::size_t slice = kBuffer / static_cast<std::size_t>(threads) / kChunk * kChunk;
  const std::size_t share = bytes / static_cast<std::size_t>(threads);
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const std::size_t base = static_cast<std::size_t>(t) * slice;
      std::size_t offset = 0;
      for (std::size_t done = 0; done < share;) {
        const std::size_t n = std::min(kChunk, share - done);
        std::memcpy(dst.data() + base + offset, src.data() + base + offset, n);
        done += n;
        offset = offset + kChunk >= slice ? 0 : offset + kChunk;
      }
    });
  }
  for (auto& w : workers) w.join();
  const double seconds = seconds_since(start);
  if (dst[kBuffer / 2] != 1 && dst[0] != 1) std::fprintf(stderr, "copy reference: nothing copied\n");
  return seconds;
}

/// Runs one untimed and `repeats` timed epochs; prints the row for their
/// median and returns its output views per second.
double pipeline_row(const Settings& settings, const data::ImageSet& set, const std::string& source, int threads,
                    double copy_bytes_per_second, const std::string& access = "",
                    const std::string& stage = "color_jitter") {
  std::vector<double> seconds;
  // One untimed epoch first, so each case starts with the same warm threads,
  // allocator and caches whichever case ran before it.
  stages::EpochStats stats = run_pipeline(set, threads, 1000, 0.0, stage);
  for (int r = 0; r < settings.repeats; ++r) {
    stats = run_pipeline(set, threads, static_cast<std::uint64_t>(r), 0.0, stage);
    seconds.push_back(stats.seconds);
  }
  const double med = median(seconds);
  const double views_per_second = static_cast<double>(stats.samples) / med;
  const double bytes_per_second = static_cast<double>(output_bytes(stats.samples)) / med;
  JsonRow()
      .add("case", "pipeline")
      .add("source", source)
      .add("threads", threads)
      .add("access", access)
      .add("stage", stage)
      .add("images", set.size())
      .add("views_per_image", kViews)
      .add("output_images", static_cast<long long>(stats.samples))
      .add("batches", static_cast<long long>(stats.batches))
      .add("images_per_second", views_per_second)
      .add("source_images_per_second", static_cast<double>(set.size()) / med)
      .add("seconds_median", med)
      .add("seconds_min", *std::min_element(seconds.begin(), seconds.end()))
      .add("output_bytes_per_second", bytes_per_second)
      .add("fraction_of_copy_bandwidth", copy_bytes_per_second > 0 ? bytes_per_second / copy_bytes_per_second : 0.0)
      .add("consumer_wait_fraction", stats.wait_seconds / stats.seconds)
      .add("max_batches_in_flight", stats.max_batches_in_flight)
      .print();
  return views_per_second;
}

/// color_jitter and rand_augment in the same pipeline from memory, one after
/// the other per thread count, then a row comparing the two.
void stage_rows(const Settings& settings, const data::ImageSet& set, const std::vector<double>& copy_rate) {
  for (int t : settings.threads) {
    const double copy = copy_rate[static_cast<std::size_t>(t)];
    const double jitter = pipeline_row(settings, set, "memory", t, copy, "", "color_jitter");
    const double rand_augment = pipeline_row(settings, set, "memory", t, copy, "", "rand_augment");
    JsonRow()
        .add("case", "stage_comparison")
        .add("source", "memory")
        .add("threads", t)
        .add("images", set.size())
        .add("color_jitter_images_per_second", jitter)
        .add("rand_augment_images_per_second", rand_augment)
        .add("rand_augment_over_color_jitter", jitter > 0 ? rand_augment / jitter : 0.0)
        .print();
  }
}

/// A temporary directory removed on scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "pretext-bench-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a temporary directory");
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

/// Child mode: one epoch on `images` in-memory images, or on the packed file
/// `source` (checksum verified, as a run does),
/// with access = "stream"; prints peak and post-load RSS in KiB.
int rss_child(const std::string& source, int threads) {
  const bool memory = source.rfind("memory:", 0) == 0;
  data::ImageSet set;
  if (memory) {
    set = synthetic_images(std::stoul(source.substr(7)));
  } else {
    set = data::read_packed(source, true, data::PackedAccess::stream).images;
  }
  const long after_data = proc_status_kib("VmRSS");
  // A consumer slower than the graph, as training is, so the graph fills its
  // bound on batches in flight: the peak is then the graph's real maximum,
  // not whatever a race between producers and a trivial consumer reached.
  constexpr double kStepSeconds = 1e-3;
  run_pipeline(set, threads, 0, kStepSeconds);
  std::printf("%ld %ld\n", proc_status_kib("VmHWM"), after_data);
  return 0;
}

/// Runs this program in `--rss-child` mode (fork + exec, so nothing of this
/// process's memory is inherited) and returns {VmHWM, VmRSS after the data} in KiB.
std::pair<long, long> measure_rss(const std::string& source, int threads) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    const std::string t = std::to_string(threads);
    execl("/proc/self/exe", "pretext-bench", "--rss-child", source.c_str(), t.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string text;
  char buffer[256];
  ssize_t got = 0;
  while ((got = read(fds[0], buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<std::size_t>(got));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("rss child failed");
  std::istringstream in(text);
  long hwm = -1;
  long after_data = -1;
  in >> hwm >> after_data;
  return {hwm, after_data};
}

void copy_rows(const Settings& settings, std::vector<double>& copy_rate) {
  const std::size_t views_total = settings.images * kViews;
  for (int t : settings.threads) {
    std::vector<double> seconds;
    for (int r = 0; r < settings.repeats; ++r) seconds.push_back(copy_seconds(output_bytes(views_total), t));
    const double med = median(seconds);
    copy_rate[static_cast<std::size_t>(t)] = static_cast<double>(output_bytes(views_total)) / med;
    JsonRow()
        .add("case", "copy_reference")
        .add("source", "memory")
        .add("threads", t)
        .add("images", views_total)
        .add("bytes", output_bytes(views_total))
        .add("bytes_per_second", copy_rate[static_cast<std::size_t>(t)])
        .add("images_per_second", static_cast<double>(views_total) / med)
        .add("seconds_median", med)
        .print();
  }
}

void png_rows(const Settings& settings, const data::ImageSet& set, const fs::path& dir,
              const std::vector<double>& copy_rate) {
  for (std::size_t i = 0; i < set.size(); ++i) {  // ten class folders
    const fs::path class_dir = dir / std::to_string(set.labels[i]);
    if (i < 10) fs::create_directories(class_dir);
    write_rgb_png(class_dir / (std::to_string(i) + ".png"), set, i);
  }
  for (int t : settings.threads) {
    data::FolderOptions options;
    options.target = {3, 32};
    std::vector<double> seconds;
    data::FolderDataset decoded;
    for (int r = 0; r < settings.repeats; ++r) {
      oneapi::tbb::task_arena arena(t);
      const auto start = Clock::now();
      arena.execute([&] { decoded = data::load_image_folder(dir, options); });
      seconds.push_back(seconds_since(start));
    }
    const double med = median(seconds);
    JsonRow()
        .add("case", "png_decode")
        .add("source", "png")
        .add("threads", t)
        .add("images", decoded.images.size())
        .add("images_per_second", static_cast<double>(decoded.images.size()) / med)
        .add("source_images_per_second", static_cast<double>(decoded.images.size()) / med)
        .add("seconds_median", med)
        .print();
    pipeline_row(settings, decoded.images, "png", t, copy_rate[static_cast<std::size_t>(t)]);
  }
}

/// Peak RSS of a fresh process for N and 10 x N images: in memory, and from
/// a packed file read with access = "stream".
void rss_rows(const Settings& settings, const fs::path& dir) {
  const std::size_t n = settings.images;
  const int threads = *std::max_element(settings.threads.begin(), settings.threads.end());
  const auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  for (const std::string source : {"memory", "packed"}) {
    std::vector<std::pair<long, long>> peaks;
    for (const std::size_t images : {n, 10 * n}) {
      std::string child = "memory:" + std::to_string(images);
      if (source == "packed") {
        const fs::path file = dir / ("rss-" + std::to_string(images) + ".pack");
        data::write_packed(file, synthetic_images(images), {});
        child = file.string();
      }
      const auto [hwm, after_data] = measure_rss(child, threads);
      if (source == "packed") fs::remove(child);
      peaks.emplace_back(hwm, after_data);
      JsonRow()
          .add("case", "peak_rss")
          .add("source", source)
          .add("threads", threads)
          .add("access", source == "packed" ? "stream" : "")
          .add("images", images)
          .add("peak_rss_mib", static_cast<double>(hwm) / 1024.0)
          .add("dataset_mib", static_cast<double>(images * kImageBytes) / (1024.0 * 1024.0))
          .add("rss_after_load_mib", static_cast<double>(after_data) / 1024.0)
          .add("pipeline_growth_mib", static_cast<double>(hwm - after_data) / 1024.0)
          .print();
    }
    JsonRow()
        .add("case", "peak_rss_ratio")
        .add("source", source)
        .add("threads", threads)
        .add("images", 10 * n)
        .add("peak_rss_ratio", ratio(static_cast<double>(peaks[1].first), static_cast<double>(peaks[0].first)))
        .add("pipeline_growth_ratio", ratio(static_cast<double>(peaks[1].first - peaks[1].second),
                                            static_cast<double>(peaks[0].first - peaks[0].second)))
        .print();
  }
}

void run_all(const Settings& settings) {
  std::vector<double> copy_rate(
      static_cast<std::size_t>(*std::max_element(settings.threads.begin(), settings.threads.end())) + 1);
  // The memory-bandwidth reference: the pipeline's output bytes, written by memcpy.
  if (settings.runs("copy")) copy_rows(settings, copy_rate);
  TempDir temp;
  if (settings.runs("memory") || settings.runs("packed") || settings.runs("png") || settings.runs("stages")) {
    const data::ImageSet set = synthetic_images(settings.images);
    if (settings.runs("memory"))
      for (int t : settings.threads) pipeline_row(settings, set, "memory", t, copy_rate[static_cast<std::size_t>(t)]);
    if (settings.runs("packed")) {
      // Written once, then read back mapped (in place) and streamed (pread).
      const fs::path packed = temp.path / "bench.pack";
      data::write_packed(packed, set, {});
      for (const auto access : {data::PackedAccess::mmap, data::PackedAccess::stream}) {
        const data::PackedDataset opened = data::read_packed(packed, true, access);
        for (int t : settings.threads)
          pipeline_row(settings, opened.images, "packed", t, copy_rate[static_cast<std::size_t>(t)],
                       access == data::PackedAccess::mmap ? "mmap" : "stream");
      }
    }
    if (settings.runs("png")) png_rows(settings, set, temp.path / "png", copy_rate);
    if (settings.runs("stages")) stage_rows(settings, set, copy_rate);
  }
  if (settings.runs("rss")) rss_rows(settings, temp.path);
}

void usage() {
  std::fprintf(stderr,
               "usage: pretext-bench [--images N] [--repeats R] [--threads LIST] [--cases LIST] [--quick]\n"
               "  --images N      source images per case (default 20000)\n"
               "  --repeats R     epochs per case; the median is reported (default 3)\n"
               "  --threads LIST  comma-separated thread counts (default 1,<hardware threads>)\n"
               "  --cases LIST    comma-separated subset of copy,memory,packed,png,rss,stages (default: all)\n"
               "  --quick         smoke run: 2000 images, 1 repeat unless given\n");
}

}  // namespace
}  // namespace pretext::bench

int main(int argc, char** argv) {
  using namespace pretext::bench;
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 3 && args[0] == "--rss-child") return rss_child(args[1], std::stoi(args[2]));
    Settings settings;
    settings.threads = parse_threads("1," + std::to_string(hardware_threads()));
    bool quick = false;
    bool images_given = false;
    bool repeats_given = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
      const auto value = [&]() -> const std::string& {
        if (i + 1 >= args.size()) throw std::invalid_argument(args[i] + ": expected a value");
        return args[++i];
      };
      if (args[i] == "--images") {
        const long long v = std::stoll(value());
        if (v < 1) throw std::invalid_argument("--images: expected a count >= 1");
        settings.images = static_cast<std::size_t>(v);
        images_given = true;
      } else if (args[i] == "--repeats") {
        settings.repeats = std::stoi(value());
        if (settings.repeats < 1) throw std::invalid_argument("--repeats: expected a count >= 1");
        repeats_given = true;
      } else if (args[i] == "--threads") {
        settings.threads = parse_threads(value());
      } else if (args[i] == "--cases") {
        settings.cases = parse_cases(value());
      } else if (args[i] == "--quick") {
        quick = true;
      } else if (args[i] == "--help" || args[i] == "-h") {
        usage();
        return 0;
      } else {
        usage();
        throw std::invalid_argument("unknown option " + args[i]);
      }
    }
    if (quick && !images_given) settings.images = 2000;
    if (quick && !repeats_given) settings.repeats = 1;
    run_all(settings);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pretext-bench: %s\n", e.what());
    return 2;
  }
}
