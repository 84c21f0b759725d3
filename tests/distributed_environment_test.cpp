// pipeline/distributed: the launch environment torchrun gives a process, and
// the local launcher that plays torchrun (`pretext launch`).
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "pipeline/distributed/launch_environment.hpp"
#include "pipeline/distributed/local_launcher.hpp"

namespace pretext::distributed {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::function<const char*(const char*)> fake_environment(const std::map<std::string, std::string>& values) {
  return [values](const char* name) -> const char* {
    const auto found = values.find(name);
    return found == values.end() ? nullptr : found->second.c_str();
  };
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
  const std::map<std::string, std::string> good = {{"RANK", "1"},
                                                   {"WORLD_SIZE", "2"},
                                                   {"LOCAL_RANK", "1"},
                                                   {"LOCAL_WORLD_SIZE", "2"},
                                                   {"MASTER_ADDR", "127.0.0.1"},
                                                   {"MASTER_PORT", "29500"}};
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
  const auto outcome = launch_processes(shell("if [ $RANK = 1 ]; then sleep 0.2; exit 3; fi; "
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
