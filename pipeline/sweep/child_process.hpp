// Runs `pretext run` for a sweep variant as a child process, so variants can
// run side by side, a crash in one cannot take the others down, and each one
// gets its own LibTorch thread pool.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

namespace pretext::sweep {

/// The environment variable that tells a child `pretext run` to end when the
/// sweep that started it ends (see exit_with_parent_if_asked()), so a killed
/// sweep leaves no orphan runs writing into its directory.
constexpr const char* kExitWithParentVariable = "PRETEXT_EXIT_WITH_PARENT";

/// Starts `executable args...` with stdout and stderr appended to `log`, and
/// kExitWithParentVariable set to this process's pid.
/// Throws std::runtime_error naming the executable when it cannot start.
pid_t spawn_process(const std::filesystem::path& executable, const std::vector<std::string>& args,
                    const std::filesystem::path& log);

struct ProcessExit {
  pid_t pid = -1;
  int exit_code = 0;  // the exit status, or 128 + signal when killed
};

/// Waits for any child to end.
ProcessExit wait_for_any_child();

/// In a child started by spawn_process: asks the kernel for SIGTERM when the
/// parent dies, and exits at once if it already has. A no-op otherwise.
void exit_with_parent_if_asked();

/// Holds an exclusive lock on `directory`/.lock for the object's lifetime, so
/// two sweeps never run into one directory. Throws UsageError naming the
/// directory when another process holds it.
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::filesystem::path& directory);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace pretext::sweep
