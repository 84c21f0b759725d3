// Data-parallel runs of the binary: two ranks as two processes on loopback,
// started as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR, ...) or by
// `pretext launch`. The tiny rotation run (tiny_rotation_run.hpp) with one
// LibTorch thread per rank.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "pipeline/distributed/local_launcher.hpp"
#include "support/pretext_process.hpp"
#include "support/run_files.hpp"
#include "support/tiny_rotation_run.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;
using testing::ChildExit;
using testing::ChildLimits;
using testing::PretextProcess;

const std::vector<std::string> kOneThreadEach = {"--set", "threads=1", "--set", "pipeline.threads=1",
                                                 "--set", "distributed.timeout=20"};

ChildLimits rank_of(int rank, int world_size, int port) {
  ChildLimits limits;
  limits.environment = {"RANK=" + std::to_string(rank),
                        "WORLD_SIZE=" + std::to_string(world_size),
                        "LOCAL_RANK=" + std::to_string(rank),
                        "LOCAL_WORLD_SIZE=" + std::to_string(world_size),
                        "MASTER_ADDR=127.0.0.1",
                        "MASTER_PORT=" + std::to_string(port)};
  return limits;
}

std::vector<std::string> joined(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// pretext.loss and the transfer losses of metrics.csv, in order.
std::vector<double> losses(const fs::path& metrics) {
  std::istringstream in(testing::read_file(metrics));
  std::vector<double> out;
  for (std::string line; std::getline(in, line);)
    if (line.find(",loss,") != std::string::npos || line.find(",train_loss,") != std::string::npos)
      out.push_back(std::stod(line.substr(line.rfind(',') + 1)));
  return out;
}

class DataParallelRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("data-parallel-run");
    config_ = testing::write_tiny_rotation_run(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// `pretext launch --nproc-per-node 2 -- COMMAND...`.
  ChildExit launch(const std::vector<std::string>& command) const {
    return testing::run_pretext(joined({"launch", "--nproc-per-node", "2", "--"}, command));
  }
  std::vector<std::string> run_args(const fs::path& out, const std::vector<std::string>& extra = {}) const {
    return joined(joined({"run", config_.string(), "--out", out.string()}, kOneThreadEach), extra);
  }

  fs::path dir_;
  fs::path config_;
};

TEST_F(DataParallelRun, LaunchWritesOneRunDirectoryWithOneSummaryThatRecordsTheWorldSize) {
  const ChildExit ran = launch(run_args(dir_ / "run"));
  ASSERT_TRUE(ran.exited && ran.code == 0) << ran.output;
  const std::string summary = testing::read_file(dir_ / "run" / "summary.json");
  EXPECT_NE(summary.find("\"world_size\" : 2"), std::string::npos) << summary;
  // Rank 0 speaks and writes for the job; rank 1 says nothing.
  EXPECT_NE(ran.output.find("[rank 0] pretext epoch 2/2"), std::string::npos) << ran.output;
  EXPECT_EQ(ran.output.find("[rank 1]"), std::string::npos) << ran.output;
  EXPECT_TRUE(fs::exists(dir_ / "run" / "transfer-finetuned.pt"));
}

TEST_F(DataParallelRun, TwoRanksWithTheGlobalBatchTrackOneProcess) {
  // Without batch norm and dropout a step's gradient does not depend on how
  // its batch is split: the mean of the two halves' gradients is the whole
  // batch's, up to the order of the sums. Tolerance: 1e-4 relative.
  const std::vector<std::string> exact = {"--set", "model.batch_norm=false", "--set", "model.dropout=0"};
  const ChildExit one = testing::run_pretext(run_args(dir_ / "one", exact));
  ASSERT_TRUE(one.exited && one.code == 0) << one.output;
  const ChildExit two = launch(run_args(dir_ / "two", exact));
  ASSERT_TRUE(two.exited && two.code == 0) << two.output;
  const auto expected = losses(dir_ / "one" / "metrics.csv");
  const auto got = losses(dir_ / "two" / "metrics.csv");
  ASSERT_EQ(expected.size(), 3U);  // 2 pretext epochs, 1 transfer epoch
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-4 * expected[i]) << i;
}

