#include "pipeline/distributed/launch_environment.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <optional>
#include <thread>

#include "common/errors.hpp"

namespace pretext::distributed {
namespace {

// A launcher sets every variable; a hand-written job may forget one. The
// message says which, what it held and what would be right, because the
// alternative is a rendezvous that hangs until its timeout.
[[noreturn]] void refuse(const char* variable, const std::string& value, const std::string& expected) {
  throw UsageError("distributed environment: " + std::string(variable) + "='" + value + "': expected " + expected);
}

[[noreturn]] void missing(const char* variable, const std::string& because) {
  throw UsageError("distributed environment: " + std::string(variable) + " is not set, but " + because);
}

class Reader {
 public:
  explicit Reader(const std::function<const char*(const char*)>& getenv) : getenv_(getenv) {}

  /// The variable's text, or nothing when unset or empty.
  std::optional<std::string> text(const char* variable) const {
    const char* value = getenv_(variable);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
  }

  /// An integer in [min, max], or `fallback` when unset. `expected` describes the range in words.
  int integer(const char* variable, int fallback, long min, long max, const std::string& expected) const {
    const auto value = text(variable);
    if (!value) return fallback;
    errno = 0;
    char* end = nullptr;
    const long parsed = std::strtol(value->c_str(), &end, 10);
    // strtol skips leading blanks and takes "+1"; a launcher writes neither, so refuse them.
    const bool whole = end == value->c_str() + value->size() && std::isdigit(static_cast<unsigned char>(value->front()));
    if (!whole || errno == ERANGE || parsed < min || parsed > max) refuse(variable, *value, expected);
    return static_cast<int>(parsed);
  }

 private:
  const std::function<const char*(const char*)>& getenv_;
};

// Far above any CPU job, low enough that ranks fit an int with room to spare.
constexpr long kMaxWorldSize = 1 << 20;

}  // namespace

DistributedEnvironment read_environment(const std::function<const char*(const char*)>& getenv) {
  using namespace variables;
  const Reader env(getenv);
  DistributedEnvironment e;
  e.world_size = env.integer(kWorldSize, 1, 1, kMaxWorldSize, "an integer >= 1 (the number of processes)");
  const std::string ws = std::to_string(e.world_size);
  if (e.world_size > 1 && !env.text(kRank)) missing(kRank, std::string(kWorldSize) + "=" + ws);
  e.rank = env.integer(kRank, 0, 0, e.world_size - 1,
                       "an integer in 0.." + std::to_string(e.world_size - 1) + " (below " + kWorldSize + "=" + ws + ")");

  e.local_world_size = env.integer(kLocalWorldSize, 1, 1, e.world_size,
                                   "an integer in 1.." + ws + " (at most " + kWorldSize + "=" + ws + ")");
  const std::string lws = std::to_string(e.local_world_size);
  e.local_rank = env.integer(kLocalRank, 0, 0, e.local_world_size - 1,
                             "an integer in 0.." + std::to_string(e.local_world_size - 1) + " (below " +
                                 kLocalWorldSize + "=" + lws + ")");

  e.master_addr = env.text(kMasterAddr).value_or("");
  e.master_port = env.integer(kMasterPort, 0, 1, 65535, "a TCP port in 1..65535");
  if (e.distributed()) {
    const std::string because = std::string(kWorldSize) + "=" + ws + " needs the address of rank 0";
    if (e.master_addr.empty()) missing(kMasterAddr, because);
    if (e.master_port == 0) missing(kMasterPort, because);
  }
  return e;
}

int default_threads(const DistributedEnvironment& environment) {
  const int cores = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, environment.local_world_size));
}

}  // namespace pretext::distributed
