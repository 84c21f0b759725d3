// Command-line arguments of a `pretext` subcommand, parsed with CLI11.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace pretext::cli {

struct Arguments {
  std::string command;
  std::vector<std::string> positional;
  std::vector<std::string> overrides;         // --set KEY=VALUE, repeatable
  std::map<std::string, std::string> values;  // --out DIR, --count N, ... (last one wins)
  std::set<std::string> switches;             // boolean flags present: --force
  bool help = false;

  [[nodiscard]] bool has(const std::string& flag) const { return values.count(flag) != 0; }
  /// Whether the boolean flag was given.
  [[nodiscard]] bool flag(const std::string& name) const { return switches.count(name) != 0; }
  /// The flag's value, or `fallback` when absent.
  [[nodiscard]] std::string value(const std::string& flag, const std::string& fallback = {}) const;
  /// The flag's value, or a UsageError naming the command and `what` it is for.
  [[nodiscard]] std::string required(const std::string& flag, const std::string& what) const;
  /// An integer flag within [min, max], or `fallback` when absent.
  [[nodiscard]] std::int64_t integer(const std::string& flag, std::int64_t fallback, std::int64_t min,
                                     std::int64_t max) const;
  /// The only positional argument, or a UsageError naming `what` it should be.
  [[nodiscard]] std::filesystem::path single(const std::string& what) const;
};

/// argv as `pretext COMMAND [ARGUMENT | --FLAG VALUE | --FLAG=VALUE | --SWITCH]...`.
/// Each command takes only its own flags (the table in arguments.cpp); options
/// go after the command. An unknown command, a flag the command does not take,
/// a missing value or a value given to a switch is a UsageError. Leaves
/// `command` empty when there is none; -h/--help only sets `help`.
Arguments parse_arguments(int argc, char** argv);

}  // namespace pretext::cli
