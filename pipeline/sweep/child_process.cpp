#include "pipeline/sweep/child_process.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <csignal>
#include <cstdlib>

#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errors.hpp"

extern char** environ;  // NOLINT: POSIX

namespace pretext::sweep {

pid_t spawn_process(const std::filesystem::path& executable, const std::vector<std::string>& args,
                    const std::filesystem::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);

  std::vector<std::string> storage;
  storage.reserve(args.size() + 1);
  storage.push_back(executable.string());
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> environment{std::string(kExitWithParentVariable) + "=" + std::to_string(::getpid())};
  for (char** e = environ; *e != nullptr; ++e)
    if (std::string(*e).rfind(std::string(kExitWithParentVariable) + "=", 0) != 0) environment.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int error = posix_spawn(&pid, executable.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0)
    throw std::runtime_error("cannot start " + executable.string() + ": " + std::strerror(error));
  return pid;
}

ProcessExit wait_for_any_child() {
  int status = 0;
  pid_t pid = -1;
  do {
    pid = ::waitpid(-1, &status, 0);
  } while (pid < 0 && errno == EINTR);
  if (pid < 0) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  ProcessExit exit;
  exit.pid = pid;
  exit.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit;
}

void exit_with_parent_if_asked() {
  const char* parent = std::getenv(kExitWithParentVariable);
  if (parent == nullptr) return;
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  // The parent may have died before prctl: then we were re-parented already.
  if (std::to_string(::getppid()) != parent) std::_Exit(143);
}

DirectoryLock::DirectoryLock(const std::filesystem::path& directory) {
  const auto file = directory / ".lock";
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot create " + file.string() + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
    throw UsageError("another pretext sweep is running in " + directory.string() +
                     " (it holds " + file.string() + "); wait for it, or stop it first");
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace pretext::sweep
