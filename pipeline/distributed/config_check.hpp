// Every rank of a job must train the same experiment: a rank started with
// another config (an edited file, a different --set) would silently average
// gradients of different models or data. Checked once, at the start.
#pragma once

#include <string>
#include <vector>

#include "pipeline/distributed/process_group.hpp"

namespace pretext::distributed {

/// Compares `canonical_config_text` (the resolved config as TOML, e.g.
/// AssembledRun::resolved_config()) across the ranks of `group`. Each rank
/// publishes a hash of it through the store; when the hashes agree, returns
/// the hash (16 hex digits). When they differ, every rank publishes its full
/// text and all throw the same ConfigError (exit 2) naming the first rank
/// that differs from rank 0 and the first differing key with both values.
/// Lines whose key (as "table.key") is in `ignored_keys` are left out, for
/// keys that may differ between machines: pass {"threads", "pipeline.threads"}.
std::string check_same_config(ProcessGroup& group, const std::string& canonical_config_text,
                              const std::vector<std::string>& ignored_keys = {});

/// The lines of a TOML text that check_same_config compares: each with its
/// full key ("table.key"; the header itself for a "[table]" line), blank lines
/// and comments dropped. Exposed for tests.
struct ConfigLine {
  std::string key;
  std::string text;
};
std::vector<ConfigLine> config_lines(const std::string& toml_text);

}  // namespace pretext::distributed