TEST_F(DataParallelRun, AKilledRankEndsTheOtherNamingItAndAResumeMatchesAnUninterruptedRun) {
  const std::vector<std::string> often = {"--set", "checkpoint.every_steps=2", "--set", "checkpoint.keep=100"};
  const ChildExit whole = launch(run_args(dir_ / "whole", often));
  ASSERT_TRUE(whole.exited && whole.code == 0) << whole.output;

  const int port = distributed::pick_free_port();
  PretextProcess rank0(run_args(dir_ / "killed", often), rank_of(0, 2, port));
  PretextProcess rank1(run_args(dir_ / "killed", often), rank_of(1, 2, port));
  rank0.start();
  rank1.start();
  // A step checkpoint mid-epoch 1 (15 steps an epoch), then rank 1 dies.
  const fs::path checkpoint = dir_ / "killed" / "checkpoints" / "step-6.pt";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(checkpoint) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(fs::exists(checkpoint)) << rank0.output();
  rank1.signal(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  const ChildExit survivor = rank0.wait(std::chrono::seconds(40));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_TRUE(survivor.exited) << survivor.output;
  EXPECT_NE(survivor.code, 0) << survivor.output;
  EXPECT_LT(seconds, 20.0) << "distributed.timeout is 20 s";
  EXPECT_NE(survivor.output.find("rank 1"), std::string::npos) << survivor.output;
  // The host's all-reduce failed inside the task's step: not the plugin's fault.
  EXPECT_NE(survivor.output.find("pretext: lost a rank: "), std::string::npos) << survivor.output;
  EXPECT_EQ(survivor.output.find("plugin fault"), std::string::npos) << survivor.output;
  EXPECT_FALSE(fs::exists(dir_ / "killed" / "summary.json"));

  const ChildExit resumed = launch({"resume", (dir_ / "killed").string()});
  ASSERT_TRUE(resumed.exited && resumed.code == 0) << resumed.output;
  EXPECT_EQ(testing::deterministic_metrics(dir_ / "killed" / "metrics.csv"),
            testing::deterministic_metrics(dir_ / "whole" / "metrics.csv"));
  // The networks too, batch-norm statistics included (evaluation in eval
  // mode uses them; the training losses above would not show them).
  for (const char* file : {"backbone.pt", "transfer-finetuned.pt"})
    EXPECT_EQ(testing::read_file(dir_ / "killed" / file), testing::read_file(dir_ / "whole" / file)) << file;

  // The checkpoints are those of two ranks: one process may not continue them.
  const ChildExit alone = testing::run_pretext({"resume", (dir_ / "killed").string()});
  EXPECT_EQ(alone.code, 2) << alone.output;
  EXPECT_NE(alone.output.find("was trained by 2 rank(s)"), std::string::npos) << alone.output;
  EXPECT_NE(alone.output.find("pretext launch --nproc-per-node 2 -- resume"), std::string::npos) << alone.output;
}

TEST_F(DataParallelRun, TasksWithTheirOwnOptimisersAndTheSemiSupervisedModeTrainInStep) {
  // The GAN steps its own two Adams: its gradients are averaged through
  // TrainingContext::gradients_finite, or the replica check at the end of
  // each epoch would stop the run. The semi-supervised mode splits two
  // batches (labelled, and mu x unlabelled) between the ranks.
  const ChildExit gan = launch(run_args(dir_ / "gan", {"--set", "pretext.plugin=\"gan\"", "--set", "data.pad_to=32"}));
  ASSERT_TRUE(gan.exited && gan.code == 0) << gan.output;
  EXPECT_NE(testing::read_file(dir_ / "gan" / "summary.json").find("\"world_size\" : 2"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir_ / "gan" / "samples-epoch-2.png")) << "rank 0 writes the sample grids";

  const ChildExit semi = launch(run_args(
      dir_ / "semi", {"--set", "transfer.modes=[\"semi\"]", "--set", "transfer.semi.epochs=1", "--set",
                      "transfer.semi.strong_stages=[{ name = \"rand_augment\" }]", "--set", "transfer.semi.mu=2"}));
  ASSERT_TRUE(semi.exited && semi.code == 0) << semi.output;
  EXPECT_NE(testing::read_file(dir_ / "semi" / "metrics.csv").find("transfer.semi,1,mask_rate,"), std::string::npos);
}

TEST_F(DataParallelRun, RanksWithDifferentConfigsAreRefusedNamingTheKey) {
  const int port = distributed::pick_free_port();
  PretextProcess rank0(run_args(dir_ / "run"), rank_of(0, 2, port));
  PretextProcess rank1(run_args(dir_ / "run", {"--set", "pretext.lr=0.01"}), rank_of(1, 2, port));
  rank0.start();
  rank1.start();
  for (PretextProcess* rank : {&rank0, &rank1}) {
    const ChildExit ended = rank->wait(std::chrono::seconds(60));
    EXPECT_EQ(ended.code, 2) << ended.output;
    EXPECT_NE(ended.output.find("the ranks' configs differ: rank 1 has 'pretext.lr'"), std::string::npos)
        << ended.output;
  }
  EXPECT_FALSE(fs::exists(dir_ / "run" / "config.toml")) << "refused before anything was written";
}

TEST_F(DataParallelRun, ABatchTheRanksCannotShareIsRefused) {
  const ChildExit ran = launch(run_args(dir_ / "run", {"--set", "pretext.batch_size=33"}));
  EXPECT_EQ(ran.code, 2) << ran.output;
  EXPECT_NE(ran.output.find("pretext.batch_size = 33 is the global batch, shared by 2 ranks"), std::string::npos)
      << ran.output;
}

TEST_F(DataParallelRun, ABusyPortAnAbsentMasterAndBadVariablesAreUsageErrors) {
  // A port something listens on already.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  const int busy = ntohs(address.sin_port);
  const ChildExit on_busy = testing::run_pretext(run_args(dir_ / "busy"), rank_of(0, 2, busy));
  ::close(listener);
  EXPECT_EQ(on_busy.code, 2) << on_busy.output;
  EXPECT_NE(on_busy.output.find("address in use"), std::string::npos) << on_busy.output;

  // Rank 1 with nobody serving as rank 0: given up within the timeout.
  const auto started = std::chrono::steady_clock::now();
  const ChildExit alone = testing::run_pretext(joined(run_args(dir_ / "alone"), {"--set", "distributed.timeout=3"}),
                                               rank_of(1, 2, distributed::pick_free_port()));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(alone.code, 2) << alone.output;
  EXPECT_NE(alone.output.find("no rendezvous with 127.0.0.1:"), std::string::npos) << alone.output;
  EXPECT_LT(seconds, 30.0);

  ChildLimits past_the_end = rank_of(2, 2, 29500);
  const ChildExit bad_rank = testing::run_pretext(run_args(dir_ / "bad"), past_the_end);
  EXPECT_EQ(bad_rank.code, 2) << bad_rank.output;
  EXPECT_NE(bad_rank.output.find("RANK"), std::string::npos) << bad_rank.output;
  ChildLimits not_a_number = rank_of(0, 2, 29500);
  not_a_number.environment[1] = "WORLD_SIZE=two";
  const ChildExit bad_size = testing::run_pretext(run_args(dir_ / "bad"), not_a_number);
  EXPECT_EQ(bad_size.code, 2) << bad_size.output;
  EXPECT_NE(bad_size.output.find("WORLD_SIZE"), std::string::npos) << bad_size.output;
}

}  // namespace
}  // namespace pretext
