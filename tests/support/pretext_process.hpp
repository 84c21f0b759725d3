// The pretext binary as a child process, for tests that inject faults the
// process itself must meet: a file-size limit (setrlimit in the child), an
// process without the power to ignore permission bits (a root test drops
// CAP_DAC_OVERRIDE and friends in the child), signals at chosen moments.
//
// The child waits, after fork and before exec, until start() is called, so a
// test can prepare files that name the child's pid first. Its stdout and
// stderr go to a pipe that a thread drains: a pipe is not subject to the file
// size limit, so the error the child prints always comes back.
#pragma once

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#ifndef PRETEXT_BINARY
#error "PRETEXT_BINARY must name the pretext executable (tests/CMakeLists.txt)"
#endif

namespace pretext::testing {

/// The child's exit status when it could not drop privileges.
constexpr int kCannotDropPrivileges = 125;

struct ChildLimits {
  rlim_t file_size = RLIM_INFINITY;  // RLIMIT_FSIZE, in bytes
  bool unprivileged = false;         // when root: without the capabilities that bypass permission bits
  std::vector<std::string> environment;  // "NAME=value", set in the child on top of this process's environment
};

struct ChildExit {
  bool exited = false;  // false: killed by `signal`, or still running at the timeout
  int code = -1;
  int signal = 0;
  std::string output;
};

class PretextProcess {
 public:
  PretextProcess(const std::vector<std::string>& arguments, ChildLimits limits = {}) {
    int output[2];
    int go[2];
    if (::pipe2(output, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) return;
    std::vector<char*> argv{const_cast<char*>(PRETEXT_BINARY)};
    for (const auto& a : arguments) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    // The child's environment, built before fork (nothing may allocate after it).
    std::vector<std::string> variables = limits.environment;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      const std::string name = entry.substr(0, entry.find('='));
      bool overridden = false;
      for (const auto& v : limits.environment) overridden = overridden || v.rfind(name + "=", 0) == 0;
      if (!overridden) variables.push_back(entry);
    }
    std::vector<char*> envp;
    for (auto& v : variables) envp.push_back(v.data());
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {  // only async-signal-safe calls from here to exec
      ::dup2(output[1], 1);
      ::dup2(output[1], 2);
      char byte = 0;
      if (::read(go[0], &byte, 1) != 1) ::_exit(127);
      if (limits.file_size != RLIM_INFINITY) {
        const rlimit limit{limits.file_size, limits.file_size};
        if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(126);
      }
      if (limits.unprivileged && ::geteuid() == 0) {
        // Root stays root (so it can still reach a checkout in a 0700
        // directory), but without the capabilities that ignore permission
        // bits: dropped from the bounding set, exec does not grant them back.
        for (const int cap : {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER})
          if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) ::_exit(kCannotDropPrivileges);
      }
      ::execve(PRETEXT_BINARY, argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(output[1]);
    ::close(go[0]);
    go_ = go[1];
    output_fd_ = output[0];
    reader_ = std::thread([this] {
      char buffer[4096];
      for (ssize_t n; (n = ::read(output_fd_, buffer, sizeof buffer)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        const std::lock_guard<std::mutex> lock(mutex_);
        output_.append(buffer, static_cast<std::size_t>(n));
      }
    });
  }
  ~PretextProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (go_ >= 0) ::close(go_);
    if (reader_.joinable()) reader_.join();
    if (output_fd_ >= 0) ::close(output_fd_);
  }
  PretextProcess(const PretextProcess&) = delete;
  PretextProcess& operator=(const PretextProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  /// Lets the child exec pretext.
  void start() {
    const char byte = 1;
    if (::write(go_, &byte, 1) != 1) ::kill(pid_, SIGKILL);
    ::close(go_);
    go_ = -1;
  }
  void signal(int number) const { ::kill(pid_, number); }
  [[nodiscard]] std::string output() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return output_;
  }
  /// Whether the output holds `text` within `timeout` (false at once if the child ended without it).
  bool wait_for_output(const std::string& text, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (output().find(text) != std::string::npos) return true;
      if (!reaped_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
      if (reaped_) return output().find(text) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }
  /// Waits for the child to end, up to `timeout`; a child still running then is killed (exited = false).
  ChildExit wait(std::chrono::milliseconds timeout = std::chrono::minutes(2)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!reaped_ && std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, &status_, WNOHANG) == pid_)
        reaped_ = true;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ChildExit result;
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      reaped_ = true;
      if (reader_.joinable()) reader_.join();
      result.output = output() + "\n[still running at the timeout: killed]";
      return result;
    }
    if (reader_.joinable()) reader_.join();  // the pipe closes with the child
    result.exited = WIFEXITED(status_);
    result.code = result.exited ? WEXITSTATUS(status_) : -1;
    result.signal = WIFSIGNALED(status_) ? WTERMSIG(status_) : 0;
    result.output = output();
    return result;
  }

 private:
  pid_t pid_ = -1;
  int go_ = -1;
  int output_fd_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::string output_;
};

/// Runs pretext to the end with `limits`.
inline ChildExit run_pretext(const std::vector<std::string>& arguments, ChildLimits limits = {}) {
  PretextProcess process(arguments, limits);
  process.start();
  return process.wait();
}

}  // namespace pretext::testing
