#include "pipeline/train/data_parallel.hpp"

#include <unistd.h>

#include <cstring>
#include <sstream>

#include "common/errors.hpp"
#include "pipeline/distributed/config_check.hpp"
#include "pipeline/distributed/gradient_buckets.hpp"
#include "pipeline/distributed/process_group.hpp"
#include "pipeline/train/trainer.hpp"

namespace pretext {

DataParallel::DataParallel(const distributed::DistributedEnvironment& environment, std::chrono::milliseconds timeout,
                           std::int64_t bucket_bytes)
    : rank_(environment.rank), world_size_(environment.world_size), bucket_bytes_(bucket_bytes) {
  if (environment.distributed()) group_ = std::make_unique<distributed::ProcessGroup>(environment, timeout);
}

DataParallel::~DataParallel() = default;

void DataParallel::check_same_config(const std::string& resolved_config) {
  if (group_ != nullptr) (void)distributed::check_same_config(*group_, resolved_config, {"threads", "pipeline.threads"});
}

std::int64_t DataParallel::local_batch(std::int64_t batch_size, const std::string& key) const {
  if (batch_size % world_size_ != 0)
    throw ConfigError(key + " = " + std::to_string(batch_size) + " is the global batch, shared by " +
                      std::to_string(world_size_) + " ranks: expected a multiple of " + std::to_string(world_size_) +
                      " (e.g. " + std::to_string((batch_size / world_size_ + 1) * world_size_) + ")");
  return batch_size / world_size_;
}

void DataParallel::shard(stages::EpochPlan& plan) const { take_share(plan, rank_, world_size_); }

void take_share(stages::EpochPlan& plan, int rank, int world_size) {
  if (world_size == 1) return;
  const auto ranks = static_cast<std::size_t>(world_size);
  const std::size_t per_rank = plan.order.size() / ranks;
  std::vector<std::uint32_t> share(per_rank);
  for (std::size_t i = 0; i < per_rank; ++i) share[i] = plan.order[i * ranks + static_cast<std::size_t>(rank)];
  plan.order = std::move(share);
  plan.position_offset = static_cast<std::uint64_t>(rank);
  plan.position_stride = static_cast<std::uint64_t>(world_size);
}

namespace {

// Which parameters, and which of them train now: a list averaged before
// reuses its buckets.
std::vector<const void*> signature(const std::vector<torch::Tensor>& parameters) {
  std::vector<const void*> out;
  out.reserve(parameters.size());
  for (const auto& p : parameters)
    if (p.requires_grad()) out.push_back(p.unsafeGetTensorImpl());
  return out;
}

}  // namespace

void DataParallel::average(const std::vector<torch::Tensor>& parameters) {
  if (group_ == nullptr) return;
  auto key = signature(parameters);
  auto found = averagers_.find(key);
  if (found == averagers_.end())
    found = averagers_.emplace(std::move(key), std::make_unique<distributed::GradientAverager>(parameters, bucket_bytes_))
                .first;
  const auto started = std::chrono::steady_clock::now();
  found->second->average(*group_);
  traffic_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  traffic_.bytes += found->second->bytes_per_step();
  ++traffic_.calls;
}

void DataParallel::forget_buckets() { averagers_.clear(); }

void DataParallel::broadcast(torch::nn::Module& module) {
  if (group_ != nullptr) distributed::broadcast_module_state(module, *group_, 0);
}

void DataParallel::broadcast(std::string& bytes) {
  if (group_ == nullptr) return;
  std::vector<torch::Tensor> size{torch::full({1}, static_cast<std::int64_t>(bytes.size()), torch::kLong)};
  group_->broadcast(size, 0);
  bytes.resize(static_cast<std::size_t>(size[0].item<std::int64_t>()));
  if (bytes.empty()) return;
  std::vector<torch::Tensor> data{torch::empty({static_cast<std::int64_t>(bytes.size())}, torch::kUInt8)};
  if (rank_ == 0) std::memcpy(data[0].data_ptr(), bytes.data(), bytes.size());
  group_->broadcast(data, 0);
  std::memcpy(bytes.data(), data[0].data_ptr(), bytes.size());
}

std::vector<std::string> DataParallel::gather(const std::string& topic, const std::string& value) {
  if (group_ == nullptr) return {value};
  return group_->all_gather_strings(topic, value);
}

void DataParallel::average_buffers(torch::nn::Module& module) {
  if (group_ != nullptr && module.is_training()) distributed::average_buffers(module, *group_);
}

void DataParallel::check_replicas(const std::vector<torch::Tensor>& parameters, const std::string& what) {
  if (group_ == nullptr) return;
  // FNV-1a over the parameters' bytes: equal replicas hash alike on every rank.
  std::uint64_t hash = 1469598103934665603ULL;
  for (const auto& p : parameters) {
    const torch::Tensor bytes = p.detach().to(torch::kCPU).contiguous();
    const auto* data = static_cast<const unsigned char*>(bytes.data_ptr());
    const std::size_t n = bytes.numel() * bytes.element_size();
    for (std::size_t i = 0; i < n; ++i) hash = (hash ^ data[i]) * 1099511628211ULL;
  }
  const auto hashes = group_->all_gather_strings(what + " checksum", std::to_string(hash));
  for (std::size_t r = 1; r < hashes.size(); ++r)
    if (hashes[r] != hashes[0])
      throw std::runtime_error(
          "the replicas of " + what + " differ between rank 0 and rank " + std::to_string(r) +
          ": its parameters were updated without averaging the gradients over the ranks (a task's own optimiser "
          "must call TrainingContext::gradients_finite on each module before its step)");
}

void DataParallel::sum(EpochTotals& totals) {
  if (group_ == nullptr) return;
  // Summed by position: every rank must report the same task metrics.
  std::string names;
  for (const auto& [name, value] : totals.extra_sum) names += name + " ";
  const auto all_names = group_->all_gather_strings("the task's metric names", names);
  for (std::size_t r = 1; r < all_names.size(); ++r)
    if (all_names[r] != all_names[0])
      throw std::runtime_error("the ranks' steps reported different metrics this epoch: rank 0 [" + all_names[0] +
                               "], rank " + std::to_string(r) + " [" + all_names[r] +
                               "]; a task's StepResult::extra must name the same metrics at every step");
  std::vector<double> values{static_cast<double>(totals.samples), totals.loss_sum,
                             static_cast<double>(totals.correct), static_cast<double>(totals.counted)};
  for (const auto& [name, value] : totals.extra_sum) values.push_back(value);
  std::vector<torch::Tensor> tensors{torch::tensor(values, torch::kDouble)};
  group_->all_reduce_sum(tensors);
  const double* summed = tensors[0].data_ptr<double>();
  totals.samples = static_cast<std::uint64_t>(summed[0]);
  totals.loss_sum = summed[1];
  totals.correct = static_cast<std::int64_t>(summed[2]);
  totals.counted = static_cast<std::int64_t>(summed[3]);
  std::size_t i = 4;
  for (auto& [name, value] : totals.extra_sum) value = summed[i++];
}

std::int64_t DataParallel::max(std::int64_t value) {
  if (group_ == nullptr) return value;
  // A sum of one-hot flags would do too; the max keeps the signal number.
  std::vector<torch::Tensor> tensors{torch::full({world_size_}, 0, torch::kLong)};
  tensors[0][rank_] = value;
  group_->all_reduce_sum(tensors);
  return tensors[0].max().item<std::int64_t>();
}

std::int64_t DataParallel::sum(std::int64_t value) {
  if (group_ == nullptr) return value;
  std::vector<torch::Tensor> tensors{torch::full({1}, value, torch::kLong)};
  group_->all_reduce_sum(tensors);
  return tensors[0].item<std::int64_t>();
}

torch::Tensor DataParallel::mean(const torch::Tensor& values) {
  if (group_ == nullptr) return values;
  std::vector<torch::Tensor> tensors{values.to(torch::kCPU).clone()};
  group_->all_reduce_sum(tensors);
  return tensors[0] / static_cast<double>(world_size_);
}

void DataParallel::on_rank0(const std::string& what, const std::function<void()>& action) {
  if (group_ == nullptr) {
    action();
    return;
  }
  if (rank_ == 0) {
    try {
      action();
    } catch (const std::exception& e) {
      (void)group_->all_gather_strings(what, std::to_string(report_of(e).exit_code) + " " + e.what());
      throw;
    }
    (void)group_->all_gather_strings(what, "ok");
    return;
  }
  const std::string outcome = group_->all_gather_strings(what, "ok")[0];
  if (outcome == "ok") return;
  const std::size_t space = outcome.find(' ');
  const std::string message = "rank 0 stopped at " + what + ": " + outcome.substr(space + 1);
  if (outcome.substr(0, space) == "2") throw UsageError(message);
  throw std::runtime_error(message);
}

void DataParallel::report_failure(const std::string& message) noexcept {
  if (group_ != nullptr) group_->report_failure(message);
}

void DataParallel::barrier() {
  if (group_ != nullptr) group_->barrier();
}

RankScratch::RankScratch(const DataParallel& parallel, const std::filesystem::path& run_directory)
    : path_(run_directory), scratch_(!parallel.writes()) {
  if (!scratch_) return;
  path_ = std::filesystem::temp_directory_path() /
          ("pretext-rank" + std::to_string(parallel.rank()) + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(path_);
}

RankScratch::~RankScratch() {
  if (!scratch_) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace pretext
