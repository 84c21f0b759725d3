#include "pipeline/distributed/local_launcher.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ostream>
#include <stdexcept>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errors.hpp"
#include "pipeline/distributed/launch_environment.hpp"

extern char** environ;  // NOLINT: POSIX

namespace pretext::distributed {
namespace {

using Clock = std::chrono::steady_clock;

// The launch forwards SIGINT and SIGTERM to its processes. Each process has
// its own process group, so a Ctrl-C in the terminal reaches only the launch
// and each process gets the signal once: a second one would make `pretext
// run` exit at once instead of after a checkpoint.
volatile std::sig_atomic_t g_received_signal = 0;
extern "C" void remember_signal(int signal) { g_received_signal = signal; }

class ForwardSignals {
 public:
  ForwardSignals() {
    g_received_signal = 0;
    struct sigaction action {};
    action.sa_handler = remember_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &old_int_);
    ::sigaction(SIGTERM, &action, &old_term_);
  }
  ~ForwardSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  ForwardSignals(const ForwardSignals&) = delete;
  ForwardSignals& operator=(const ForwardSignals&) = delete;

  /// The signal received since the last call, or 0.
  static int take() {
    const int signal = g_received_signal;
    g_received_signal = 0;
    return signal;
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

/// One output stream of one process: bytes in, whole prefixed lines out.
struct Stream {
  Fd fd;
  std::ostream* sink = nullptr;
  std::string pending;  // an unfinished line

  void emit(const std::string& prefix, bool at_end) {
    std::size_t start = 0;
    for (std::size_t newline; (newline = pending.find('\n', start)) != std::string::npos; start = newline + 1)
      *sink << prefix << pending.substr(start, newline - start + 1);
    pending.erase(0, start);
    if (at_end && !pending.empty()) {
      *sink << prefix << pending << '\n';
      pending.clear();
    }
    sink->flush();
  }

  /// Reads what is there; false at end of file.
  bool read(const std::string& prefix) {
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
      if (n > 0) {
        pending.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      const bool open = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      emit(prefix, !open);
      if (!open) fd.reset();
      return open;
    }
  }
};

struct Child {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  bool stopping = false;  // sent SIGINT or SIGTERM already: a second one would skip its checkpoint
  int exit_code = 0;
  Stream out, err;
  [[nodiscard]] std::string prefix() const { return "[rank " + std::to_string(rank) + "] "; }
};

std::pair<Fd, Fd> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  return {Fd(fds[0]), Fd(fds[1])};
}

std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& ours) {
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string name = entry.substr(0, entry.find('='));
    const bool replaced = std::any_of(ours.begin(), ours.end(), [&](const auto& kv) { return kv.first == name; });
    if (!replaced) environment.push_back(entry);
  }
  for (const auto& [name, value] : ours) environment.push_back(name + "=" + value);
  return environment;
}

void spawn(const LaunchRequest& request, Child& child, const std::vector<std::string>& environment) {
  auto [out_read, out_write] = make_pipe();
  auto [err_read, err_write] = make_pipe();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);  // see ForwardSignals
  posix_spawnattr_setpgroup(&attributes, 0);

  std::vector<std::string> storage{request.executable.string()};
  storage.insert(storage.end(), request.arguments.begin(), request.arguments.end());
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage = environment;
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  const int error =
      ::posix_spawn(&child.pid, request.executable.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0)
    throw std::runtime_error("cannot start rank " + std::to_string(child.rank) + ": " + request.executable.string() +
                             ": " + std::strerror(error));
  child.running = true;
  ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);
  child.out.fd = std::move(out_read);
  child.err.fd = std::move(err_read);
}

void signal_running(std::vector<Child>& children, int signal) {
  for (auto& child : children) {
    if (!child.running) continue;
    ::kill(child.pid, signal);
    if (signal != SIGKILL) child.stopping = true;
  }
}

// After a failure: the others stop, each asked once.
void stop_the_others(std::vector<Child>& children) {
  for (auto& child : children) {
    if (!child.running || child.stopping) continue;
    ::kill(child.pid, SIGTERM);
    child.stopping = true;
  }
}

