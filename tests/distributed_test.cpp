// pipeline/distributed: the launch environment, the process group over
// c10d (two ranks as two threads on loopback), gradient averaging, module
// state, the config check, and every error path: a busy port, an unreachable
// rank 0, a rank that never joins, a peer that never reaches a collective.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <future>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.hpp"
#include "pipeline/distributed/config_check.hpp"
#include "pipeline/distributed/gradient_buckets.hpp"
#include "pipeline/distributed/launch_environment.hpp"
#include "pipeline/distributed/local_launcher.hpp"
#include "pipeline/distributed/process_group.hpp"
#include "support/loopback_ranks.hpp"

namespace pretext::distributed {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- helpers

std::function<const char*(const char*)> fake_environment(const std::map<std::string, std::string>& values) {
  return [values](const char* name) -> const char* {
    const auto found = values.find(name);
    return found == values.end() ? nullptr : found->second.c_str();
  };
}

DistributedEnvironment environment_of(int rank, int world_size, int port) {
  return testing::loopback_environment(rank, world_size, port);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `body(rank, group)` for each rank on its own thread, each with its
// own ProcessGroup on a fresh loopback port; rethrows the first failure.
void run_ranks(int world_size, const std::function<void(int, ProcessGroup&)>& body,
               milliseconds timeout = milliseconds(10000)) {
  const int port = pick_free_port();
  testing::on_rank_threads(world_size, [&](int rank) {
    ProcessGroup group(environment_of(rank, world_size, port), timeout);
    body(rank, group);
  });
}

// Each rank's exception message ("" for none), for tests where all ranks fail.
std::vector<std::string> messages_of_ranks(int world_size, const std::function<void(int, ProcessGroup&)>& body,
                                           milliseconds timeout = milliseconds(10000)) {
  const int port = pick_free_port();
  std::vector<std::string> messages(static_cast<std::size_t>(world_size));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world_size; ++rank)
    threads.emplace_back([&, rank] {
      try {
        ProcessGroup group(environment_of(rank, world_size, port), timeout);
        body(rank, group);
      } catch (const std::exception& e) {
        messages[static_cast<std::size_t>(rank)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return messages;
}

// ------------------------------------------------------- the environment

TEST(DistributedEnvironment, NoVariablesIsOneProcess) {
  const auto e = read_environment(fake_environment({}));
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_EQ(e.local_world_size, 1);
  EXPECT_FALSE(e.distributed());
}

TEST(DistributedEnvironment, ReadsTorchrunsVariables) {
  const auto e = read_environment(fake_environment({{"RANK", "3"},
                                                    {"WORLD_SIZE", "4"},
                                                    {"LOCAL_RANK", "1"},
                                                    {"LOCAL_WORLD_SIZE", "2"},
                                                    {"MASTER_ADDR", "node0.example"},
                                                    {"MASTER_PORT", "29500"}}));
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "node0.example");
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_TRUE(e.distributed());
  EXPECT_EQ(e.master(), "node0.example:29500");
}

struct BadEnvironment {
  std::map<std::string, std::string> variables;
  std::string variable;  // the one the message must name
  std::string value;     // and its value ("" when the message says it is not set)
};

TEST(DistributedEnvironment, EachBadValueIsAUsageErrorNamingTheVariable) {
  const std::map<std::string, std::string> good = {{"RANK", "1"},       {"WORLD_SIZE", "2"},
                                                   {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                                                   {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}};
  const auto with = [&](std::map<std::string, std::string> changes, const std::vector<std::string>& removed = {}) {
    auto variables = good;
    for (auto& [k, v] : changes) variables[k] = v;
    for (const auto& k : removed) variables.erase(k);
    return variables;
  };
  const std::vector<BadEnvironment> cases = {
      {with({{"RANK", "one"}}), "RANK", "one"},
      {with({{"RANK", "2"}}), "RANK", "2"},  // RANK >= WORLD_SIZE
      {with({{"RANK", "-1"}}), "RANK", "-1"},
      {with({{"RANK", "1x"}}), "RANK", "1x"},
      {with({{"WORLD_SIZE", "0"}}), "WORLD_SIZE", "0"},
      {with({{"WORLD_SIZE", "two"}}), "WORLD_SIZE", "two"},
      {with({{"LOCAL_RANK", "2"}}), "LOCAL_RANK", "2"},
      {with({{"LOCAL_WORLD_SIZE", "3"}}), "LOCAL_WORLD_SIZE", "3"},  // more than WORLD_SIZE
      {with({{"MASTER_PORT", "0"}}), "MASTER_PORT", "0"},
      {with({{"MASTER_PORT", "65536"}}), "MASTER_PORT", "65536"},
      {with({{"MASTER_PORT", "http"}}), "MASTER_PORT", "http"},
      {with({}, {"MASTER_ADDR"}), "MASTER_ADDR", ""},
      {with({}, {"MASTER_PORT"}), "MASTER_PORT", ""},
      {with({}, {"RANK"}), "RANK", ""},
  };
  for (const auto& c : cases) {
    try {
      (void)read_environment(fake_environment(c.variables));
      ADD_FAILURE() << "no error for " << c.variable << "='" << c.value << "'";
    } catch (const UsageError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(c.variable), std::string::npos) << message;
      if (!c.value.empty()) {
        EXPECT_NE(message.find(c.variable + "='" + c.value + "'"), std::string::npos) << message;
        EXPECT_NE(message.find("expected"), std::string::npos) << message;
      } else {
        EXPECT_NE(message.find("is not set"), std::string::npos) << message;
      }
      EXPECT_EQ(report_of(e).exit_code, 2);
    }
  }
}

TEST(DistributedEnvironment, DefaultThreadsShareTheCores) {
  DistributedEnvironment e;
  const int cores = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  EXPECT_EQ(default_threads(e), cores);
  e.local_world_size = cores * 4;
  EXPECT_EQ(default_threads(e), 1);
  e.local_world_size = 2;
  EXPECT_EQ(default_threads(e), std::max(1, cores / 2));
}

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

// ------------------------------------------------------ gradient averaging

// The parameters each rank trains: the same shapes; the gradients differ.
std::vector<torch::Tensor> make_parameters() {
  return {torch::zeros({4, 3}, torch::requires_grad()), torch::zeros({4}, torch::requires_grad()),
          torch::zeros({2, 4}, torch::requires_grad()), torch::zeros({5}, torch::requires_grad()),
          torch::zeros({3}, torch::requires_grad())};
}

TEST(GradientAverager, GivesEveryRankTheMeanBitForBit) {
  // Both ranks' gradients, drawn here with a seed: rank r's are grads[r].
  torch::manual_seed(0);
  std::vector<std::vector<torch::Tensor>> grads(2);
  for (auto& rank_grads : grads)
    for (const auto& p : make_parameters()) rank_grads.push_back(torch::randn(p.sizes()));
  std::vector<std::vector<torch::Tensor>> results(2);
  run_ranks(2, [&](int rank, ProcessGroup& group) {
    auto parameters = make_parameters();
    for (std::size_t i = 0; i < 3; ++i) parameters[i].mutable_grad() = grads[rank][i].clone();
    // Parameter 3 has a gradient on rank 1 only (unused on rank 0's batch);
    // parameter 4 on neither: it must stay without one.
    if (rank == 1) parameters[3].mutable_grad() = grads[rank][3].clone();
    GradientAverager averager(parameters, /*bucket_bytes=*/64);  // 4x3 floats fill a bucket alone
    averager.average(group);
    for (const auto& p : parameters) results[rank].push_back(p.grad());
  });
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(torch::equal(results[0][i], results[1][i])) << "parameter " << i;
    EXPECT_TRUE(torch::equal(results[0][i], (grads[0][i] + grads[1][i]) / 2)) << "parameter " << i;
  }
  ASSERT_TRUE(results[0][3].defined());
  EXPECT_TRUE(torch::equal(results[0][3], grads[1][3] / 2));
  EXPECT_TRUE(torch::equal(results[1][3], grads[1][3] / 2));
  EXPECT_FALSE(results[0][4].defined());
  EXPECT_FALSE(results[1][4].defined());
}

TEST(GradientAverager, SplitsBucketsBySizeAndDtype) {
  auto parameters = make_parameters();  // 12, 4, 8, 5, 3 floats
  EXPECT_EQ(GradientAverager(parameters).buckets(), 1U);
  EXPECT_EQ(GradientAverager(parameters).bytes_per_step(), (32 + 5) * 4);  // gradients and one count each
  EXPECT_EQ(GradientAverager(parameters, 1).buckets(), parameters.size());  // each alone
  // 64 bytes: [12 + 4 floats], [8 + 5 + 3 floats].
  EXPECT_EQ(GradientAverager(parameters, 64).parameters_per_bucket(), (std::vector<std::size_t>{2, 3}));

  parameters.push_back(torch::zeros({2}, torch::TensorOptions().dtype(torch::kDouble).requires_grad(true)));
  parameters.push_back(torch::zeros({100}));  // frozen: no gradient to average
  EXPECT_EQ(GradientAverager(parameters).parameters_per_bucket(), (std::vector<std::size_t>{5, 1}));
}

TEST(GradientAverager, AveragesRepeatedlyReusingItsBuffers) {
  run_ranks(2, [](int rank, ProcessGroup& group) {
    auto parameters = make_parameters();
    GradientAverager averager(parameters, 48);
    for (int step = 0; step < 3; ++step) {
      for (auto& p : parameters) p.mutable_grad() = torch::full(p.sizes(), static_cast<float>(rank + step));
      averager.average(group);
      for (const auto& p : parameters) EXPECT_TRUE(torch::equal(p.grad(), torch::full(p.sizes(), step + 0.5F)));
    }
  });
}

// ------------------------------------------------------------ module state

torch::nn::Sequential small_net() {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 2, 3)), torch::nn::BatchNorm2d(2),
                               torch::nn::Linear(4, 3));
}

