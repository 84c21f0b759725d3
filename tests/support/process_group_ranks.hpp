// A c10d ProcessGroup per rank, the ranks as threads of the test process
// on a fresh loopback port: for tests of the collectives and their failures.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "loopback_ranks.hpp"
#include "pipeline/distributed/local_launcher.hpp"  // pick_free_port
#include "pipeline/distributed/process_group.hpp"

namespace pretext::testing {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs `body(rank, group)` for each rank on its own thread, each with its
// own ProcessGroup on a fresh loopback port; rethrows the first failure.
inline void run_ranks(int world_size, const std::function<void(int, distributed::ProcessGroup&)>& body,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  const int port = distributed::pick_free_port();
  on_rank_threads(world_size, [&](int rank) {
    distributed::ProcessGroup group(loopback_environment(rank, world_size, port), timeout);
    body(rank, group);
  });
}

// Each rank's exception message ("" for none), for tests where all ranks fail.
inline std::vector<std::string> messages_of_ranks(
    int world_size, const std::function<void(int, distributed::ProcessGroup&)>& body,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  const int port = distributed::pick_free_port();
  std::vector<std::string> messages(static_cast<std::size_t>(world_size));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world_size; ++rank)
    threads.emplace_back([&, rank] {
      try {
        distributed::ProcessGroup group(loopback_environment(rank, world_size, port), timeout);
        body(rank, group);
      } catch (const std::exception& e) {
        messages[static_cast<std::size_t>(rank)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return messages;
}

}  // namespace pretext::testing
