// Ranks of a data-parallel job as threads of the test process, on loopback:
// each thread gets the environment torchrun would give a process.
#pragma once

#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "pipeline/distributed/launch_environment.hpp"

namespace pretext::testing {

/// Rank `rank` of `world_size` on this host, with rank 0's store at 127.0.0.1:`port`.
inline distributed::DistributedEnvironment loopback_environment(int rank, int world_size, int port) {
  distributed::DistributedEnvironment e;
  e.rank = rank;
  e.world_size = world_size;
  e.local_rank = rank;
  e.local_world_size = world_size;
  e.master_addr = "127.0.0.1";
  e.master_port = port;
  return e;
}

/// `body(rank)` on a thread per rank; rethrows the first rank's failure once all have ended.
inline void on_rank_threads(int world_size, const std::function<void(int rank)>& body) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(world_size));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world_size; ++rank)
    threads.emplace_back([&, rank] {
      try {
        body(rank);
      } catch (...) {
        errors[static_cast<std::size_t>(rank)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& error : errors)
    if (error) std::rethrow_exception(error);
}

}  // namespace pretext::testing