TEST(ModuleState, BroadcastMakesDifferentlyInitialisedModulesEqual) {
  torch::manual_seed(0);
  auto net0 = small_net();
  torch::manual_seed(1);
  auto net1 = small_net();
  {
    const torch::NoGradGuard no_grad;
    net1->named_buffers()["1.running_mean"].fill_(5);
    net1->named_buffers()["1.num_batches_tracked"].fill_(9);
  }
  const auto before = net0->named_parameters()["0.weight"].clone();
  ASSERT_FALSE(torch::equal(before, net1->named_parameters()["0.weight"]));
  run_ranks(2, [&](int rank, ProcessGroup& group) { broadcast_module_state(rank == 0 ? *net0 : *net1, group); });
  EXPECT_TRUE(torch::equal(net0->named_parameters()["0.weight"], before));
  for (const auto& item : net0->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), net1->named_parameters()[item.key()])) << item.key();
  for (const auto& item : net0->named_buffers())
    EXPECT_TRUE(torch::equal(item.value(), net1->named_buffers()[item.key()])) << item.key();
}

TEST(ModuleState, ADifferentModuleIsNamedBeforeAnythingIsSent) {
  auto net0 = small_net();
  auto net1 = torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3)), torch::nn::BatchNorm2d(4),
                                    torch::nn::Linear(4, 3));
  const auto messages = messages_of_ranks(2, [&](int rank, ProcessGroup& group) {
    broadcast_module_state(rank == 0 ? *net0 : *net1, group);
  });
  for (const auto& message : messages) {
    EXPECT_NE(message.find("rank 1 has '0.weight Float [4,1,3,3,]'"), std::string::npos) << message;
    EXPECT_NE(message.find("rank 0 has '0.weight Float [2,1,3,3,]'"), std::string::npos) << message;
  }
}

