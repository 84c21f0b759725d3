#include "pipeline/train/assembled_run.hpp"

#include "common/errors.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/plugin_host/plugin_guards.hpp"
#include "stages/builtin_stages.hpp"

namespace pretext {

void register_builtins(PluginHost& host) {
  for (auto& [name, maker] : stages::builtin_stages()) host.builtins().add_stage(name, maker);
}

AssembledRun::AssembledRun(const std::filesystem::path& config, const std::vector<std::string>& overrides,
                           Components components)
    : document_(config::Document::load(config)) {
  for (const auto& assignment : overrides) document_.apply_override(assignment);
  RunSections sections(document_);
  options_ = read_run_options(sections);
  make_components(sections, components);
  // Unknown keys are looked for only once every plugin has read its own.
  if (components == Components::everything) sections.finish();
}

std::unique_ptr<AssembledRun> AssembledRun::from_run_directory(const std::filesystem::path& run_dir,
                                                               Components components) {
  if (!std::filesystem::is_directory(run_dir)) throw InputError(run_dir.string() + ": no such run directory");
  const artefacts::RunLayout layout(run_dir);
  if (!std::filesystem::is_regular_file(layout.config()))
    throw InputError(run_dir.string() + ": not a run directory (expected the config.toml that 'pretext run' writes)");
  return std::make_unique<AssembledRun>(layout.config(), std::vector<std::string>{}, components);
}

AssembledRun::~AssembledRun() = default;

void AssembledRun::make_components(RunSections& sections, Components components) {
  host_.set_search_path({options_.plugin_path.begin(), options_.plugin_path.end()});
  register_builtins(host_);
  model_ = host_.make_model(host_.resolve(ComponentKind::model, options_.model_plugin), sections.model);
  if (components == Components::model) return;

  const std::string task_name = host_.resolve(ComponentKind::pretext, options_.pretext.plugin);
  task_ = host_.make_pretext(task_name, sections.pretext);
  task_label_ = plugin_label(ComponentKind::pretext, task_name, host_.origin(ComponentKind::pretext, task_name));
  pretext_loss_ =
      host_.make_loss(host_.resolve(ComponentKind::loss, options_.pretext_loss_plugin), sections.pretext_loss);
  transfer_loss_ =
      host_.make_loss(host_.resolve(ComponentKind::loss, options_.transfer_loss_plugin), sections.transfer_loss);

  auto make_stages = [&](std::vector<config::Section>& specs, std::vector<std::shared_ptr<const Stage>>& out) {
    for (auto& spec : specs) {
      const std::string name = spec.string("name", "", "stage name, e.g. color_jitter");
      if (name.empty()) spec.fail("name", "the name of a stage");
      out.push_back(host_.make_stage(host_.resolve(ComponentKind::stage, name), spec));
    }
  };
  make_stages(sections.pretext_stages, pretext_stages_);
  make_stages(sections.transfer_stages, transfer_stages_);
  strong_stages_ = transfer_stages_;
  make_stages(sections.semi_strong_stages, strong_stages_);
}

std::shared_ptr<Loss> AssembledRun::loss_with_defaults(const std::string& name) {
  auto defaults = config::Document::parse("", "(defaults of loss '" + name + "')");
  config::Section options(defaults, "");
  return host_.make_loss(host_.resolve(ComponentKind::loss, name), options);
}

}  // namespace pretext
