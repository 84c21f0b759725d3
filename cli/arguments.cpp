// Parsing with CLI11: every subcommand declares the flags it takes, so a flag
// meant for another one is a usage error instead of being silently ignored.
// CLI11 only tokenises; the errors are worded here, in pretext's terms, and
// --help sets Arguments::help so that main.cpp prints its own usage text.
#include "cli/arguments.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.hpp"

namespace pretext::cli {
namespace {

struct CommandFlags {
  const char* command;
  std::vector<const char*> valued;    // --NAME VALUE or --NAME=VALUE
  std::vector<const char*> switches;  // --NAME alone
};

// The flags each subcommand reads (see its *_command.cpp and main.cpp's usage
// text). resume takes --set only to refuse it with a message saying why.
const std::vector<CommandFlags>& command_flags() {
  static const std::vector<CommandFlags> table = {
      {"run", {"set", "out"}, {"force"}},
      {"resume", {"set"}, {}},
      {"config", {"set"}, {}},
      {"sample", {"count", "out"}, {}},
      {"export", {"mode", "out"}, {}},
      {"embed", {"data", "out", "mode", "pool"}, {}},
      {"plugins", {}, {}},
      {"check-plugin", {"set"}, {}},
      {"report", {}, {}},
      {"sweep", {"base", "out", "set", "jobs"}, {}},
      {"preprocess", {"set", "out", "shard"}, {}},
      {"launch", {"nproc-per-node", "nnodes", "node-rank", "master"}, {}},  // the command to run follows --
  };
  return table;
}

// One subcommand's CLI11 options, read back raw after parsing.
struct Subcommand {
  CLI::App* app = nullptr;
  CLI::Option* help = nullptr;
  CLI::Option* positional = nullptr;
  std::vector<std::pair<std::string, CLI::Option*>> valued;
  std::vector<std::pair<std::string, CLI::Option*>> switches;
};

// The largest count CLI11 accepts for "any number of values".
constexpr int kUnlimited = CLI::detail::expected_max_vector_size;

Subcommand add_subcommand(CLI::App& app, const CommandFlags& flags) {
  Subcommand sub;
  sub.app = app.add_subcommand(flags.command);
  sub.help = sub.app->add_flag("-h,--help");
  // Every positional argument, in order. A minimum of "unlimited" keeps it
  // taking more without allow_extra_args, which would split "[a,b]" into two.
  sub.positional = sub.app->add_option("arguments")
                       ->expected(kUnlimited, kUnlimited)
                       ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  for (const char* name : flags.valued) {
    // Exactly one value each time; all of them are kept (--set is repeatable,
    // the others keep the last).
    CLI::Option* option =
        sub.app->add_option(std::string("--") + name)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    sub.valued.emplace_back(name, option);
  }
  for (const char* name : flags.switches) {
    // An option of zero values rather than add_flag: given alone it records an
    // empty result, where a CLI11 flag would record "true" for both --force and
    // --force=true. So any non-empty result is a value the user wrote.
    CLI::Option* option = sub.app->add_option(std::string("--") + name)
                              ->expected(0, 0)
                              ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    sub.switches.emplace_back(name, option);
  }
  return sub;
}

// CLI11 reads "--out=" as "--out" and takes the next argument for its value:
// `--out=$DIR --force` with DIR unset would write into a directory named
// "--force". So an empty value after '=' is marked with a NUL, which no
// argument can contain, and refused after parsing.
constexpr char kEmptyValue = '\0';

// The arguments as CLI11's App::parse wants them: without the program name, in
// reverse order, empty "--FLAG=" values marked.
std::vector<std::string> cli11_arguments(int argc, char** argv) {
  std::vector<std::string> arguments(argv + 1, argv + argc);
  for (auto& argument : arguments) {
    if (argument == "--") break;  // the rest are positional
    if (argument.size() > 3 && argument.compare(0, 2, "--") == 0 && argument.find('=') == argument.size() - 1)
      argument += kEmptyValue;
  }
  std::reverse(arguments.begin(), arguments.end());
  return arguments;
}

// A flag's value as the user wrote it; a UsageError for an empty "--FLAG=".
std::string written_value(const std::string& flag, std::string value) {
  if (value.size() == 1 && value.front() == kEmptyValue) throw UsageError("--" + flag + " needs a value");
  // "--set --x=": the marked argument is another flag's value.
  if (!value.empty() && value.back() == kEmptyValue) value.pop_back();
  return value;
}

bool looks_like_option(const std::string& argument) { return argument.size() > 1 && argument.front() == '-'; }

// "--count=5" -> "--count": the flag as the user would look for it in --help.
std::string flag_name(const std::string& argument) { return argument.substr(0, argument.find('=')); }

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
  CLI::App app{"", "pretext"};
  app.set_help_flag();  // CLI11's own would print its help and stop; main.cpp prints the usage text instead
  CLI::Option* help = app.add_flag("-h,--help");
  // Unknown flags and commands are collected, then reported below with the
  // subcommand's name; CLI11 would only say "arguments were not expected".
  app.allow_extras();
  // At most one command, so that a later argument named like one ("pretext run
  // sweep") is a positional argument, not a second command.
  app.require_subcommand(0, 1);
  std::vector<Subcommand> subcommands;
  for (const auto& flags : command_flags()) subcommands.push_back(add_subcommand(app, flags));