TEST(ModuleState, AverageBuffersMeansStatisticsAndKeepsRank0sCounts) {
  std::vector<torch::nn::BatchNorm1d> nets{torch::nn::BatchNorm1d(3), torch::nn::BatchNorm1d(3)};
  {
    const torch::NoGradGuard no_grad;
    for (int r = 0; r < 2; ++r) {
      nets[r]->running_mean.fill_(1 + 2 * r);  // 1, 3
      nets[r]->running_var.fill_(2 + 2 * r);   // 2, 4
      nets[r]->num_batches_tracked.fill_(5 + 2 * r);
    }
  }
  run_ranks(2, [&](int rank, ProcessGroup& group) { average_buffers(*nets[rank], group); });
  for (const auto& net : nets) {
    EXPECT_TRUE(torch::equal(net->running_mean, torch::full({3}, 2.0F)));
    EXPECT_TRUE(torch::equal(net->running_var, torch::full({3}, 3.0F)));
    EXPECT_EQ(net->num_batches_tracked.item<std::int64_t>(), 5);
  }
}

// ------------------------------------------------------------ config check

const char* kConfig = "seed = 0\nthreads = 2\n\n[pretext]\nepochs = 3\nplugin = \"rotation\"\n\n"
                      "[transfer]\nepochs = 50\nmodes = [\"fixed\", \"finetuned\"]\n";

