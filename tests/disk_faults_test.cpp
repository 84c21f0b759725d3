// Faults while pretext writes its run directory: a full disk (a file-size
// limit, RLIMIT_FSIZE, in the child), a read-only directory (a root test
// drops the capabilities that bypass permission bits in the child), and a
// checkpoint write that hangs while a second signal arrives. Each one must
// end the process with a clear error or the promised exit code, and leave the
// previous checkpoint or report exactly as it was. The CLI runs as a child
// process (tests/support/pretext_process.hpp); runs that only prepare a
// directory run in-process.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/atomic_file.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/train/checkpoint.hpp"
#include "pipeline/train/job.hpp"
#include "support/pretext_process.hpp"
#include "support/run_files.hpp"
#include "support/synthetic_idx.hpp"
#include "support/tiny_rotation_run.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;
using testing::ChildLimits;
using testing::deterministic_metrics;
using testing::run_pretext;

constexpr auto npos = std::string::npos;

/// The regular files directly in `dir`, name -> bytes (FIFOs and folders left out).
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file()) files[entry.path().filename().string()] = testing::read_file(entry.path());
  return files;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class DiskFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("disk-faults");
    config_ = testing::write_tiny_rotation_run(dir_);
    // Readable by the unprivileged child, whatever the umask.
    fs::permissions(dir_, fs::perms(0755));
    for (const auto& entry : fs::directory_iterator(dir_)) fs::permissions(entry.path(), fs::perms(0644));
  }
  void TearDown() override {
    // A directory the test made read-only must be writable again to be removed (unless root).
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_directory()) fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }

  toml::table run(const fs::path& out, std::vector<std::string> overrides, const StopToken* stop = nullptr) {
    JobRequest request{config_, std::move(overrides), out};
    request.stop = stop;
    Job job(request);
    std::ostringstream log;
    Progress progress(log, false);
    return job.run(progress);
  }
  /// A run stopped, as by a signal, after global step `step`: its checkpoint is checkpoints/step-<step>.pt.
  void interrupted_run(const fs::path& out, std::int64_t step, const std::vector<std::string>& overrides) {
    StopToken stop;
    stop.request_at_step(step, SIGINT);
    EXPECT_THROW(run(out, overrides, &stop), RunInterrupted);
    ASSERT_TRUE(fs::exists(out / "checkpoints" / ("step-" + std::to_string(step) + ".pt")));
  }
  /// A finished run with a report.html and no charts.
  fs::path finished_run() {
    const auto out = dir_ / "finished";
    run(out, {"pretext.epochs=1", "transfer.modes=[]", "evaluation.knn=false", "evaluation.linear_probe=false"});
    EXPECT_TRUE(fs::exists(out / "report.html"));
    return out;
  }

  fs::path dir_;
  fs::path config_;
};

const std::vector<std::string> kStepCheckpoints = {"checkpoint.every_steps=2", "checkpoint.keep=100"};

TEST_F(DiskFaults, FullDiskWhileWritingACheckpointKeepsThePreviousOne) {
  const auto out = dir_ / "run";
  interrupted_run(out, 5, kStepCheckpoints);
  const auto checkpoints = out / "checkpoints";
  const auto before = snapshot(checkpoints);
  ASSERT_EQ(names_in(checkpoints), (std::vector<std::string>{"step-2.pt", "step-4.pt", "step-5.pt"}));

  // The resumed run's first checkpoint, step 6, cannot grow past half the size of step 5's.
  ChildLimits full;
  full.file_size = fs::file_size(checkpoints / "step-5.pt") / 2;
  const auto failed = run_pretext({"resume", out.string()}, full);
  ASSERT_TRUE(failed.exited) << "killed by signal " << failed.signal << " (SIGXFSZ is 25)\n" << failed.output;
  EXPECT_EQ(failed.code, 1) << failed.output;
  EXPECT_NE(
      failed.output.find("pretext: error: cannot write " + (checkpoints / "step-6.pt").string() + ": File too large"),
      npos)
      << failed.output;
  EXPECT_EQ(snapshot(checkpoints), before) << "a checkpoint changed, or a temporary was left";
  EXPECT_EQ(names_in(checkpoints).size(), 3U);

  // Space again: resume continues from step 5 and ends exactly like a run that never failed.
  const auto resumed = run_pretext({"resume", out.string()});
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from " + (checkpoints / "step-5.pt").string()), npos) << resumed.output;
  run(dir_ / "whole", kStepCheckpoints);
  EXPECT_EQ(deterministic_metrics(out / "metrics.csv"), deterministic_metrics(dir_ / "whole" / "metrics.csv"));
}

TEST_F(DiskFaults, ReadOnlyCheckpointDirectoryKeepsThePreviousCheckpoint) {
  const auto out = dir_ / "run";
  interrupted_run(out, 5, kStepCheckpoints);
  const auto checkpoints = out / "checkpoints";
  const auto before = snapshot(checkpoints);
  fs::permissions(checkpoints, fs::perms(0555));

  ChildLimits unprivileged;
  unprivileged.unprivileged = true;
  const auto failed = run_pretext({"resume", out.string()}, unprivileged);
  if (failed.exited && failed.code == testing::kCannotDropPrivileges)
    GTEST_SKIP() << "root, but cannot drop CAP_DAC_OVERRIDE: root ignores permission bits";
  EXPECT_EQ(failed.code, 1) << failed.output;
  EXPECT_NE(failed.output.find("pretext: error: cannot write " + (checkpoints / "step-6.pt").string() +
                               ": Permission denied"),
            npos)
      << failed.output;
  EXPECT_EQ(snapshot(checkpoints), before);

  fs::permissions(checkpoints, fs::perms(0755));
  const auto resumed = run_pretext({"resume", out.string()}, unprivileged);
  EXPECT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from " + (checkpoints / "step-5.pt").string()), npos) << resumed.output;
}

