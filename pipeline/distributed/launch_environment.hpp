// Where this process sits in a data-parallel job, as torchrun (or `pretext
// launch`) describes it in environment variables. Torch-free.
#pragma once

#include <cstdlib>
#include <functional>
#include <string>

namespace pretext::distributed {

/// The environment variables a launcher sets for each process, torchrun's names.
namespace variables {
constexpr const char* kRank = "RANK";
constexpr const char* kWorldSize = "WORLD_SIZE";
constexpr const char* kLocalRank = "LOCAL_RANK";
constexpr const char* kLocalWorldSize = "LOCAL_WORLD_SIZE";
constexpr const char* kMasterAddr = "MASTER_ADDR";
constexpr const char* kMasterPort = "MASTER_PORT";
}  // namespace variables

struct DistributedEnvironment {
  int rank = 0;              // 0 .. world_size-1, over all nodes
  int world_size = 1;        // processes in the job
  int local_rank = 0;        // 0 .. local_world_size-1, on this node
  int local_world_size = 1;  // processes on this node: they share its cores
  std::string master_addr;   // host of rank 0, which serves the rendezvous store
  int master_port = 0;       // 1..65535 when distributed

  /// More than one process: a process group is needed.
  [[nodiscard]] bool distributed() const { return world_size > 1; }
  /// "MASTER_ADDR:MASTER_PORT", for messages.
  [[nodiscard]] std::string master() const { return master_addr + ":" + std::to_string(master_port); }
};

/// The job as the variables in pretext::distributed::variables describe it.
/// None set: a single process. A variable that is set must be valid: a value
/// that is not an integer, a negative one, RANK >= WORLD_SIZE, LOCAL_RANK >=
/// LOCAL_WORLD_SIZE, a port outside 1..65535, or WORLD_SIZE > 1 without
/// MASTER_ADDR and MASTER_PORT is a UsageError (exit 2) naming the variable,
/// its value and what was expected. An empty value counts as unset.
/// `getenv` is a parameter so tests need not touch the process environment.
DistributedEnvironment read_environment(const std::function<const char*(const char*)>& getenv = std::getenv);

/// LibTorch threads for one process: this node's cores shared between the
/// node's processes, at least 1.
int default_threads(const DistributedEnvironment& environment);

}  // namespace pretext::distributed