TEST(ConfigCheck, SplitsLinesIntoKeys) {
  const auto lines = config_lines(kConfig);
  std::vector<std::string> keys;
  for (const auto& line : lines) keys.push_back(line.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"seed", "threads", "pretext", "pretext.epochs", "pretext.plugin",
                                            "transfer", "transfer.epochs", "transfer.modes"}));
}

TEST(ConfigCheck, IdenticalConfigsPassWithOneHash) {
  std::vector<std::string> hashes(2);
  run_ranks(2, [&](int rank, ProcessGroup& group) { hashes[rank] = check_same_config(group, kConfig); });
  EXPECT_EQ(hashes[0], hashes[1]);
  EXPECT_EQ(hashes[0].size(), 16U);
}

TEST(ConfigCheck, ADifferentValueIsAConfigErrorNamingTheKeyOnEveryRank) {
  std::string other = kConfig;
  other.replace(other.find("epochs = 50"), 11, "epochs = 5");
  std::vector<std::string> messages(2);
  run_ranks(2, [&](int rank, ProcessGroup& group) {
    try {
      (void)check_same_config(group, rank == 0 ? std::string(kConfig) : other);
    } catch (const ConfigError& e) {
      messages[rank] = e.what();
    }
  });
  for (const auto& message : messages)
    EXPECT_NE(message.find("rank 1 has 'transfer.epochs' = 5 where rank 0 has 50"), std::string::npos) << message;
}

TEST(ConfigCheck, IgnoredKeysMayDiffer) {
  std::string other = kConfig;
  other.replace(other.find("threads = 2"), 11, "threads = 8");
  run_ranks(2, [&](int rank, ProcessGroup& group) {
    (void)check_same_config(group, rank == 0 ? std::string(kConfig) : other, {"threads"});
  });
  const auto messages = messages_of_ranks(2, [&](int rank, ProcessGroup& group) {
    (void)check_same_config(group, rank == 0 ? std::string(kConfig) : other);
  });
  EXPECT_NE(messages[1].find("'threads' = 8 where rank 0 has 2"), std::string::npos) << messages[1];
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
    ProcessGroup group(environment_of(0, 2, port), milliseconds(2000));
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
    ProcessGroup group(environment_of(1, 2, port), milliseconds(1500));
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
    ProcessGroup group(environment_of(0, 2, port), milliseconds(3000));
    group.barrier();
  });
  ProcessGroup group(environment_of(1, 2, port), milliseconds(3000));
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
        ProcessGroup group(environment_of(rank, 3, port), milliseconds(1000));
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
    ProcessGroup group(environment_of(1, 2, port), milliseconds(1500));
    rank0_done.get_future().wait();  // alive, but never calls the collective
  });
  {
    ProcessGroup group(environment_of(0, 2, port), milliseconds(1500));
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
    ProcessGroup group(environment_of(1, 2, port), milliseconds(3000));
    group.barrier();
  });  // then its group ends, closing its connections
  ProcessGroup group(environment_of(0, 2, port), milliseconds(3000));
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

// ------------------------------------------------------------ the launcher

LaunchRequest shell(const std::string& script, int processes = 2) {
  LaunchRequest request;
  request.executable = "/bin/sh";
  request.arguments = {"-c", script};
  request.nproc_per_node = processes;
  return request;
}

