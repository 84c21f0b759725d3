// Checkpoints, `pretext resume`, refusing to overwrite a run, and stopping on
// request: every interrupted run, resumed, must end with the same metrics as
// an uninterrupted one. Tiny synthetic data; the CLI tests run the real binary.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "common/errors.hpp"
#include "pipeline/train/checkpoint.hpp"
#include "pipeline/train/job.hpp"
#include "support/run_files.hpp"
#include "support/synthetic_idx.hpp"
#include "support/tiny_rotation_run.hpp"

#ifndef PRETEXT_BINARY
#error "PRETEXT_BINARY must name the pretext executable (tests/CMakeLists.txt)"
#endif

namespace pretext {
namespace {

namespace fs = std::filesystem;

using testing::deterministic_metrics;
std::string read(const fs::path& file) { return testing::read_file(file); }

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

/// The global steps of the checkpoints in `run_dir`, ascending.
std::vector<std::int64_t> checkpoint_steps(const fs::path& run_dir) {
  std::vector<std::int64_t> steps;
  for (const auto& name : names_in(run_dir / "checkpoints")) {
    EXPECT_EQ(name.rfind("step-", 0), 0U) << name;
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;  // no temporary left behind
    steps.push_back(std::stoll(name.substr(5, name.size() - 8)));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

/// Runs the pretext binary to completion; its exit code, output in `log`.
int run_binary(const std::string& arguments, const fs::path& log) {
  const std::string command = std::string("'") + PRETEXT_BINARY + "' " + arguments + " > '" + log.string() + "' 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Starts the pretext binary in the background, output in `log`.
pid_t start_binary(const std::vector<std::string>& arguments, const fs::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv{const_cast<char*>(PRETEXT_BINARY)};
    for (const auto& a : arguments) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(PRETEXT_BINARY, argv.data());
    _exit(127);
  }
  return pid;
}

/// Waits (up to 60 s) for `file` to exist; false if `pid` ended first.
bool wait_for_file(const fs::path& file, pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(file)) return true;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

/// A log that calls `action` once, when `text` has been written to it.
class TriggerLog final : public std::stringbuf {
 public:
  TriggerLog(std::string text, std::function<void()> action) : text_(std::move(text)), action_(std::move(action)) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const std::streamsize written = std::stringbuf::xsputn(s, n);
    fire_once_seen();
    return written;
  }
  int_type overflow(int_type c) override {
    const int_type result = std::stringbuf::overflow(c);
    fire_once_seen();
    return result;
  }

 private:
  void fire_once_seen() {
    if (fired_ || str().find(text_) == std::string::npos) return;
    fired_ = true;
    action_();
  }
  std::string text_;
  std::function<void()> action_;
  bool fired_ = false;
};

class Resume : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("resume");
    config_ = testing::write_tiny_rotation_run(dir_, "stages = [{ name = \"color_jitter\" }]\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// An in-process run; `stop` may end it early (RunInterrupted propagates).
  toml::table run(const fs::path& out, std::vector<std::string> overrides = {}, const StopToken* stop = nullptr,
                  std::string* log_text = nullptr) {
    JobRequest request{config_, std::move(overrides), out};
    request.stop = stop;
    return run_request(request, log_text);
  }
  static toml::table resume(const fs::path& out, std::string* log_text = nullptr) {
    JobRequest request{out / "config.toml", {}, out};
    request.resume = true;
    return run_request(request, log_text);
  }
  static toml::table run_request(const JobRequest& request, std::string* log_text) {
    Job job(request);
    std::ostringstream log;
    Progress progress(log, false);
    struct Keep {  // the log, also when the run throws
      std::string* to;
      std::ostringstream& from;
      ~Keep() {
        if (to != nullptr) *to = from.str();
      }
    } keep{log_text, log};
    return job.run(progress);
  }

  /// Stops a run at global step `step`; expects the interruption.
  std::string interrupt(const fs::path& out, std::int64_t step, std::vector<std::string> overrides = {}) {
    StopToken stop;
    stop.request_at_step(step, SIGINT);
    try {
      run(out, std::move(overrides), &stop);
    } catch (const RunInterrupted& e) {
      EXPECT_EQ(e.signal(), SIGINT);
      return e.what();
    }
    ADD_FAILURE() << "the run was not interrupted at step " << step;
    return {};
  }

  std::string cli_config_args(const std::vector<std::string>& overrides) const {
    std::string args = "'" + config_.string() + "'";
    for (const auto& o : overrides) args += " --set '" + o + "'";
    return args;
  }

  fs::path dir_;
  fs::path config_;
};

TEST_F(Resume, CheckpointsFollowTheCadenceAndOnlyTheNewestAreKept) {
  const std::vector<std::string> quick = {"transfer.modes=[]", "evaluation.knn=false", "evaluation.linear_probe=false",
                                          "checkpoint.every_steps=4"};
  auto all = quick;
  all.push_back("checkpoint.keep=1000");
  run(dir_ / "all", all);
  const auto steps = checkpoint_steps(dir_ / "all");
  ASSERT_FALSE(steps.empty());
  const std::int64_t per_epoch = steps.back() / 2;  // two epochs
  std::vector<std::int64_t> expected;
  for (std::int64_t s = 1; s <= steps.back(); ++s)
    if (s % per_epoch == 0 || s % 4 == 0) expected.push_back(s);
  EXPECT_EQ(steps, expected);

  auto two = quick;
  two.push_back("checkpoint.keep=2");
  run(dir_ / "two", two);
  EXPECT_EQ(checkpoint_steps(dir_ / "two"), std::vector<std::int64_t>(expected.end() - 2, expected.end()));
}

TEST_F(Resume, CheckpointRestoresTheStateItWasWrittenWith) {
  // A minimal task whose whole state is one tensor, so the round trip is visible.
  class OneTensorTask final : public PretextTask {
   public:
    [[nodiscard]] int views_per_image() const override { return 1; }
    void make_views(ConstImageView, std::int64_t, SampleRng&, const ViewSlots&) const override {}
    void setup(TrainingContext&) override {}
    StepResult train_step(const torch::Tensor&, const torch::Tensor&) override { return {}; }
    [[nodiscard]] std::shared_ptr<Backbone> backbone() const override { return nullptr; }
    void save(torch::serialize::OutputArchive& archive) const override { archive.write("w", weights); }
    void load(torch::serialize::InputArchive& archive) override { archive.read("w", weights); }
    torch::Tensor weights;
  };
  OneTensorTask saved;
  saved.weights = torch::randn({3, 4}, torch::kDouble);
  PretextProgress p;
  p.epoch = 3;
  p.step = 7;
  p.global_step = 52;
  p.totals.steps = 7;
  p.totals.samples = 224;
  p.totals.loss_sum = 1.0 / 3.0;
  p.totals.correct = 101;
  p.totals.counted = 224;
  p.totals.extra_sum = {{"d_loss", 0.1 + 0.2}, {"g_loss", 2.5e-17}};
  p.last.loss = 0.7071067811865476;
  p.last.accuracy = 0.25;
  p.metric_rows = {"pretext,1,loss,1.2345", "pretext,2,loss,0.9"};
  p.config_hash = config_hash("seed = 5\n");
  torch::manual_seed(11);
  write_checkpoint(dir_, saved, p, 2);
  const torch::Tensor next_draw = torch::rand({5});  // what the generator gives after the checkpoint

  OneTensorTask restored;
  restored.weights = torch::zeros({3, 4}, torch::kDouble);
  torch::manual_seed(99);
  const auto q = read_checkpoint(checkpoint_directory(dir_) / "step-52.pt", restored, torch::kCPU);
  EXPECT_TRUE(torch::equal(restored.weights, saved.weights));
  EXPECT_TRUE(torch::equal(torch::rand({5}), next_draw)) << "the CPU generator is not restored";
  EXPECT_EQ(q.epoch, p.epoch);
  EXPECT_EQ(q.step, p.step);
  EXPECT_EQ(q.global_step, p.global_step);
  EXPECT_EQ(q.totals.steps, p.totals.steps);
  EXPECT_EQ(q.totals.samples, p.totals.samples);
  EXPECT_EQ(q.totals.loss_sum, p.totals.loss_sum);  // bit-exact
  EXPECT_EQ(q.totals.correct, p.totals.correct);
  EXPECT_EQ(q.totals.counted, p.totals.counted);
  EXPECT_EQ(q.totals.extra_sum, p.totals.extra_sum);
  EXPECT_EQ(q.last.loss, p.last.loss);
  EXPECT_EQ(q.last.accuracy, p.last.accuracy);
  EXPECT_EQ(q.metric_rows, p.metric_rows);
  EXPECT_EQ(q.config_hash, p.config_hash);
  EXPECT_EQ(names_in(checkpoint_directory(dir_)), std::vector<std::string>{"step-52.pt"});  // no temporary left
}

TEST_F(Resume, StoppedAndResumedRunEqualsAnUninterruptedOne) {
  const auto whole = run(dir_ / "whole");
  // Global step 19 is epoch 2, step 4: a mid-epoch stop after a completed epoch.
  const std::string message = interrupt(dir_ / "parts", 19);
  EXPECT_NE(message.find("interrupted at epoch 2 step 4"), std::string::npos) << message;
  EXPECT_NE(message.find("step-19.pt"), std::string::npos) << message;
  EXPECT_NE(message.find("pretext resume " + (dir_ / "parts").string()), std::string::npos) << message;
  EXPECT_TRUE(fs::exists(dir_ / "parts" / "checkpoints" / "step-19.pt"));
  EXPECT_FALSE(fs::exists(dir_ / "parts" / "summary.json"));

  std::string log;
  const auto resumed = resume(dir_ / "parts", &log);
  EXPECT_NE(log.find("resuming from"), std::string::npos) << log;
  const auto metrics = deterministic_metrics(dir_ / "whole" / "metrics.csv");
  EXPECT_GT(metrics.size(), 100U);
  EXPECT_EQ(deterministic_metrics(dir_ / "parts" / "metrics.csv"), metrics);
  EXPECT_EQ(resumed["pretext"]["final_loss"].value<double>(), whole["pretext"]["final_loss"].value<double>());
  EXPECT_EQ(resumed["transfer"]["finetuned"]["val_accuracy"].value<double>(),
            whole["transfer"]["finetuned"]["val_accuracy"].value<double>());
}

TEST_F(Resume, StopInTheFirstEpochWithStepCheckpointsResumesExactly) {
  const std::vector<std::string> overrides = {"checkpoint.every_steps=3", "pipeline.threads=1"};
  run(dir_ / "whole", overrides);
  interrupt(dir_ / "parts", 8, overrides);
  resume(dir_ / "parts");
  EXPECT_EQ(deterministic_metrics(dir_ / "parts" / "metrics.csv"),
            deterministic_metrics(dir_ / "whole" / "metrics.csv"));
}

// The cosine schedule's factor follows the global step, and the learning
// rate it scales is the one the optimiser was made with, not the scaled one
// a checkpoint saved: resumed, the run steps exactly as it would have.
TEST_F(Resume, StoppedAndResumedRunWithACosinePretextScheduleEqualsAnUninterruptedOne) {
  const std::vector<std::string> overrides = {"pretext.lr_schedule=\"cosine\""};
  run(dir_ / "whole", overrides);
  interrupt(dir_ / "parts", 19, overrides);
  resume(dir_ / "parts");
  EXPECT_EQ(deterministic_metrics(dir_ / "parts" / "metrics.csv"),
            deterministic_metrics(dir_ / "whole" / "metrics.csv"));
}

TEST_F(Resume, CorruptNewestCheckpointIsSkippedWithAWarning) {
  const std::vector<std::string> overrides = {"checkpoint.every_steps=2", "checkpoint.keep=3"};
  run(dir_ / "whole", overrides);
  interrupt(dir_ / "parts", 21, overrides);
  const fs::path newest = dir_ / "parts" / "checkpoints" / "step-21.pt";
  ASSERT_TRUE(fs::exists(newest));
  const std::string bytes = read(newest);
  std::ofstream(newest, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);  // torn write

  std::string log;
  resume(dir_ / "parts", &log);
  EXPECT_NE(log.find("warning: skipping unreadable checkpoint " + newest.string()), std::string::npos) << log;
  EXPECT_NE(log.find("resuming from " + (dir_ / "parts" / "checkpoints" / "step-20.pt").string()), std::string::npos)
      << log;
  EXPECT_EQ(deterministic_metrics(dir_ / "parts" / "metrics.csv"),
            deterministic_metrics(dir_ / "whole" / "metrics.csv"));
}

TEST_F(Resume, ResumeAfterThePretextPhaseRerunsTransfer) {
  run(dir_ / "whole");
  run(dir_ / "parts");
  fs::remove(dir_ / "parts" / "summary.json");
  fs::remove(dir_ / "parts" / "metrics.csv");
  resume(dir_ / "parts");
  EXPECT_EQ(deterministic_metrics(dir_ / "parts" / "metrics.csv"),
            deterministic_metrics(dir_ / "whole" / "metrics.csv"));
}

TEST_F(Resume, StopDuringATransferModeEndsTheRunAfterTheStepInFlight) {
  // A transfer mode can train for half an hour: a signal ends the run after
  // the step in flight, not after the mode. Resumed, the run trains the
  // transfer modes again and ends as an uninterrupted one.
  const std::vector<std::string> overrides = {"transfer.epochs=3"};
  run(dir_ / "whole", overrides);

  StopToken stop;
  TriggerLog log("transfer.finetuned epoch 1/3:", [&stop] { stop.request(SIGTERM); });
  std::ostream out(&log);
  Progress progress(out, false);
  JobRequest request{config_, overrides, dir_ / "parts"};
  request.stop = &stop;
  Job job(request);
  try {
    job.run(progress);
    ADD_FAILURE() << "the run was not interrupted:\n" << log.str();
  } catch (const RunInterrupted& e) {
    EXPECT_EQ(e.signal(), SIGTERM);
    const std::string message = e.what();
    EXPECT_NE(message.find("during transfer.finetuned at epoch 2 step 1 "), std::string::npos) << message;
    EXPECT_NE(message.find("pretext resume " + (dir_ / "parts").string()), std::string::npos) << message;
  }
  EXPECT_EQ(log.str().find("transfer.finetuned epoch 2/3:"), std::string::npos) << log.str();
  EXPECT_FALSE(fs::exists(dir_ / "parts" / "summary.json"));

  resume(dir_ / "parts");
  EXPECT_EQ(deterministic_metrics(dir_ / "parts" / "metrics.csv"),
            deterministic_metrics(dir_ / "whole" / "metrics.csv"));
}

// ---- the binary: kill -9, signals, refusing a used directory, a changed config ----

TEST_F(Resume, KilledWithSigkillMidEpochThenResumedEqualsAnUninterruptedRun) {
  // Many kept, so the chosen checkpoint is still there when the poll looks.
  const std::vector<std::string> overrides = {"checkpoint.every_steps=2", "checkpoint.keep=100"};
  run(dir_ / "whole", overrides);

  std::mt19937 choose(20261130);
  const int step = 2 * std::uniform_int_distribution<int>(1, 6)(choose);  // a step checkpoint in epoch 1
  std::vector<std::string> args = {"run", config_.string(), "--out", (dir_ / "killed").string()};
  for (const auto& o : overrides) args.insert(args.end(), {"--set", o});
  const pid_t pid = start_binary(args, dir_ / "killed.log");
  ASSERT_TRUE(wait_for_file(dir_ / "killed" / "checkpoints" / ("step-" + std::to_string(step) + ".pt"), pid))
      << read(dir_ / "killed.log");
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_FALSE(fs::exists(dir_ / "killed" / "summary.json"));

  ASSERT_EQ(run_binary("resume '" + (dir_ / "killed").string() + "'", dir_ / "resume.log"), 0)
      << read(dir_ / "resume.log");
  EXPECT_EQ(deterministic_metrics(dir_ / "killed" / "metrics.csv"),
            deterministic_metrics(dir_ / "whole" / "metrics.csv"));
}

class ResumeSignal : public Resume, public ::testing::WithParamInterface<int> {};

TEST_P(ResumeSignal, FirstSignalCheckpointsAndExitsWith128PlusSignal) {
  const int signal = GetParam();
  const std::vector<std::string> overrides = {"checkpoint.every_steps=2", "checkpoint.keep=100"};
  run(dir_ / "whole", overrides);
  std::vector<std::string> args = {"run", config_.string(), "--out", (dir_ / "stopped").string()};
  for (const auto& o : overrides) args.insert(args.end(), {"--set", o});
  const pid_t pid = start_binary(args, dir_ / "stopped.log");
  ASSERT_TRUE(wait_for_file(dir_ / "stopped" / "checkpoints" / "step-2.pt", pid)) << read(dir_ / "stopped.log");
  kill(pid, signal);
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string log = read(dir_ / "stopped.log");
  ASSERT_TRUE(WIFEXITED(status)) << log;
  EXPECT_EQ(WEXITSTATUS(status), 128 + signal) << log;
  EXPECT_NE(log.find("interrupted "), std::string::npos) << log;
  EXPECT_NE(log.find("continue with: pretext resume " + (dir_ / "stopped").string()), std::string::npos) << log;

  ASSERT_EQ(run_binary("resume '" + (dir_ / "stopped").string() + "'", dir_ / "resume.log"), 0)
      << read(dir_ / "resume.log");
  EXPECT_EQ(deterministic_metrics(dir_ / "stopped" / "metrics.csv"),
            deterministic_metrics(dir_ / "whole" / "metrics.csv"));
}

INSTANTIATE_TEST_SUITE_P(IntAndTerm, ResumeSignal, ::testing::Values(SIGINT, SIGTERM),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGINT ? "SIGINT" : "SIGTERM");
                         });

TEST_F(Resume, RunIntoADirectoryHoldingARunIsRefusedUnlessForced) {
  const std::string args = cli_config_args({"pretext.epochs=1", "transfer.modes=[]", "evaluation.knn=false",
                                            "evaluation.linear_probe=false"}) +
                           " --out '" + (dir_ / "used").string() + "'";
  ASSERT_EQ(run_binary("run " + args, dir_ / "first.log"), 0) << read(dir_ / "first.log");
  std::ofstream(dir_ / "used" / "marker") << "from the first run\n";

  EXPECT_EQ(run_binary("run " + args, dir_ / "again.log"), 2);
  const std::string refusal = read(dir_ / "again.log");
  EXPECT_NE(refusal.find("pretext resume " + (dir_ / "used").string()), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("--force"), std::string::npos) << refusal;
  EXPECT_TRUE(fs::exists(dir_ / "used" / "marker"));  // nothing touched

  EXPECT_EQ(run_binary("run " + args + " --force", dir_ / "forced.log"), 0) << read(dir_ / "forced.log");
  EXPECT_FALSE(fs::exists(dir_ / "used" / "marker"));  // cleared first
  EXPECT_TRUE(fs::exists(dir_ / "used" / "summary.json"));
}

TEST_F(Resume, ChangedConfigIsRefusedOnResume) {
  interrupt(dir_ / "parts", 5);
  std::ofstream(dir_ / "parts" / "config.toml", std::ios::app) << "# edited after the run started\n";
  EXPECT_EQ(run_binary("resume '" + (dir_ / "parts").string() + "'", dir_ / "resume.log"), 2);
  const std::string log = read(dir_ / "resume.log");
  EXPECT_NE(log.find("config.toml differs from the config that wrote"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir_ / "parts" / "summary.json"));
}

}  // namespace
}  // namespace pretext
