// Files written atomically: a temporary beside the target, fsync, rename,
// fsync of the directory, so a crash leaves either the old file or the new one.
// Every writer of pretext uses this; errors name the file and the OS's reason.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string_view>

namespace pretext {

/// A file written in pieces, then committed atomically. The bytes go to a
/// temporary file beside `path`; commit() fsyncs it, renames it to `path` and
/// fsyncs the directory. Destroyed before commit() (an error, an exception),
/// it removes the temporary, and `path` keeps its previous contents. Every
/// error is a std::runtime_error "cannot write PATH: REASON", REASON being the
/// OS's (No space left on device, File too large, Permission denied, ...).
class AtomicFile {
 public:
  /// Creates the temporary; throws if it cannot.
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends bytes. False once any write has failed; the first failure is
  /// kept for check() and commit(). Never throws, so C code may call it
  /// through a callback (LibTorch's zip writer, libpng).
  bool append(const void* data, std::size_t size) noexcept;
  /// Throws the first failed write's error, if there was one.
  void check() const;
  /// check(), then fsync, close, rename to path() and fsync the directory.
  void commit();
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path temporary_;
  int fd_ = -1;
  int error_ = 0;  // errno of the first failed write
};

/// Writes `contents` to `path` atomically (an AtomicFile). Throws naming the file.
void write_file_atomically(const std::filesystem::path& path, std::string_view contents);

/// Lets `write` produce a temporary file, then fsyncs and renames it to `path`.
/// For writers that insist on a path of their own. Prefer AtomicFile: an
/// error that such a writer does not report (a failed final flush when it
/// closes its stream) cannot be seen here.
void commit_file_atomically(const std::filesystem::path& path,
                            const std::function<void(const std::filesystem::path& temporary)>& write);

/// Where the temporary of `path` lives while process `pid` writes it: a
/// hidden file beside it, ".NAME.tmp.PID".
std::filesystem::path temporary_path(const std::filesystem::path& path, long pid);

/// Removes the temporaries in `dir` (not below) whose writing process is gone:
/// what a kill -9, a second signal or a power cut leaves. Returns how many.
std::size_t remove_stale_temporaries(const std::filesystem::path& dir);

}  // namespace pretext
