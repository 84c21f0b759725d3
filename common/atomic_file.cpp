#include "common/atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace pretext {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail_write(const fs::path& path, int error, const std::string& during = {}) {
  throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(error) +
                           (during.empty() ? std::string() : " (" + during + ")"));
}

fs::path directory_of(const fs::path& path) { return path.has_parent_path() ? path.parent_path() : fs::path("."); }

/// fsync of the directory, so the rename itself survives a power cut.
void sync_directory(const fs::path& path) {
  const int fd = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_write(path, errno, "opening its directory for fsync");
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) fail_write(path, error, "fsync of its directory");
}

/// The pid in ".NAME.tmp.PID", or -1 for any other name.
long temporary_owner(const std::string& name) {
  const auto at = name.rfind(".tmp.");
  if (name.empty() || name[0] != '.' || at == std::string::npos || at == 0) return -1;
  const std::string digits = name.substr(at + 5);
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stol(digits);
}

}  // namespace

fs::path temporary_path(const fs::path& path, long pid) {
  return directory_of(path) / ("." + path.filename().string() + ".tmp." + std::to_string(pid));
}

std::size_t remove_stale_temporaries(const fs::path& dir) {
  std::size_t removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const long pid = temporary_owner(it->path().filename().string());
    if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // its writer may still be at work
    std::error_code ignored;
    if (fs::remove(it->path(), ignored)) ++removed;
  }
  return removed;
}

AtomicFile::AtomicFile(fs::path path) : path_(std::move(path)), temporary_(temporary_path(path_, ::getpid())) {
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_write(path_, errno);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temporary_.c_str());
  }
}

bool AtomicFile::append(const void* data, std::size_t size) noexcept {
  if (error_ != 0 || fd_ < 0) return false;
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = n < 0 ? errno : EIO;
      return false;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

void AtomicFile::check() const {
  if (error_ != 0) fail_write(path_, error_);
  if (fd_ < 0) throw std::logic_error("AtomicFile " + path_.string() + ": written after commit");
}

void AtomicFile::commit() {
  check();
  if (::fsync(fd_) != 0) fail_write(path_, errno, "fsync");
  const int fd = fd_;
  fd_ = -1;  // closed below whatever happens; the temporary is removed on failure
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temporary_.c_str());
    fail_write(path_, error, "close");
  }
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary_.c_str());
    fail_write(path_, error, "rename from " + temporary_.filename().string());
  }
  sync_directory(path_);
}

void commit_file_atomically(const fs::path& path, const std::function<void(const fs::path&)>& write) {
  const auto tmp = temporary_path(path, ::getpid());
  try {
    write(tmp);
    const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_write(path, errno, "reopening " + tmp.filename().string() + " for fsync");
    const int rc = ::fsync(fd);
    const int error = errno;
    ::close(fd);
    if (rc != 0) fail_write(path, error, "fsync");
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail_write(path, errno, "rename from " + tmp.filename().string());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  sync_directory(path);
}

void write_file_atomically(const fs::path& path, std::string_view contents) {
  AtomicFile file(path);
  file.append(contents.data(), contents.size());
  file.commit();
}

}  // namespace pretext
