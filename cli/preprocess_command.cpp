// pretext preprocess
#include <cstddef>
#include <iostream>
#include <string>

#include "cli/commands.hpp"
#include "common/errors.hpp"
#include "data/preprocess.hpp"
#include "pipeline/train/job.hpp"

namespace pretext::cli {
namespace {

// Enough for any cluster, and small enough that Shard's arithmetic is exact.
constexpr std::size_t kMaxShards = 1'000'000;

// "I/N" with 0 <= I < N: 0-based like torchrun's ranks, so a host passes
// $NODE_RANK/$NNODES as it is.
data::Shard parse_shard(const std::string& text) {
  const auto refuse = [&](const std::string& why) -> data::Shard {
    throw UsageError(
        "--shard expects I/N, the 0-based index I of N shards with 0 <= I < N <= " + std::to_string(kMaxShards) +
        " (e.g. 0/4 .. 3/4, or $NODE_RANK/$NNODES), got '" + text + "'" + (why.empty() ? "" : ": " + why));
  };
  const auto slash = text.find('/');
  if (slash == std::string::npos) return refuse("no '/'");
  const std::string index_text = text.substr(0, slash);
  const std::string count_text = text.substr(slash + 1);
  const auto number = [](const std::string& digits) -> std::size_t {
    if (digits.empty() || digits.size() > 7 || digits.find_first_not_of("0123456789") != std::string::npos)
      return kMaxShards + 1;  // not a small non-negative integer
    return std::stoul(digits);
  };
  const std::size_t index = number(index_text);
  const std::size_t count = number(count_text);
  if (index > kMaxShards || count > kMaxShards) return refuse("I and N must be non-negative integers");
  if (count == 0) return refuse("N must be at least 1");
  if (index >= count)
    return refuse("I must be below N (the last of " + count_text + " shards is " + std::to_string(count - 1) + "/" +
                  count_text + ")");
  return data::Shard{index, count};
}

}  // namespace

int preprocess_command(const Arguments& args) {
  const std::filesystem::path out = args.required("out", "FILE.pack");
  const data::Shard shard = args.has("shard") ? parse_shard(args.value("shard")) : data::Shard{};
  // The whole config is validated (plugins too), so a packed file is only
  // made for a config that can run; the data itself is loaded here.
  JobRequest request{args.single("CONFIG file"), args.overrides, {}, false};
  const Job job(request);
  data::preprocess_to_packed(job.options().data, out, std::cerr, shard);
  std::cout << out.string() << '\n';
  return 0;
}

}  // namespace pretext::cli
