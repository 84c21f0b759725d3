#include "cli/arguments.hpp"

#include <array>
#include <string_view>

#include "pipeline/errors.hpp"

namespace pretext::cli {
namespace {

// Every valued flag any subcommand understands. A subcommand that does not
// use one ignores it; an unknown flag is an error.
constexpr std::array<std::string_view, 8> kValuedFlags = {"out", "count", "data", "mode", "jobs", "set", "pool", "base"};

// Boolean flags: present or absent, no value.
constexpr std::array<std::string_view, 1> kBooleanFlags = {"force"};

bool is_boolean(std::string_view name) {
  for (auto flag : kBooleanFlags)
    if (flag == name) return true;
  return false;
}

bool is_valued(std::string_view name) {
  for (auto flag : kValuedFlags)
    if (flag == name) return true;
  return false;
}

}  // namespace

std::string Arguments::value(const std::string& flag, const std::string& fallback) const {
  const auto it = values.find(flag);
  return it == values.end() ? fallback : it->second;
}

std::string Arguments::required(const std::string& flag, const std::string& what) const {
  const auto it = values.find(flag);
  if (it == values.end() || it->second.empty())
    throw UsageError("'pretext " + command + "' needs --" + flag + " " + what);
  return it->second;
}

std::int64_t Arguments::integer(const std::string& flag, std::int64_t fallback, std::int64_t min,
                                std::int64_t max) const {
  if (!has(flag)) return fallback;
  const std::string text = value(flag);
  std::int64_t parsed = 0;
  std::size_t used = 0;
  try {
    parsed = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || parsed < min || parsed > max)
    throw UsageError("--" + flag + " expects an integer in " + std::to_string(min) + ".." + std::to_string(max) +
                     ", got '" + text + "'");
  return parsed;
}

std::filesystem::path Arguments::single(const std::string& what) const {
  if (positional.size() != 1) throw UsageError("'pretext " + command + "' takes exactly one " + what);
  return positional.front();
}

Arguments parse_arguments(int argc, char** argv) {
  Arguments args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      args.help = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      (args.command.empty() ? args.command : args.positional.emplace_back()) = a;
      continue;
    }
    std::string name = a.substr(2);
    std::string value;
    const auto equals = name.find('=');
    if (equals != std::string::npos) {
      value = name.substr(equals + 1);
      name.resize(equals);
    }
    if (is_boolean(name)) {
      if (equals != std::string::npos) throw UsageError("--" + name + " takes no value");
      args.switches.insert(name);
      continue;
    }
    if (!is_valued(name)) throw UsageError("unknown option " + a + " (try pretext --help)");
    if (equals == std::string::npos) {
      if (i + 1 >= argc) throw UsageError("--" + name + " needs a value");
      value = argv[++i];
    }
    if (name == "set") {
      args.overrides.push_back(value);
    } else {
      args.values[name] = value;
    }
  }
  return args;
}

}  // namespace pretext::cli
