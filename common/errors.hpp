// The error types every layer throws, and the exit code each one means. The
// one place that says how a failure ends the process:
//
//   UsageError, ConfigError, InputError, PluginError -> exit 2 (the user can fix it)
//   RunInterrupted                                   -> exit 128 + signal (130, 143)
//   anything else                                    -> exit 1 (PluginFault, TrainingDiverged,
//                                                       a write that failed for want of space)
// Torch-free: data/, sdk/ and stages/ throw these too.
#pragma once

#include <exception>
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

/// A plugin that cannot be loaded or made: a missing file or symbol, an ABI
/// mismatch, a duplicate name, a plugin refusing its options. Exit 2 like a
/// config error.
class PluginError : public std::runtime_error {
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

/// A NaN or infinite loss or gradient: the message names the epoch, the step
/// and the loss (and the parameter). Exit 1.
class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A collective of a data-parallel run failed: another rank exited, crashed
/// or stopped answering within distributed.timeout. Raised inside the host's
/// optimisers and TrainingContext calls, so plugin guards let it pass: the
/// plugin that was running is not at fault.
class RankLost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The run stopped on request after writing a checkpoint. `signal` is the
/// signal that asked (2: SIGINT, 15: SIGTERM); the exit code is 128 + signal.
class RunInterrupted : public std::runtime_error {
 public:
  RunInterrupted(const std::string& message, int signal) : std::runtime_error(message), signal_(signal) {}
  [[nodiscard]] int signal() const { return signal_; }

 private:
  int signal_;
};

/// Call only inside a catch block: rethrows the exception being handled with
/// `context` (e.g. " (pretext epoch 3, dataset index 1207)") appended to its
/// message, keeping its type and so its exit code. Interruptions and
/// exceptions that are not std::exception pass unchanged.
[[noreturn]] inline void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const RunInterrupted&) {
    throw;
  } catch (const UsageError& e) {
    throw UsageError(e.what() + context);
  } catch (const ConfigError& e) {
    throw ConfigError(e.what() + context);
  } catch (const InputError& e) {
    throw InputError(e.what() + context);
  } catch (const PluginError& e) {
    throw PluginError(e.what() + context);
  } catch (const PluginFault& e) {
    throw PluginFault(e.what() + context);
  } catch (const TrainingDiverged& e) {
    throw TrainingDiverged(e.what() + context);
  } catch (const RankLost& e) {
    throw RankLost(e.what() + context);
  } catch (const std::exception& e) {
    throw std::runtime_error(e.what() + context);
  }
}

/// How a failure is reported: the process exit code, and the words put
/// before its message ("config error", "plugin fault", ...; empty for usage
/// errors and interruptions, whose messages stand alone).
struct ErrorReport {
  int exit_code = 1;
  const char* kind = "error";
};

/// The report for `error`, by its type as listed at the top of this file.
inline ErrorReport report_of(const std::exception& error) {
  if (dynamic_cast<const UsageError*>(&error) != nullptr) return {2, ""};
  if (dynamic_cast<const ConfigError*>(&error) != nullptr) return {2, "config error"};
  if (dynamic_cast<const InputError*>(&error) != nullptr) return {2, "input error"};
  if (dynamic_cast<const PluginError*>(&error) != nullptr) return {2, "plugin error"};
  if (dynamic_cast<const PluginFault*>(&error) != nullptr) return {1, "plugin fault"};
  if (dynamic_cast<const RankLost*>(&error) != nullptr) return {1, "lost a rank"};
  if (const auto* interrupted = dynamic_cast<const RunInterrupted*>(&error)) return {128 + interrupted->signal(), ""};
  return {1, "error"};
}

}  // namespace pretext
