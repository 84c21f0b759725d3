// A run put together from its config: the document (overrides applied), the
// host's options, a plugin host with the built-ins and the configured search
// path, and the model, pretext task, losses and stages the config names.
// Every command starts here: run and resume (through Job), sample, export,
// embed, config, and the sweep's validation of its variants. It reads no data.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/config/document.hpp"
#include "pipeline/config/run_options.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pretext/sdk.hpp"

namespace pretext {

/// Registers the host's built-in components (today: the stages of
/// stages/builtin_stages.hpp) into `host`. The one place that does.
void register_builtins(PluginHost& host);

class AssembledRun {
 public:
  /// What to make beyond the options. `model` is enough to rebuild a run's
  /// networks (export, embed); `everything` also makes the task, the losses
  /// and the stages, and rejects unknown keys anywhere in the config.
  enum class Components { model, everything };

  /// Reads `config`, applies `overrides` ("key=value"), validates the host's
  /// keys and makes the components. ConfigError / PluginError on any mistake.
  AssembledRun(const std::filesystem::path& config, const std::vector<std::string>& overrides,
               Components components = Components::everything);
  /// The run in `run_dir`, from its config.toml. InputError when `run_dir` is
  /// not a run directory.
  static std::unique_ptr<AssembledRun> from_run_directory(const std::filesystem::path& run_dir, Components components);
  ~AssembledRun();
  AssembledRun(const AssembledRun&) = delete;
  AssembledRun& operator=(const AssembledRun&) = delete;

  [[nodiscard]] const RunOptions& options() const { return options_; }
  [[nodiscard]] std::string resolved_config() const { return document_.resolved_text(); }
  [[nodiscard]] PluginHost& host() { return host_; }

  [[nodiscard]] const std::shared_ptr<Model>& model() const { return model_; }
  /// Null unless Components::everything.
  [[nodiscard]] const std::shared_ptr<PretextTask>& task() const { return task_; }
  /// "pretext plugin 'NAME' (FILE)": names the task in its faults.
  [[nodiscard]] const std::string& task_label() const { return task_label_; }
  [[nodiscard]] const std::shared_ptr<Loss>& pretext_loss() const { return pretext_loss_; }
  [[nodiscard]] const std::shared_ptr<Loss>& transfer_loss() const { return transfer_loss_; }
  [[nodiscard]] const std::vector<std::shared_ptr<const Stage>>& pretext_stages() const { return pretext_stages_; }
  [[nodiscard]] const std::vector<std::shared_ptr<const Stage>>& transfer_stages() const { return transfer_stages_; }
  /// The semi-supervised modes' strong view: transfer.stages, then transfer.semi.strong_stages.
  [[nodiscard]] const std::vector<std::shared_ptr<const Stage>>& strong_stages() const { return strong_stages_; }
  /// "FILE:LINE:COL" of a dotted key of the config, for errors found after validation.
  [[nodiscard]] std::string where(const std::string& key_path) const { return document_.where(key_path); }

  /// A loss plugin with its default options: what a task asks for by name
  /// through TrainingContext::make_named_loss.
  std::shared_ptr<Loss> loss_with_defaults(const std::string& name);

 private:
  void make_components(RunSections& sections, Components components);

  PluginHost host_;  // declared first: destroyed last, after every object its libraries made
  config::Document document_;
  RunOptions options_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<PretextTask> task_;
  std::string task_label_;
  std::shared_ptr<Loss> pretext_loss_;
  std::shared_ptr<Loss> transfer_loss_;
  std::vector<std::shared_ptr<const Stage>> pretext_stages_;
  std::vector<std::shared_ptr<const Stage>> transfer_stages_;
  std::vector<std::shared_ptr<const Stage>> strong_stages_;
};

}  // namespace pretext
