// pretext check-plugin NAME_OR_FILE [--set KEY=VALUE ...]
#include <iostream>

#include "cli/commands.hpp"
#include "pipeline/check/plugin_check.hpp"

namespace pretext::cli {

int check_plugin_command(const Arguments& args) {
  const PluginCheckResult result = check_plugin({args.single("NAME_OR_FILE").string(), args.overrides}, std::cout);
  return result.failed == 0 ? 0 : 1;
}

}  // namespace pretext::cli