TEST_F(DiskFaults, FullDiskWhileWritingTheReportKeepsTheOldOne) {
  const auto out = finished_run();
  const auto before = snapshot(out);
  ChildLimits full;
  full.file_size = 512;  // far less than a report
  const auto failed = run_pretext({"report", out.string()}, full);
  ASSERT_TRUE(failed.exited) << "killed by signal " << failed.signal << '\n' << failed.output;
  EXPECT_EQ(failed.code, 1) << failed.output;
  EXPECT_NE(failed.output.find("cannot write " + (out / "report.html").string() + ": File too large"), npos)
      << failed.output;
  EXPECT_EQ(snapshot(out), before);
}

TEST_F(DiskFaults, ReadOnlyRunDirectoryFailsTheReportAndKeepsTheOldOne) {
  const auto out = finished_run();
  const auto before = snapshot(out);
  fs::permissions(out, fs::perms(0555));
  ChildLimits unprivileged;
  unprivileged.unprivileged = true;
  const auto failed = run_pretext({"report", out.string()}, unprivileged);
  if (failed.exited && failed.code == testing::kCannotDropPrivileges)
    GTEST_SKIP() << "root, but cannot drop CAP_DAC_OVERRIDE: root ignores permission bits";
  EXPECT_EQ(failed.code, 1) << failed.output;
  EXPECT_NE(failed.output.find("cannot write " + (out / "report.html").string() + ": Permission denied"), npos)
      << failed.output;
  EXPECT_EQ(snapshot(out), before);
}

// ---- a second signal while the first signal's checkpoint hangs ----

class SecondSignal : public DiskFaults, public ::testing::WithParamInterface<int> {};

TEST_P(SecondSignal, WhileTheFirstSignalsCheckpointHangsExitsAtOnce) {
  const int signal = GetParam();
  const auto out = dir_ / "run";
  interrupted_run(out, 5, {"checkpoint.every_steps=0"});
  const auto checkpoints = out / "checkpoints";
  const auto before = snapshot(checkpoints);

  testing::PretextProcess child({"resume", out.string()});
  // Every checkpoint the resumed run could write (steps 6 to 30) gets, at its
  // temporary's name, a FIFO whose reader never reads: that write stops for
  // good once the pipe (one page) is full, like a write to a hung disk.
  std::map<int, int> readers;  // step -> read end
  for (int step = 6; step <= 30; ++step) {
    const auto fifo = temporary_path(checkpoints / ("step-" + std::to_string(step) + ".pt"), child.pid());
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0) << fifo;
    readers[step] = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ASSERT_GE(readers[step], 0);
    ::fcntl(readers[step], F_SETPIPE_SZ, 4096);
  }
  child.start();
  ASSERT_TRUE(child.wait_for_output("resuming from")) << child.output();  // the handlers are installed
  child.signal(signal);

  // The step whose checkpoint hangs: bytes wait in its pipe, and no more come.
  int stuck = 0;
  int queued_before = -1;
  int unchanged = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (unchanged < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    for (const auto& [step, fd] : readers) {
      int queued = 0;
      if (::ioctl(fd, FIONREAD, &queued) != 0 || queued == 0) continue;
      unchanged = step == stuck && queued == queued_before ? unchanged + 1 : 0;
      stuck = step;
      queued_before = queued;
    }
  }
  ASSERT_EQ(unchanged, 5) << "no checkpoint write started, or it did not stop\n" << child.output();

  const auto sent = std::chrono::steady_clock::now();
  child.signal(signal);
  const auto exit = child.wait(std::chrono::seconds(20));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  for (const auto& [step, fd] : readers) ::close(fd);
  ASSERT_TRUE(exit.exited) << exit.output;
  EXPECT_EQ(exit.code, 128 + signal) << exit.output;
  EXPECT_LT(seconds, 5.0);
  // The cut write left its temporary, never a step-N.pt that looks whole.
  EXPECT_FALSE(fs::exists(checkpoints / ("step-" + std::to_string(stuck) + ".pt")));
  EXPECT_TRUE(fs::exists(temporary_path(checkpoints / ("step-" + std::to_string(stuck) + ".pt"), child.pid())));
  EXPECT_EQ(list_checkpoints(out), std::vector<fs::path>{checkpoints / "step-5.pt"});
  EXPECT_EQ(snapshot(checkpoints), before);

  // Resume removes what the dead process left behind, then continues from step 5.
  const auto resumed = run_pretext({"resume", out.string()});
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("removed 25 temporary file(s)"), npos) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from " + (checkpoints / "step-5.pt").string()), npos) << resumed.output;
  for (const auto& name : names_in(checkpoints)) EXPECT_EQ(name.find(".tmp."), npos) << name;
}

INSTANTIATE_TEST_SUITE_P(IntAndTerm, SecondSignal, ::testing::Values(SIGINT, SIGTERM),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGINT ? "SIGINT" : "SIGTERM");
                         });

}  // namespace
}  // namespace pretext
