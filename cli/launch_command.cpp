// pretext launch --nproc-per-node N [--nnodes M --node-rank R --master HOST:PORT] -- COMMAND ...
// This node's share of a data-parallel job: N copies of this executable, each
// told its rank through torchrun's variables (pipeline/distributed/local_launcher.hpp).
#include <unistd.h>

#include <iostream>
#include <string>

#include <boost/dll/runtime_symbol_info.hpp>

#include "cli/commands.hpp"
#include "common/errors.hpp"
#include "pipeline/distributed/local_launcher.hpp"
#include "pipeline/sweep/child_process.hpp"

namespace pretext::cli {
namespace {

// "host:port", "[v6::address]:port".
void read_master(const std::string& text, distributed::LaunchRequest& request) {
  const auto colon = text.rfind(':');
  const auto refuse = [&] { throw UsageError("--master expects HOST:PORT with a port in 1..65535, got '" + text + "'"); };
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) refuse();
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port = text.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5) refuse();
  request.master_port = std::stoi(port);
  if (request.master_port < 1 || request.master_port > 65535) refuse();
  request.master_addr = host;
}

}  // namespace

int launch_command(const Arguments& args) {
  distributed::LaunchRequest request;
  request.executable = boost::dll::program_location().string();  // this `pretext`, for each rank
  request.arguments = args.positional;
  request.nproc_per_node = static_cast<int>(args.integer("nproc-per-node", 1, 1, 1024));
  request.nnodes = static_cast<int>(args.integer("nnodes", 1, 1, 1 << 16));
  request.node_rank = static_cast<int>(args.integer("node-rank", 0, 0, (1 << 16) - 1));
  if (args.has("master")) read_master(args.value("master"), request);
  // A rank that is `pretext run` ends when the launch dies, even by SIGKILL.
  request.extra_environment.emplace_back(sweep::kExitWithParentVariable, std::to_string(::getpid()));

  const int first = request.node_rank * request.nproc_per_node;
  std::cerr << "launch: ranks " << first << ".." << first + request.nproc_per_node - 1 << " of "
            << request.nnodes * request.nproc_per_node << " on this node\n";
  const auto outcome = distributed::launch_processes(request, std::cout, std::cerr);
  if (outcome.first_failed_rank >= 0)
    std::cerr << "launch: rank " << outcome.first_failed_rank << " failed (exit " << outcome.exit_code
              << "); the others were stopped\n";
  return outcome.exit_code;
}

}  // namespace pretext::cli
