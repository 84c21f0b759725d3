// Runs `pretext run` for a sweep variant as a child process, so variants can
// run side by side, a crash in one cannot take the others down, and each one
// gets its own LibTorch thread pool.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

namespace pretext::sweep {

/// Starts `executable args...` with stdout and stderr appended to `log`.
/// Throws std::runtime_error naming the executable when it cannot start.
pid_t spawn_process(const std::filesystem::path& executable, const std::vector<std::string>& args,
                    const std::filesystem::path& log);

struct ProcessExit {
  pid_t pid = -1;
  int exit_code = 0;  // the exit status, or 128 + signal when killed
};

/// Waits for any child to end.
ProcessExit wait_for_any_child();

}  // namespace pretext::sweep
