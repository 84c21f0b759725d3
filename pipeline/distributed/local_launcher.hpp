// Starts this node's processes of a data-parallel job, as torchrun does:
// each gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and
// MASTER_PORT; their output lines come out prefixed "[rank R] "; the first
// one to fail takes the others down, and its exit code is the launch's.
// Torch-free.
#pragma once

#include <chrono>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace pretext::distributed {

struct LaunchRequest {
  std::filesystem::path executable;  // each process runs `executable arguments...`
  std::vector<std::string> arguments;
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;  // 0 .. nnodes-1: this node's processes are ranks node_rank * nproc_per_node + local rank
  std::string master_addr = "127.0.0.1";
  int master_port = 0;  // 0: a free port of this host (one node only)
  /// After the first failure the others get SIGTERM (a run stops at its next
  /// step and writes a checkpoint), then SIGKILL once this has passed.
  std::chrono::milliseconds grace{std::chrono::seconds(30)};
  /// More variables for every process, e.g. {"PRETEXT_EXIT_WITH_PARENT", pid}.
  std::vector<std::pair<std::string, std::string>> extra_environment;
};

struct LaunchOutcome {
  int exit_code = 0;        // 0, or the first failure's (128 + signal when killed by one)
  int first_failed_rank = -1;
};

/// Runs the processes until all have ended, copying their stdout lines to
/// `out` and their stderr lines to `err`, each prefixed "[rank R] ". A
/// process's OMP_NUM_THREADS is this host's cores / nproc_per_node unless the
/// environment sets it already. SIGINT and SIGTERM sent to the launch are
/// passed on to the processes, which are then waited for. Throws UsageError
/// for a request that cannot describe a job (no master port for several
/// nodes, node_rank out of range), std::runtime_error when a process cannot start.
LaunchOutcome launch_processes(const LaunchRequest& request, std::ostream& out, std::ostream& err);

/// A TCP port that nothing on this host listens on now: the kernel's pick
/// for port 0. Another program may take it before rank 0 listens on it, a
/// small window that torchrun accepts too.
int pick_free_port();

}  // namespace pretext::distributed
