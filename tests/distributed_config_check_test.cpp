// pipeline/distributed: every rank runs the same resolved config, or all
// refuse naming the key that differs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/errors.hpp"
#include "pipeline/distributed/config_check.hpp"
#include "pipeline/distributed/process_group.hpp"
#include "support/process_group_ranks.hpp"

namespace pretext::distributed {
namespace {

using testing::messages_of_ranks;
using testing::run_ranks;

// ------------------------------------------------------------ config check

const char* kConfig =
    "seed = 0\nthreads = 2\n\n[pretext]\nepochs = 3\nplugin = \"rotation\"\n\n"
    "[transfer]\nepochs = 50\nmodes = [\"fixed\", \"finetuned\"]\n";

TEST(ConfigCheck, SplitsLinesIntoKeys) {
  const auto lines = config_lines(kConfig);
  std::vector<std::string> keys;
  for (const auto& line : lines) keys.push_back(line.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"seed", "threads", "pretext", "pretext.epochs", "pretext.plugin",
                                            "transfer", "transfer.epochs", "transfer.modes"}));
}

TEST(ConfigCheck, IdenticalConfigsPassWithOneHash) {
  std::vector<std::string> hashes(2);
  run_ranks(2, [&](int rank, ProcessGroup& group) { hashes[rank] = check_same_config(group, kConfig); });
  EXPECT_EQ(hashes[0], hashes[1]);
  EXPECT_EQ(hashes[0].size(), 16U);
}

TEST(ConfigCheck, ADifferentValueIsAConfigErrorNamingTheKeyOnEveryRank) {
  std::string other = kConfig;
  other.replace(other.find("epochs = 50"), 11, "epochs = 5");
  std::vector<std::string> messages(2);
  run_ranks(2, [&](int rank, ProcessGroup& group) {
    try {
      (void)check_same_config(group, rank == 0 ? std::string(kConfig) : other);
    } catch (const ConfigError& e) {
      messages[rank] = e.what();
    }
  });
  for (const auto& message : messages)
    EXPECT_NE(message.find("rank 1 has 'transfer.epochs' = 5 where rank 0 has 50"), std::string::npos) << message;
}

TEST(ConfigCheck, IgnoredKeysMayDiffer) {
  std::string other = kConfig;
  other.replace(other.find("threads = 2"), 11, "threads = 8");
  run_ranks(2, [&](int rank, ProcessGroup& group) {
    (void)check_same_config(group, rank == 0 ? std::string(kConfig) : other, {"threads"});
  });
  const auto messages = messages_of_ranks(2, [&](int rank, ProcessGroup& group) {
    (void)check_same_config(group, rank == 0 ? std::string(kConfig) : other);
  });
  EXPECT_NE(messages[1].find("'threads' = 8 where rank 0 has 2"), std::string::npos) << messages[1];
}

}  // namespace
}  // namespace pretext::distributed
