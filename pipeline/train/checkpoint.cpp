#include "pipeline/train/checkpoint.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "common/atomic_file.hpp"
#include "common/errors.hpp"
#include "pipeline/artefacts/run_directory.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPrefix = "step-";
constexpr const char* kSuffix = ".pt";

/// The global step in "step-<N>.pt", or -1 for any other name.
std::int64_t step_of(const fs::path& file) {
  const std::string name = file.filename().string();
  const std::string prefix = kPrefix;
  const std::string suffix = kSuffix;
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return -1;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
  return std::stoll(digits);
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + '\n';
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Doubles travel as one float64 tensor: bit-exact, so a resumed epoch's mean
// loss is the same number an uninterrupted one reports.
torch::Tensor doubles(const std::vector<double>& values) {
  return torch::tensor(values, torch::TensorOptions().dtype(torch::kDouble));
}

std::int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue value;
  archive.read(key, value);
  return value.toInt();
}

std::string read_string(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue value;
  archive.read(key, value);
  return value.toStringRef();
}

}  // namespace

std::string config_hash(const std::string& config_text) {
  return std::to_string(std::hash<std::string>{}(config_text));
}

std::string read_text_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

fs::path checkpoint_directory(const fs::path& run_dir) { return artefacts::RunLayout(run_dir).checkpoints(); }

std::vector<fs::path> list_checkpoints(const fs::path& run_dir) {
  std::vector<std::pair<std::int64_t, fs::path>> found;
  std::error_code ec;
  for (fs::directory_iterator it(checkpoint_directory(run_dir), ec), end; !ec && it != end; it.increment(ec))
    if (const auto step = step_of(it->path()); step >= 0 && it->is_regular_file()) found.emplace_back(step, it->path());
  std::sort(found.begin(), found.end());
  std::vector<fs::path> files;
  for (auto& [step, file] : found) files.push_back(std::move(file));
  return files;
}

void save_archive_atomically(torch::serialize::OutputArchive& archive, const fs::path& file) {
  AtomicFile out(file);
  // LibTorch's zip writer must never see a failed write: it throws, and
  // throws again from its destructor while unwinding, which ends the process
  // (std::terminate; its save_to(path) does the same on a full disk). So the
  // writer takes every byte; the AtomicFile keeps the first failure, and
  // commit() reports it, naming the file and the OS's reason.
  archive.save_to([&](const void* data, std::size_t size) -> std::size_t {
    out.append(data, size);
    return size;
  });
  out.commit();
}

fs::path checkpoint_file(const fs::path& run_dir, std::int64_t global_step) {
  return checkpoint_directory(run_dir) / (kPrefix + std::to_string(global_step) + kSuffix);
}

fs::path write_checkpoint(const fs::path& run_dir, const PretextTask& task, const PretextProgress& p,
                          std::int64_t keep) {
  const fs::path dir = checkpoint_directory(run_dir);
  const fs::path file = checkpoint_file(run_dir, p.global_step);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot write " + file.string() + ": cannot create its directory: " + ec.message());
  {
    torch::serialize::OutputArchive archive;
    torch::serialize::OutputArchive task_archive;
    task.save(task_archive);
    archive.write("task", task_archive);
    archive.write("epoch", c10::IValue(p.epoch));
    archive.write("step", c10::IValue(p.step));
    archive.write("global_step", c10::IValue(p.global_step));
    archive.write("samples", c10::IValue(static_cast<std::int64_t>(p.totals.samples)));
    archive.write("correct", c10::IValue(p.totals.correct));
    archive.write("counted", c10::IValue(p.totals.counted));
    std::vector<std::string> extra_names;
    std::vector<double> numbers = {p.totals.loss_sum, p.last.loss,    p.last.accuracy, p.last.images_per_second,
                                   p.seconds,         p.wait_seconds, p.graph_seconds};
    for (const auto& [name, sum] : p.totals.extra_sum) {
      extra_names.push_back(name);
      numbers.push_back(sum);
    }
    archive.write("numbers", doubles(numbers));
    archive.write("extra_names", c10::IValue(join_lines(extra_names)));
    archive.write("metric_rows", c10::IValue(join_lines(p.metric_rows)));
    archive.write("config_hash", c10::IValue(p.config_hash));
    archive.write("world_size", c10::IValue(p.world_size));
    for (std::size_t r = 0; r < p.rank_generators.size(); ++r) {
      const std::string& bytes = p.rank_generators[r];
      archive.write("cpu_generator_rank" + std::to_string(r + 1),
                    torch::from_blob(const_cast<char*>(bytes.data()), {static_cast<std::int64_t>(bytes.size())},
                                     torch::kUInt8)
                        .clone());
    }
    {
      auto generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      archive.write("cpu_generator", generator.get_state());
    }
    save_archive_atomically(archive, file);
  }
  // Older ones go only once the new one is committed: a crash here leaves extras, never none.
  const auto files = list_checkpoints(run_dir);
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < files.size(); ++i) {
    std::error_code ignored;
    fs::remove(files[i], ignored);
  }
  return file;
}

PretextProgress read_checkpoint(const fs::path& file, PretextTask& task, const torch::Device& device, int rank) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string(), device);
  PretextProgress p;
  p.epoch = read_int(archive, "epoch");
  p.step = read_int(archive, "step");
  p.global_step = read_int(archive, "global_step");
  p.totals.steps = p.step;
  p.totals.samples = static_cast<std::uint64_t>(read_int(archive, "samples"));
  p.totals.correct = read_int(archive, "correct");
  p.totals.counted = read_int(archive, "counted");
  torch::Tensor numbers;
  archive.read("numbers", numbers);
  numbers = numbers.to(torch::kCPU, torch::kDouble).contiguous();
  const auto extra_names = split_lines(read_string(archive, "extra_names"));
  if (numbers.numel() != 7 + static_cast<std::int64_t>(extra_names.size()))
    throw std::runtime_error(file.string() + ": inconsistent checkpoint (numbers)");
  const double* n = numbers.data_ptr<double>();
  p.totals.loss_sum = n[0];
  p.last.loss = n[1];
  p.last.accuracy = n[2];
  p.last.images_per_second = n[3];
  p.seconds = n[4];
  p.wait_seconds = n[5];
  p.graph_seconds = n[6];
  for (std::size_t i = 0; i < extra_names.size(); ++i) p.totals.extra_sum[extra_names[i]] = n[7 + i];
  p.metric_rows = split_lines(read_string(archive, "metric_rows"));
  p.config_hash = read_string(archive, "config_hash");
  c10::IValue world_size;
  if (archive.try_read("world_size", world_size)) p.world_size = world_size.toInt();
  torch::Tensor generator_state;
  if (rank == 0) {
    archive.read("cpu_generator", generator_state);
  } else {
    // Absent when fewer ranks wrote it: the caller refuses the resume by p.world_size.
    (void)archive.try_read("cpu_generator_rank" + std::to_string(rank), generator_state);
  }
  torch::serialize::InputArchive task_archive;
  archive.read("task", task_archive);
  task.load(task_archive);  // last: a file that fails above leaves the task untouched
  if (generator_state.defined()) {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(generator_state.to(torch::kCPU));
  }
  return p;
}

void load_pretext_state(PretextTask& task, const fs::path& file, const torch::Device& device) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string(), device);
  task.load(archive);
}

}  // namespace pretext
