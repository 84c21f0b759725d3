// The one translation unit that sees c10d: TCPStore for the rendezvous,
// PrefixStore so that more groups could share it, ProcessGroupGloo for the
// collectives. c10d's exceptions are caught here and rethrown in pretext's
// terms (common/errors.hpp), naming the address, the timeout and the ranks.
#include "pipeline/distributed/process_group.hpp"

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <glog/logging.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/errors.hpp"
#include "common/format.hpp"

namespace pretext::distributed {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Keys in the shared store, all under this group's prefix.
const std::string kGroupPrefix = "pretext/default/";
std::string joined_key(int rank) { return "joined/" + std::to_string(rank); }
std::string arrived_key(int rank) { return "arrived/" + std::to_string(rank); }
std::string failed_key(int rank) { return "failed/" + std::to_string(rank); }
const std::string kWorldSizeKey = "world_size";

std::string seconds(milliseconds duration) {
  if (duration.count() % 1000 == 0) return std::to_string(duration.count() / 1000) + " s";
  return format_fixed(static_cast<double>(duration.count()) / 1000.0, 1) + " s";
}

std::string seconds_since(Clock::time_point start) {
  return format_fixed(std::chrono::duration<double>(Clock::now() - start).count(), 1) + " s";
}

// c10d's messages carry a C++ stack trace after the first line; people need the first line only.
std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string rank_list(const std::vector<int>& ranks) {
  std::string text;
  for (const int rank : ranks) text += (text.empty() ? "" : ", ") + std::to_string(rank);
  return text;
}

// c10d logs every failed bind and connection attempt through glog before it
// throws; the exception, translated, says it better and once. So glog is
// quiet while a group forms. Counted, because tests form two groups at once.
class QuietGlog {
 public:
  QuietGlog() {
    const std::lock_guard<std::mutex> lock(mutex());
    if (users()++ == 0) {
      saved() = FLAGS_minloglevel;
      FLAGS_minloglevel = google::GLOG_FATAL;
    }
  }
  ~QuietGlog() {
    const std::lock_guard<std::mutex> lock(mutex());
    if (--users() == 0) FLAGS_minloglevel = saved();
  }
  QuietGlog(const QuietGlog&) = delete;
  QuietGlog& operator=(const QuietGlog&) = delete;

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static int& users() {
    static int n = 0;
    return n;
  }
  static int& saved() {
    static int level = 0;
    return level;
  }
};

// c10d's client counts its connect timeout in whole seconds and fails at once
// when that is 0, even with rank 0 listening; it retries only once a second,
// and stops a second before its timeout, so with a short timeout it tries
// once and fails if rank 0 starts a moment later. So it is given 1 s, which
// is one try (a refusal fails it at once), and tried again every 100 ms until
// the deadline. A host that drops packets can make the last try end up to 1 s late.
constexpr milliseconds kShortestC10dTimeout{1000};

c10::intrusive_ptr<c10d::Store> serve_store(const DistributedEnvironment& env, milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(env.master_port);
  options.isServer = true;
  options.numWorkers = env.world_size;
  options.waitWorkers = false;  // joining is checked below, naming the ranks that are missing
  options.timeout = std::max(timeout, kShortestC10dTimeout);  // rank 0 connects to itself too: see connect_store
  try {
    auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    store->setTimeout(timeout);
    return store;
  } catch (const std::exception& e) {
    const std::string what = first_line(e.what());
    if (what.find("Address already in use") != std::string::npos)
      throw UsageError("cannot listen on " + env.master() + ": address in use (another program, or another job's " +
                       "rank 0, holds port " + std::to_string(env.master_port) + "); choose another MASTER_PORT");
    throw UsageError("cannot listen on " + env.master() + " as rank 0: " + what);
  }
}

// Another rank: connects to rank 0's store, trying until `timeout` has passed,
// since the ranks start in no particular order.
c10::intrusive_ptr<c10d::Store> connect_store(const DistributedEnvironment& env, milliseconds timeout) {
  constexpr milliseconds kRetryEvery{100};
  const auto deadline = Clock::now() + timeout;
  const auto start = Clock::now();
  std::string last_error;
  for (;;) {
    const auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (remaining <= milliseconds(0)) break;
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(env.master_port);
    options.isServer = false;
    options.numWorkers = env.world_size;
    options.timeout = kShortestC10dTimeout;
    try {
      auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
      store->setTimeout(timeout);
      return store;
    } catch (const std::exception& e) {
      last_error = first_line(e.what());
    }
    std::this_thread::sleep_for(std::min(kRetryEvery, std::chrono::duration_cast<milliseconds>(deadline - Clock::now())));
  }
  throw UsageError("no rendezvous with " + env.master() + " within " + seconds(timeout) + " (rank " +
                   std::to_string(env.rank) + " waited " + seconds_since(start) +
                   "): nothing answered there as rank 0; is rank 0 running, and do all ranks use the same " +
                   "MASTER_ADDR and MASTER_PORT? (c10d's last error: " + last_error + ")");
}

// Loopback for a job on one host; otherwise the interface GLOO_SOCKET_IFNAME
// names (as in PyTorch), or the address this host's name resolves to, which
// the other hosts can reach.
std::shared_ptr<gloo::transport::Device> gloo_device(const DistributedEnvironment& env) {
  const std::string& host = env.master_addr;
  if (host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1")
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface != nullptr && *interface != '\0')
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

struct ProcessGroup::Impl {
  DistributedEnvironment env;
  milliseconds timeout;
  c10::intrusive_ptr<c10d::Store> store;  // this group's keys, under kGroupPrefix
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;  // null for a group of one
  std::uint64_t collectives = 0;  // numbered alike on every rank: the n-th call is the same collective everywhere
  std::uint64_t exchanges = 0;

  void join();
  void wait_for(const std::vector<std::string>& keys, const std::vector<int>& ranks, const std::string& what);
  template <typename MakeWork>
  void collective(const char* name, MakeWork make_work);
  std::string who_is_missing(std::uint64_t number);
};

// Every rank says it is here, then waits for the others: a rank that never
// starts is named now, not as a hang in the first collective.
void ProcessGroup::Impl::join() {
  const auto start = Clock::now();
  if (store->add(joined_key(env.rank), 1) != 1)
    throw UsageError("RANK=" + std::to_string(env.rank) + " is used by two processes of the job at " + env.master());
  store->set(arrived_key(env.rank), std::vector<std::uint8_t>{'0'});
  const std::string size_text = std::to_string(env.world_size);
  if (env.rank == 0) store->set(kWorldSizeKey, std::vector<std::uint8_t>(size_text.begin(), size_text.end()));
  std::vector<std::string> keys;
  std::vector<int> ranks;
  for (int r = 0; r < env.world_size; ++r) {
    keys.push_back(joined_key(r));
    ranks.push_back(r);
  }
  try {
    wait_for(keys, ranks, "joined");
  } catch (const std::runtime_error& e) {
    throw UsageError("no rendezvous at " + env.master() + " within " + seconds(timeout) + " (rank " +
                     std::to_string(env.rank) + " waited " + seconds_since(start) + "): " + e.what() +
                     "; WORLD_SIZE=" + std::to_string(env.world_size) + " here: do all ranks agree?");
  }
  const auto bytes = store->get(kWorldSizeKey);
  const std::string rank0_size(bytes.begin(), bytes.end());
  if (rank0_size != size_text)
    throw UsageError("WORLD_SIZE=" + size_text + " on rank " + std::to_string(env.rank) +
                     ", but rank 0 has WORLD_SIZE=" + rank0_size);
}

// Waits for all `keys` (one per rank in `ranks`); on timeout, a runtime_error
// naming the ranks whose key is missing.
void ProcessGroup::Impl::wait_for(const std::vector<std::string>& keys, const std::vector<int>& ranks,
                                  const std::string& what) {
  try {
    store->wait(keys, timeout);
    return;
  } catch (const std::exception&) {
  }
  std::vector<int> missing;
  try {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (!store->check({keys[i]})) missing.push_back(ranks[i]);
  } catch (const std::exception&) {
    throw std::runtime_error("the store on rank 0 at " + env.master() +
                             " stopped answering (rank 0 has exited, or given up waiting: its output says why)");
  }
  if (missing.empty()) return;  // arrived just after the timeout
  throw std::runtime_error(std::string(missing.size() == 1 ? "rank " : "ranks ") + rank_list(missing) + " of " +
                           std::to_string(env.world_size) + " had not " + what + " after " + seconds(timeout));
}

// Which ranks have not reached collective `number`, from the marks each rank
// leaves in the store as it enters one.
std::string ProcessGroup::Impl::who_is_missing(std::uint64_t number) {
  std::vector<std::string> behind;
  std::vector<int> arrived;
  try {
    // Short: this only explains a failure, which must not take a second timeout to report.
    store->setTimeout(std::min(timeout, milliseconds(5000)));
    for (int r = 0; r < env.world_size; ++r) {
      if (r == env.rank) continue;
      // A rank that failed said why before it exited: that is the cause to report.
      if (store->check({failed_key(r)})) {
        const auto why = store->get(failed_key(r));
        behind.push_back("rank " + std::to_string(r) + " failed: " + std::string(why.begin(), why.end()));
        continue;
      }
      const auto mark = store->get(arrived_key(r));
      const std::uint64_t last = std::stoull(std::string(mark.begin(), mark.end()));
      if (last >= number) {
        arrived.push_back(r);
      } else {
        behind.push_back("rank " + std::to_string(r) + " has not arrived (" +
                         (last == 0 ? std::string("it has run no collective yet")
                                    : "its last was #" + std::to_string(last)) + ")");
      }
    }
    store->setTimeout(timeout);
  } catch (const std::exception&) {
    return "the store on rank 0 at " + env.master() + " does not answer either: rank 0 has probably exited";
  }
  std::string text;
  for (const auto& line : behind) text += (text.empty() ? "" : "; ") + line;
  if (!arrived.empty())
    text += (text.empty() ? "" : "; ") + std::string(arrived.size() == 1 ? "rank " : "ranks ") + rank_list(arrived) +
            " arrived, so its connection was lost (did it exit?)";
  return text;
}

template <typename MakeWork>
void ProcessGroup::Impl::collective(const char* name, MakeWork make_work) {
  const std::uint64_t number = ++collectives;
  const auto start = Clock::now();
  try {
    const std::string mark = std::to_string(number);
    store->set(arrived_key(env.rank), std::vector<std::uint8_t>(mark.begin(), mark.end()));
    for (auto& work : make_work()) work->wait();
  } catch (const std::exception& e) {
    const std::string what = first_line(e.what());
    // gloo names the peer by address; the marks below name it by rank.
    const bool closed = what.find("Connection closed") != std::string::npos ||
                        what.find("Connection reset") != std::string::npos;
    throw RankLost(std::string(name) + " #" + std::to_string(number) + " on rank " +
                             std::to_string(env.rank) + " of " + std::to_string(env.world_size) + " failed after " +
                             seconds_since(start) + " (timeout " + seconds(timeout) + "): " + what +
                             (closed ? " (a peer closed its connection: it exited or crashed)" : "") + "; " +
                             who_is_missing(number));
  }
}

void ProcessGroup::report_failure(const std::string& message) noexcept {
  if (impl_ == nullptr || !impl_->env.distributed()) return;
  try {
    impl_->store->set(failed_key(impl_->env.rank), std::vector<std::uint8_t>(message.begin(), message.end()));
  } catch (...) {  // the store is gone too (rank 0 exited): the others say so themselves
  }
}

ProcessGroup::ProcessGroup(const DistributedEnvironment& environment, milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  Impl& g = *impl_;
  g.env = environment;
  g.timeout = timeout;
  if (!environment.distributed()) {
    g.store = c10::make_intrusive<c10d::HashStore>();
    g.store->setTimeout(timeout);
    return;
  }
  if (environment.master_addr.empty() || environment.master_port < 1 || environment.master_port > 65535)
    throw UsageError("a process group of " + std::to_string(environment.world_size) +
                     " needs MASTER_ADDR and MASTER_PORT (1..65535), got '" + environment.master() + "'");
  const QuietGlog quiet;
  const auto start = Clock::now();
  auto tcp = environment.rank == 0 ? serve_store(environment, timeout) : connect_store(environment, timeout);
  g.store = c10::make_intrusive<c10d::PrefixStore>(kGroupPrefix, tcp);
  g.join();
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  try {
    options->devices.push_back(gloo_device(environment));
    g.gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo/", g.store), environment.rank, environment.world_size, options);
    // A rank's gloo can be connected before its peers' are: a rank that then
    // left at once (a config error, a test's end) would close its side of a
    // pair another rank is still handshaking on, and that rank would report
    // "connection closed" instead of the cause. So no rank leaves construction
    // before every rank is connected.
    g.gloo->barrier()->wait();
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(environment.rank) + " could not connect to its peers within " +
                             seconds(timeout) + " (after " + seconds_since(start) + "): " + first_line(e.what()));
  }
}

ProcessGroup::~ProcessGroup() = default;
ProcessGroup::ProcessGroup(ProcessGroup&&) noexcept = default;
ProcessGroup& ProcessGroup::operator=(ProcessGroup&&) noexcept = default;

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::world_size() const { return impl_->env.world_size; }
milliseconds ProcessGroup::timeout() const { return impl_->timeout; }

namespace {

// gloo reads and writes the tensors' memory directly: each must be a dense
// CPU tensor, contiguous. A non-contiguous one goes through a copy.
void check_tensors(const std::vector<torch::Tensor>& tensors, const char* operation) {
  for (const auto& t : tensors) {
    if (!t.defined()) throw std::invalid_argument(std::string(operation) + ": an undefined tensor");
    if (!t.device().is_cpu() || t.is_sparse())
      throw std::invalid_argument(std::string(operation) + ": expected dense CPU tensors, got one on " +
                                  t.device().str());
  }
}

// Runs `operation` on contiguous versions of `tensors`, writing results back
// into any that were not contiguous.
template <typename Operation>
void on_contiguous(std::vector<torch::Tensor>& tensors, Operation operation) {
  std::vector<torch::Tensor> dense;
  dense.reserve(tensors.size());
  for (auto& t : tensors) dense.push_back(t.is_contiguous() ? t : t.contiguous());
  operation(dense);
  for (std::size_t i = 0; i < tensors.size(); ++i)
    if (!dense[i].is_same(tensors[i])) tensors[i].copy_(dense[i]);
}

using Works = std::vector<c10::intrusive_ptr<c10d::Work>>;

}  // namespace

// ProcessGroupGloo reads a vector of tensors as copies of ONE tensor (one per
// device), so each tensor here is its own collective call; they are queued
// together and waited for together.
void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  check_tensors(tensors, "broadcast");
  if (root < 0 || root >= world_size())
    throw std::invalid_argument("broadcast: root " + std::to_string(root) + " is not a rank of a group of " +
                                std::to_string(world_size()));
  if (!impl_->gloo || tensors.empty()) return;
  on_contiguous(tensors, [&](std::vector<torch::Tensor>& dense) {
    impl_->collective("broadcast", [&] {
      Works works;
      c10d::BroadcastOptions options;
      options.rootRank = root;
      for (auto& t : dense) {
        std::vector<at::Tensor> one{t};
        works.push_back(impl_->gloo->broadcast(one, options));
      }
      return works;
    });
  });
}

