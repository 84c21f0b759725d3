// pretext launch (cli/launch_command.cpp) through the real executable: each
// rank's lines prefixed, the first failure's exit code, the usage errors, and
// the flags after -- passed on untouched. Stopping the other ranks after a
// failure is tested on the launcher itself (distributed_test.cpp), where a
// shell script can fail on one rank only.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "cli/arguments.hpp"

#ifndef PRETEXT_BINARY
#error "PRETEXT_BINARY must name the pretext executable (tests/CMakeLists.txt)"
#endif

namespace pretext::cli {
namespace {

namespace fs = std::filesystem;

struct Ran {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string read_file(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `pretext ARGUMENTS` with stdout and stderr kept apart.
Ran run_pretext(const std::string& arguments) {
  const fs::path dir = fs::temp_directory_path() / ("pretext-launch-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string command = std::string("'") + PRETEXT_BINARY + "' " + arguments + " > '" +
                              (dir / "out").string() + "' 2> '" + (dir / "err").string() + "'";
  const int status = std::system(command.c_str());
  Ran ran;
  ran.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  ran.out = read_file(dir / "out");
  ran.err = read_file(dir / "err");
  fs::remove_all(dir);
  return ran;
}

TEST(LaunchCommand, PrefixesEachRanksLines) {
  const Ran ran = run_pretext("launch --nproc-per-node 2 -- --help");
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_NE(ran.out.find("[rank 0] pretext: self-supervised"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("[rank 1] pretext: self-supervised"), std::string::npos) << ran.out;
  // Every line of the output belongs to a rank.
  std::istringstream lines(ran.out);
  for (std::string line; std::getline(lines, line);) EXPECT_EQ(line.rfind("[rank ", 0), 0U) << line;
}

TEST(LaunchCommand, ExitsWithTheFirstFailuresCode) {
  // A missing config is a usage-level error (exit 2) in each rank; the --set
  // after -- belongs to the ranks' command, not to launch.
  const Ran ran = run_pretext("launch --nproc-per-node 2 -- config /nonexistent/launch.toml --set seed=1");
  EXPECT_EQ(ran.exit_code, 2) << ran.err;
  // Either rank may fail first; the launcher then stops the other, so only
  // one rank's message is certain.
  const auto message = ran.err.find("] pretext: ");
  ASSERT_NE(message, std::string::npos) << ran.err;
  EXPECT_EQ(ran.err.rfind("\n[rank ", message), ran.err.rfind('\n', message)) << ran.err;
  EXPECT_NE(ran.err.find("/nonexistent/launch.toml"), std::string::npos) << ran.err;
  EXPECT_NE(ran.err.find("launch: rank "), std::string::npos) << ran.err;
  EXPECT_EQ(ran.err.find("takes no option"), std::string::npos) << ran.err;
}

TEST(LaunchCommand, RefusesAJobItCannotDescribe) {
  const Ran several_nodes = run_pretext("launch --nproc-per-node 2 --nnodes 2 -- --help");
  EXPECT_EQ(several_nodes.exit_code, 2);
  EXPECT_NE(several_nodes.err.find("needs --master HOST:PORT"), std::string::npos) << several_nodes.err;
  const Ran bad_master = run_pretext("launch --master localhost -- --help");
  EXPECT_EQ(bad_master.exit_code, 2);
  EXPECT_NE(bad_master.err.find("--master expects HOST:PORT"), std::string::npos) << bad_master.err;
  const Ran nothing = run_pretext("launch --nproc-per-node 2");
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_NE(nothing.err.find("nothing to run"), std::string::npos) << nothing.err;
}

TEST(LaunchCommand, TakesItsFlagsAndLeavesTheRestToTheRanks) {
  std::vector<std::string> words{"pretext", "launch", "--nproc-per-node", "3", "--master", "h:1",
                                 "--",      "run",    "c.toml",           "--set", "a=1", "--force"};
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  const Arguments args = parse_arguments(static_cast<int>(words.size()), argv.data());
  EXPECT_EQ(args.command, "launch");
  EXPECT_EQ(args.integer("nproc-per-node", 1, 1, 1024), 3);
  EXPECT_EQ(args.value("master"), "h:1");
  EXPECT_EQ(args.positional, (std::vector<std::string>{"run", "c.toml", "--set", "a=1", "--force"}));
  EXPECT_TRUE(args.overrides.empty());
}

}  // namespace
}  // namespace pretext::cli