  try {
    std::vector<std::string> arguments = cli11_arguments(argc, argv);
    app.parse(arguments);
  } catch (const CLI::ArgumentMismatch& e) {
    // A flag short of its value: CLI11 takes whatever follows a valued flag as
    // its value, so this happens only when the flag is the last argument.
    const std::string last = argc > 1 ? argv[argc - 1] : "";
    if (!looks_like_option(last)) throw UsageError(e.what());
    throw UsageError(flag_name(last) + " needs a value");
  } catch (const CLI::ParseError& e) {
    throw UsageError(e.what());
  }

  Arguments args;
  args.help = help->count() != 0;
  // Arguments before the command, or instead of one.
  const std::vector<std::string> extras = app.remaining();
  if (!extras.empty()) {
    if (!looks_like_option(extras.front()))
      throw UsageError("unknown command '" + extras.front() + "' (try pretext --help)");
    // With --help the usage is printed whatever else is there, as with CLI11's own help.
    if (!args.help) throw UsageError("unknown option " + flag_name(extras.front()) + " (try pretext --help)");
  }

  if (app.get_subcommands().empty()) return args;  // no command: main.cpp prints the usage
  const Subcommand* chosen = nullptr;
  for (const auto& sub : subcommands)
    if (sub.app == app.get_subcommands().front()) chosen = &sub;

  args.command = chosen->app->get_name();
  args.help = args.help || chosen->help->count() != 0;
  if (!args.help) {
    // Only unknown options are left over: the positional option takes every other argument.
    for (const std::string& extra : chosen->app->remaining()) {
      if (extra == "--") continue;  // CLI11 keeps the end-of-options mark; what follows it is positional
      throw UsageError("'pretext " + args.command + "' takes no option " + flag_name(extra) + " (try pretext " +
                       args.command + " --help)");
    }
  }

  args.positional = chosen->positional->results();
  for (const auto& [name, option] : chosen->valued) {
    if (name == "set") {
      for (const std::string& result : option->results()) args.overrides.push_back(written_value(name, result));
    } else {
      for (const std::string& result : option->results())
        args.values[name] = written_value(name, result);  // the last wins
    }
  }
  for (const auto& [name, option] : chosen->switches) {
    if (option->count() == 0) continue;
    for (const std::string& result : option->results())
      if (!result.empty()) throw UsageError("--" + name + " takes no value");
    args.switches.insert(name);
  }
  return args;
}

}  // namespace pretext::cli
