// Error types that decide the process exit code.
//
//   UsageError, ConfigError, InputError -> exit 2 (the user can fix it)
//   anything else                       -> exit 1 (PluginFault included)
#pragma once

#include <stdexcept>
#include <string>

namespace pretext {

/// Wrong command-line usage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A config mistake. The message already names file:line:column and the key.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bad input data: a missing, truncated or malformed file, or an impossible split.
/// The message names the file and what was expected.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A plugin threw while running (a stage, a view maker, a training step, a
/// network's forward, a loss). The message names the plugin, its file and the
/// SDK function: "stage plugin 'NAME' (FILE): Stage::apply: WHAT". Exit 1:
/// a fault in the plugin's code, not something the user can fix in the config
/// (a plugin refusing its options while being made is a PluginError, exit 2).
class PluginFault : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace pretext