TEST(Launcher, PrefixesEachRanksLinesAndSetsTheVariables) {
  std::ostringstream out;
  std::ostringstream err;
  const auto outcome = launch_processes(
      shell("echo out $RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE $MASTER_ADDR; echo err $RANK >&2; "
            "test $MASTER_PORT -ge 1 && printf 'no newline'"),
      out, err);
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_EQ(outcome.first_failed_rank, -1);
  for (const std::string rank : {"0", "1"}) {
    EXPECT_NE(out.str().find("[rank " + rank + "] out " + rank + " 2 " + rank + " 2 127.0.0.1\n"), std::string::npos)
        << out.str();
    EXPECT_NE(out.str().find("[rank " + rank + "] no newline\n"), std::string::npos) << out.str();
    EXPECT_NE(err.str().find("[rank " + rank + "] err " + rank + "\n"), std::string::npos) << err.str();
  }
}

TEST(Launcher, RanksOfALaterNodeCountFromItsFirst) {
  std::ostringstream out;
  std::ostringstream err;
  auto request = shell("echo $RANK of $WORLD_SIZE");
  request.nnodes = 3;
  request.node_rank = 2;
  request.master_port = 29400;
  EXPECT_EQ(launch_processes(request, out, err).exit_code, 0);
  EXPECT_NE(out.str().find("[rank 4] 4 of 6\n"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("[rank 5] 5 of 6\n"), std::string::npos) << out.str();
}

TEST(Launcher, TheFirstFailureStopsTheOthersAndIsTheExitCode) {
  std::ostringstream out;
  std::ostringstream err;
  const auto start = Clock::now();
  const auto outcome = launch_processes(
      shell("if [ $RANK = 1 ]; then sleep 0.2; exit 3; fi; "
            "trap 'echo stopping; kill $!; exit 143' TERM; sleep 20 & wait"),
      out, err);
  EXPECT_EQ(outcome.exit_code, 3);
  EXPECT_EQ(outcome.first_failed_rank, 1);
  EXPECT_NE(out.str().find("[rank 0] stopping\n"), std::string::npos) << out.str();
  EXPECT_LT(seconds_since(start), 5.0);
}

TEST(Launcher, ARankIgnoringSigtermIsKilledAfterTheGrace) {
  std::ostringstream out;
  std::ostringstream err;
  auto request = shell("if [ $RANK = 1 ]; then sleep 0.2; exit 4; fi; trap '' TERM; exec sleep 20");
  request.grace = milliseconds(300);
  const auto start = Clock::now();
  const auto outcome = launch_processes(request, out, err);
  EXPECT_EQ(outcome.exit_code, 4);
  EXPECT_LT(seconds_since(start), 5.0);
}

TEST(Launcher, SigtermToTheLaunchReachesEachRankOnce) {
  std::ostringstream out;
  std::ostringstream err;
  std::thread sender([] {
    std::this_thread::sleep_for(milliseconds(500));
    ::kill(::getpid(), SIGTERM);
  });
  // A rank counts the signals it gets: a second one would end `pretext run` without a checkpoint.
  const auto outcome = launch_processes(
      shell("n=0; trap 'n=$((n+1))' TERM; sleep 1.5 & wait; wait; echo got $n; exit $((142 + n))"), out, err);
  sender.join();
  EXPECT_EQ(outcome.exit_code, 143) << out.str();
  EXPECT_NE(out.str().find("[rank 0] got 1\n"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("[rank 1] got 1\n"), std::string::npos) << out.str();
}

TEST(Launcher, RequestsThatDescribeNoJobAreUsageErrors) {
  std::ostringstream out;
  auto several_nodes = shell("true");
  several_nodes.nnodes = 2;  // no master port
  EXPECT_THROW(launch_processes(several_nodes, out, out), UsageError);
  auto bad_node = shell("true");
  bad_node.nnodes = 2;
  bad_node.master_port = 29400;
  bad_node.node_rank = 2;
  EXPECT_THROW(launch_processes(bad_node, out, out), UsageError);
  auto nothing = shell("true");
  nothing.arguments.clear();
  EXPECT_THROW(launch_processes(nothing, out, out), UsageError);
  auto missing = shell("true");
  missing.executable = "/nonexistent/pretext";
  EXPECT_THROW(launch_processes(missing, out, out), std::runtime_error);
}

}  // namespace
}  // namespace pretext::distributed
