// pipeline/distributed: the process group over c10d (ranks as threads on
// loopback), and every error path: a busy port, an unreachable rank 0, a rank
// that never joins, a peer that never reaches a collective or exits.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "common/errors.hpp"
#include "pipeline/distributed/local_launcher.hpp"
#include "pipeline/distributed/process_group.hpp"
#include "support/process_group_ranks.hpp"

namespace pretext::distributed {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::messages_of_ranks;
using testing::run_ranks;
using testing::seconds_since;

// ------------------------------------------------------------ collectives

TEST(ProcessGroup, AllReduceBroadcastAndStoreAcrossTwoRanks) {
  run_ranks(2, [](int rank, ProcessGroup& group) {
    EXPECT_EQ(group.rank(), rank);
    EXPECT_EQ(group.world_size(), 2);
    const float r = static_cast<float>(rank);
    std::vector<torch::Tensor> sums{torch::tensor({r + 1, 2 * (r + 1)}), torch::full({3}, r, torch::kDouble)};
    group.all_reduce_sum(sums);
    EXPECT_TRUE(torch::equal(sums[0], torch::tensor({3.0F, 6.0F})));
    EXPECT_TRUE(torch::equal(sums[1], torch::full({3}, 1.0, torch::kDouble)));

    // A non-contiguous tensor is reduced through a copy and written back.
    auto matrix = torch::arange(6, torch::kFloat).view({2, 3}) * (r + 1);
    std::vector<torch::Tensor> transposed{matrix.t()};
    group.all_reduce_mean(transposed);
    EXPECT_TRUE(torch::equal(matrix, torch::arange(6, torch::kFloat).view({2, 3}) * 1.5F));

    std::vector<torch::Tensor> broadcast{torch::full({2, 2}, 10 * r), torch::full({1}, r + 7, torch::kInt)};
    group.broadcast(broadcast, 1);
    EXPECT_TRUE(torch::equal(broadcast[0], torch::full({2, 2}, 10.0F)));
    EXPECT_EQ(broadcast[1].item<int>(), 8);

    group.barrier();
    if (rank == 0) group.set("greeting", "from rank 0");
    EXPECT_EQ(group.get("greeting"), "from rank 0");
    const auto gathered = group.all_gather_strings("names", "rank" + std::to_string(rank));
    EXPECT_EQ(gathered, (std::vector<std::string>{"rank0", "rank1"}));
  });
}

TEST(ProcessGroup, AGroupOfOneNeedsNoNetwork) {
  ProcessGroup group(DistributedEnvironment{}, milliseconds(500));
  std::vector<torch::Tensor> t{torch::tensor({1.0F, 2.0F})};
  group.all_reduce_mean(t);
  group.broadcast(t, 0);
  group.barrier();
  EXPECT_TRUE(torch::equal(t[0], torch::tensor({1.0F, 2.0F})));
  group.set("k", "v");
  EXPECT_EQ(group.get("k"), "v");
  EXPECT_THROW((void)group.get("never set"), std::runtime_error);
}

// ------------------------------------------------------------ failures

TEST(ProcessGroupFailures, ABusyPortIsAUsageErrorForRank0) {
  // Something else listens on the port first.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);

  const auto start = Clock::now();
  try {
    ProcessGroup group(testing::loopback_environment(0, 2, port), milliseconds(2000));
    ADD_FAILURE() << "rank 0 listened on a busy port";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(port) + ": address in use"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(seconds_since(start), 2.0);
  ::close(fd);
}

TEST(ProcessGroupFailures, AnUnreachableRank0IsAUsageErrorWithinTheTimeout) {
  const int port = pick_free_port();  // nothing listens there
  const auto start = Clock::now();
  try {
    ProcessGroup group(testing::loopback_environment(1, 2, port), milliseconds(1500));
    ADD_FAILURE() << "rank 1 found a rank 0";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("no rendezvous with 127.0.0.1:" + std::to_string(port) + " within 1.5 s"),
              std::string::npos)
        << e.what();
  }
  const double waited = seconds_since(start);
  EXPECT_GE(waited, 1.3);  // it kept trying, rather than failing at the first refusal
  EXPECT_LT(waited, 2.5);
}

TEST(ProcessGroupFailures, Rank0StartingLateIsStillFound) {
  const int port = pick_free_port();
  std::thread late([port] {
    std::this_thread::sleep_for(milliseconds(400));
    ProcessGroup group(testing::loopback_environment(0, 2, port), milliseconds(3000));
    group.barrier();
  });
  ProcessGroup group(testing::loopback_environment(1, 2, port), milliseconds(3000));
  group.barrier();
  late.join();
}

TEST(ProcessGroupFailures, ARankThatNeverJoinsIsNamed) {
  // Three expected, two come: rank 2 never does.
  const auto start = Clock::now();
  const int port = pick_free_port();
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank)
    threads.emplace_back([&, rank] {
      try {
        ProcessGroup group(testing::loopback_environment(rank, 3, port), milliseconds(1000));
      } catch (const UsageError& e) {
        errors[rank] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_NE(errors[0].find("rank 2 of 3 had not joined after 1 s"), std::string::npos) << errors[0];
  // Rank 1 started a moment later: it names rank 2 too, or sees rank 0 give up first.
  EXPECT_TRUE(errors[1].find("rank 2 of 3 had not joined") != std::string::npos ||
              errors[1].find("stopped answering (rank 0 has exited, or given up") != std::string::npos)
      << errors[1];
  EXPECT_LT(seconds_since(start), 5.0);
}

TEST(ProcessGroupFailures, APeerThatNeverArrivesFailsTheCollectiveWithinTheTimeout) {
  const int port = pick_free_port();
  std::promise<void> rank0_done;
  std::string error;
  double waited = 0;
  std::thread rank1([&] {
    ProcessGroup group(testing::loopback_environment(1, 2, port), milliseconds(1500));
    rank0_done.get_future().wait();  // alive, but never calls the collective
  });
  {
    ProcessGroup group(testing::loopback_environment(0, 2, port), milliseconds(1500));
    std::vector<torch::Tensor> t{torch::ones({4})};
    const auto start = Clock::now();
    try {
      group.all_reduce_sum(t);
    } catch (const UsageError& e) {
      ADD_FAILURE() << "a lost peer is not a usage error: " << e.what();
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    waited = seconds_since(start);
    rank0_done.set_value();
    rank1.join();
  }
  EXPECT_NE(error.find("all_reduce #1 on rank 0 of 2 failed"), std::string::npos) << error;
  EXPECT_NE(error.find("timeout 1.5 s"), std::string::npos) << error;
  EXPECT_NE(error.find("rank 1 has not arrived (it has run no collective yet)"), std::string::npos) << error;
  EXPECT_LT(waited, 3.0);
}

TEST(ProcessGroupFailures, APeerThatExitsIsNamed) {
  const int port = pick_free_port();
  std::thread rank1([&] {
    ProcessGroup group(testing::loopback_environment(1, 2, port), milliseconds(3000));
    group.barrier();
  });  // then its group ends, closing its connections
  ProcessGroup group(testing::loopback_environment(0, 2, port), milliseconds(3000));
  group.barrier();
  rank1.join();
  std::vector<torch::Tensor> t{torch::ones({4})};
  try {
    group.all_reduce_sum(t);
    ADD_FAILURE() << "an all-reduce without its peer succeeded";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("all_reduce #2 on rank 0 of 2 failed"), std::string::npos) << message;
    EXPECT_NE(message.find("rank 1 has not arrived (its last was #1)"), std::string::npos) << message;
    EXPECT_NE(message.find("a peer closed its connection"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace pretext::distributed
