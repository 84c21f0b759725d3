#include "pipeline/sweep/child_process.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

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

  pid_t pid = -1;
  const int error = posix_spawn(&pid, executable.c_str(), &actions, nullptr, argv.data(), environ);
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

}  // namespace pretext::sweep