void ProcessGroup::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  check_tensors(tensors, "all_reduce");
  if (!impl_->gloo || tensors.empty()) return;
  on_contiguous(tensors, [&](std::vector<torch::Tensor>& dense) {
    impl_->collective("all_reduce", [&] {
      Works works;
      for (auto& t : dense) {
        std::vector<at::Tensor> one{t};
        works.push_back(impl_->gloo->allreduce(one));
      }
      return works;
    });
  });
}

void ProcessGroup::all_reduce_mean(std::vector<torch::Tensor>& tensors) {
  for (const auto& t : tensors)
    if (t.defined() && !t.is_floating_point())
      throw std::invalid_argument("all_reduce_mean: expected floating-point tensors, got " +
                                  std::string(c10::toString(t.scalar_type())));
  all_reduce_sum(tensors);
  if (world_size() == 1) return;
  for (auto& t : tensors) t.div_(world_size());
}

void ProcessGroup::barrier() {
  if (!impl_->gloo) return;
  impl_->collective("barrier", [&] { return Works{impl_->gloo->barrier()}; });
}

void ProcessGroup::set(const std::string& key, const std::string& value) {
  impl_->store->set("user/" + key, std::vector<std::uint8_t>(value.begin(), value.end()));
}

std::string ProcessGroup::get(const std::string& key) {
  const std::string full = "user/" + key;
  try {
    impl_->store->wait({full}, impl_->timeout);
    const auto value = impl_->store->get(full);
    return {value.begin(), value.end()};
  } catch (const std::exception& e) {
    throw std::runtime_error("store key '" + key + "' was not set by any rank within " + seconds(impl_->timeout) +
                             " (rank " + std::to_string(rank()) + " waited): " + first_line(e.what()));
  }
}

std::vector<std::string> ProcessGroup::all_gather_strings(const std::string& topic, const std::string& value) {
  if (world_size() == 1) return {value};
  Impl& g = *impl_;
  const std::string prefix = "gather/" + std::to_string(++g.exchanges) + "/";
  // One byte before the value: TCPStore's wait takes a key whose value is
  // empty for one not yet set, and would only return at a retry.
  std::vector<std::uint8_t> stored{'='};
  stored.insert(stored.end(), value.begin(), value.end());
  g.store->set(prefix + std::to_string(rank()), stored);
  std::vector<std::string> keys;
  std::vector<int> ranks;
  for (int r = 0; r < world_size(); ++r) {
    keys.push_back(prefix + std::to_string(r));
    ranks.push_back(r);
  }
  try {
    g.wait_for(keys, ranks, "published their " + topic);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("exchanging " + topic + " (rank " + std::to_string(rank()) + "): " + e.what());
  }
  std::vector<std::string> values;
  for (const auto& key : keys) {
    const auto bytes = g.store->get(key);
    values.emplace_back(bytes.begin() + (bytes.empty() ? 0 : 1), bytes.end());
  }
  return values;
}

}  // namespace pretext::distributed
