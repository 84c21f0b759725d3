// The command line's parsing (cli/arguments.hpp): each subcommand takes its own
// flags, and every mistake is a UsageError (exit 2) saying what was wrong.
#include "cli/arguments.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "common/errors.hpp"

namespace pretext::cli {
namespace {

// parse_arguments on "pretext WORDS...", as main() would be given them.
Arguments parse(std::initializer_list<const char*> words) {
  std::vector<std::string> storage{"pretext"};
  storage.insert(storage.end(), words.begin(), words.end());
  std::vector<char*> argv;
  for (auto& word : storage) argv.push_back(word.data());
  argv.push_back(nullptr);
  return parse_arguments(static_cast<int>(storage.size()), argv.data());
}

// The UsageError's message, or a failure when there is none.
std::string usage_error(std::initializer_list<const char*> words) {
  try {
    parse(words);
  } catch (const UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no UsageError";
  return {};
}

TEST(CliArguments, RunTakesItsOwnFlags) {
  const Arguments args = parse({"run", "config.toml", "--set", "a=1", "--out", "runs/x", "--force"});
  EXPECT_EQ(args.command, "run");
  EXPECT_EQ(args.single("CONFIG file"), "config.toml");
  EXPECT_EQ(args.overrides, std::vector<std::string>{"a=1"});
  EXPECT_EQ(args.value("out"), "runs/x");
  EXPECT_TRUE(args.flag("force"));
  EXPECT_FALSE(args.help);
}

TEST(CliArguments, EachCommandTakesTheFlagsItReads) {
  EXPECT_EQ(parse({"sample", "RUN", "--count", "5", "--out", "g.png"}).integer("count", 64, 1, 4096), 5);
  EXPECT_EQ(parse({"export", "RUN", "--mode", "fixed", "--out", "m.pt"}).value("mode"), "fixed");
  const Arguments embed = parse({"embed", "RUN", "--data", "c.toml", "--out", "f.npy", "--mode", "m", "--pool", "avg"});
  EXPECT_EQ(embed.value("data"), "c.toml");
  EXPECT_EQ(embed.value("pool"), "avg");
  const Arguments sweep = parse({"sweep", "s.toml", "--base", "b.toml", "--out", "d", "--set", "k=v", "--jobs", "2"});
  EXPECT_EQ(sweep.value("base"), "b.toml");
  EXPECT_EQ(sweep.integer("jobs", 1, 1, 256), 2);
  EXPECT_EQ(parse({"preprocess", "c.toml", "--set", "k=v", "--out", "p.pack"}).required("out", "FILE.pack"), "p.pack");
  EXPECT_EQ(parse({"config", "c.toml", "--set", "k=v"}).overrides.size(), 1U);
  // resume takes --set so that resume_command can say why it refuses it.
  EXPECT_EQ(parse({"resume", "RUN", "--set", "k=v"}).overrides.size(), 1U);
  EXPECT_EQ(parse({"plugins"}).command, "plugins");
  EXPECT_EQ(parse({"report", "RUN"}).single("RUN_DIR"), "RUN");
}

TEST(CliArguments, FlagOfAnotherCommandNamesFlagAndCommand) {
  EXPECT_EQ(usage_error({"run", "config.toml", "--count", "5"}),
            "'pretext run' takes no option --count (try pretext run --help)");
  EXPECT_EQ(usage_error({"plugins", "--out=x"}),
            "'pretext plugins' takes no option --out (try pretext plugins --help)");
  EXPECT_EQ(usage_error({"config", "c.toml", "--force"}),
            "'pretext config' takes no option --force (try pretext config --help)");
  EXPECT_EQ(usage_error({"sample", "RUN", "--bogus"}),
            "'pretext sample' takes no option --bogus (try pretext sample --help)");
}

TEST(CliArguments, UnknownCommandAndOptionBeforeIt) {
  EXPECT_EQ(usage_error({"train", "config.toml"}), "unknown command 'train' (try pretext --help)");
  EXPECT_EQ(usage_error({"--bogus"}), "unknown option --bogus (try pretext --help)");
  // Options follow the command.
  EXPECT_EQ(usage_error({"--out", "x", "run", "c.toml"}), "unknown option --out (try pretext --help)");
}

TEST(CliArguments, SetIsRepeatableAndKeepsOrder) {
  const Arguments args = parse({"run", "--set", "b=2", "c.toml", "--set=a=1", "--set", "b=3"});
  EXPECT_EQ(args.overrides, (std::vector<std::string>{"b=2", "a=1", "b=3"}));
  // A value that looks like a list stays one value.
  EXPECT_EQ(parse({"config", "c.toml", "--set", "[x,y]"}).overrides, std::vector<std::string>{"[x,y]"});
}

TEST(CliArguments, ValueAfterEqualsOrSpaceAndLastOneWins) {
  const Arguments args = parse({"sample", "RUN", "--out=a.png", "--count=7", "--out", "b.png"});
  EXPECT_EQ(args.value("out"), "b.png");
  EXPECT_EQ(args.integer("count", 64, 1, 4096), 7);
  EXPECT_TRUE(args.has("count"));
  EXPECT_FALSE(args.has("data"));
  EXPECT_EQ(args.value("mode", "pretext"), "pretext");
}

TEST(CliArguments, PositionalBeforeOrAfterFlags) {
  EXPECT_EQ(parse({"run", "--set", "a=b", "c.toml"}).single("CONFIG file"), "c.toml");
  EXPECT_EQ(parse({"run", "c.toml", "--set", "a=b"}).single("CONFIG file"), "c.toml");
  // A positional named like a command is still a positional.
  EXPECT_EQ(parse({"report", "sweep"}).single("RUN_DIR"), "sweep");
  EXPECT_EQ(parse({"run", "--", "-odd.toml"}).single("CONFIG file"), "-odd.toml");
  EXPECT_THROW((void)parse({"report", "a", "b"}).single("RUN_DIR"), UsageError);
}

TEST(CliArguments, MissingValue) {
  EXPECT_EQ(usage_error({"run", "c.toml", "--out"}), "--out needs a value");
  EXPECT_EQ(usage_error({"sweep", "s.toml", "--set"}), "--set needs a value");
  // "--out=$DIR" with DIR unset: refused, not the next argument taken for the value.
  EXPECT_EQ(usage_error({"run", "c.toml", "--out=", "--force"}), "--out needs a value");
  EXPECT_EQ(usage_error({"sweep", "--set=", "s.toml"}), "--set needs a value");
  // A flag that the command requires is checked by the command, with what it is for.
  const Arguments args = parse({"export", "RUN"});
  try {
    (void)args.required("out", "FILE.pt");
    ADD_FAILURE() << "no UsageError";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "'pretext export' needs --out FILE.pt");
  }
}

TEST(CliArguments, SwitchTakesNoValue) {
  EXPECT_EQ(usage_error({"run", "c.toml", "--force=1"}), "--force takes no value");
  EXPECT_EQ(usage_error({"run", "c.toml", "--force=true"}), "--force takes no value");
  EXPECT_EQ(usage_error({"run", "c.toml", "--force="}), "--force takes no value");
  EXPECT_FALSE(parse({"run", "c.toml"}).flag("force"));
}

TEST(CliArguments, Help) {
  const Arguments top = parse({"--help"});
  EXPECT_TRUE(top.help);
  EXPECT_TRUE(top.command.empty());
  const Arguments sample = parse({"sample", "--help"});
  EXPECT_TRUE(sample.help);
  EXPECT_EQ(sample.command, "sample");
  EXPECT_TRUE(parse({"-h", "run"}).help);
  // Asking for a command's usage is no mistake, whatever else is there.
  EXPECT_TRUE(parse({"run", "--count", "5", "-h"}).help);
  EXPECT_EQ(usage_error({"train", "--help"}), "unknown command 'train' (try pretext --help)");
  const Arguments none = parse({});
  EXPECT_FALSE(none.help);
  EXPECT_TRUE(none.command.empty());
}

TEST(CliArguments, IntegerRange) {
  const Arguments args = parse({"sample", "RUN", "--count", "0"});
  try {
    (void)args.integer("count", 64, 1, 4096);
    ADD_FAILURE() << "no UsageError";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "--count expects an integer in 1..4096, got '0'");
  }
}

}  // namespace
}  // namespace pretext::cli