void check(const LaunchRequest& request) {
  if (request.nproc_per_node < 1) throw UsageError("launch: --nproc-per-node must be at least 1");
  if (request.nnodes < 1) throw UsageError("launch: --nnodes must be at least 1");
  if (request.node_rank < 0 || request.node_rank >= request.nnodes)
    throw UsageError("launch: --node-rank " + std::to_string(request.node_rank) + " is not in 0.." +
                     std::to_string(request.nnodes - 1) + " (--nnodes " + std::to_string(request.nnodes) + ")");
  if (request.master_port == 0 && request.nnodes > 1)
    throw UsageError("launch: --nnodes " + std::to_string(request.nnodes) +
                     " needs --master HOST:PORT, the same on every node (the host of node 0)");
  if (request.master_port < 0 || request.master_port > 65535)
    throw UsageError("launch: master port " + std::to_string(request.master_port) + " is not in 1..65535");
  if (request.arguments.empty()) throw UsageError("launch: nothing to run (pretext launch ... -- run CONFIG)");
}

}  // namespace

int pick_free_port() {
  const Fd socket_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (socket_fd.get() < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);  // rank 0's store listens on every address
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(socket_fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(socket_fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
    throw std::runtime_error(std::string("cannot find a free port: ") + std::strerror(errno));
  return ntohs(address.sin_port);
}

LaunchOutcome launch_processes(const LaunchRequest& request, std::ostream& out, std::ostream& err) {
  check(request);
  const int port = request.master_port != 0 ? request.master_port : pick_free_port();
  const int world_size = request.nnodes * request.nproc_per_node;
  DistributedEnvironment shape;
  shape.local_world_size = request.nproc_per_node;
  const bool threads_set = std::getenv("OMP_NUM_THREADS") != nullptr;

  const ForwardSignals forward;
  std::vector<Child> children(static_cast<std::size_t>(request.nproc_per_node));
  LaunchOutcome outcome;
  auto deadline = Clock::time_point::max();  // for SIGKILL, once something failed
  const auto fail = [&](const Child& child) {
    if (outcome.first_failed_rank >= 0) return;
    outcome.first_failed_rank = child.rank;
    outcome.exit_code = child.exit_code;
    stop_the_others(children);
    deadline = Clock::now() + request.grace;
  };

  for (int local = 0; local < request.nproc_per_node; ++local) {
    Child& child = children[static_cast<std::size_t>(local)];
    child.rank = request.node_rank * request.nproc_per_node + local;
    child.out.sink = &out;
    child.err.sink = &err;
    std::vector<std::pair<std::string, std::string>> ours = {
        {variables::kRank, std::to_string(child.rank)},
        {variables::kWorldSize, std::to_string(world_size)},
        {variables::kLocalRank, std::to_string(local)},
        {variables::kLocalWorldSize, std::to_string(request.nproc_per_node)},
        {variables::kMasterAddr, request.master_addr},
        {variables::kMasterPort, std::to_string(port)}};
    // OpenBLAS and OpenMP size their pools from this; N processes each taking every core would oversubscribe.
    if (!threads_set) ours.emplace_back("OMP_NUM_THREADS", std::to_string(default_threads(shape)));
    ours.insert(ours.end(), request.extra_environment.begin(), request.extra_environment.end());
    try {
      spawn(request, child, child_environment(ours));
    } catch (...) {
      signal_running(children, SIGKILL);
      for (auto& started : children)
        if (started.running) ::waitpid(started.pid, nullptr, 0);
      throw;
    }
  }

  auto last_exit = Clock::time_point::max();
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<std::pair<Child*, Stream*>> owners;
    for (auto& child : children)
      for (Stream* stream : {&child.out, &child.err})
        if (stream->fd.get() >= 0) {
          fds.push_back({stream->fd.get(), POLLIN, 0});
          owners.emplace_back(&child, stream);
        }
    const bool any_running = std::any_of(children.begin(), children.end(), [](const Child& c) { return c.running; });
    // A process that has ended may have left a child holding its pipes; do not wait on those for long.
    if (!any_running && (fds.empty() || Clock::now() - last_exit > std::chrono::seconds(1))) break;
    if (::poll(fds.data(), fds.size(), 50) > 0)
      for (std::size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents != 0) owners[i].second->read(owners[i].first->prefix());

    if (const int signal = ForwardSignals::take(); signal != 0) signal_running(children, signal);
    for (auto& child : children) {
      if (!child.running) continue;
      int status = 0;
      if (::waitpid(child.pid, &status, WNOHANG) != child.pid) continue;
      child.running = false;
      child.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      last_exit = Clock::now();
      if (child.exit_code != 0) fail(child);
    }
    if (Clock::now() > deadline) {
      signal_running(children, SIGKILL);
      deadline = Clock::time_point::max();
    }
  }
  for (auto& child : children) {
    child.out.emit(child.prefix(), true);
    child.err.emit(child.prefix(), true);
  }
  return outcome;
}

}  // namespace pretext::distributed
