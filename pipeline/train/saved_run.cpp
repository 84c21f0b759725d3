#include "pipeline/train/saved_run.hpp"

#include <sstream>

#include "pipeline/errors.hpp"
#include "pipeline/train/checkpoint.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

constexpr const char* kShapeFile = "model.toml";

config::Document open_run_config(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw InputError(dir.string() + ": no such run directory");
  const fs::path config = dir / "config.toml";
  if (!fs::is_regular_file(config))
    throw InputError(dir.string() + ": not a run directory (expected the config.toml that 'pretext run' writes)");
  return config::Document::load(config);
}

std::int64_t positive(const toml::table& table, const fs::path& file, const char* key) {
  const auto value = table.at_path(key).value<std::int64_t>();
  if (!value || *value <= 0)
    throw InputError(file.string() + ": expected a positive integer '" + key + "' (written by 'pretext run')");
  return *value;
}

/// Loads `file` into the networks. The archive is read on the CPU whatever
/// device trained it; a name or shape that does not fit is an InputError.
void load_networks(const fs::path& file, const std::string& mode, SavedNetworks& networks) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(file.string(), torch::kCPU);
    if (networks.head == nullptr) {
      networks.backbone->load(archive);
      return;
    }
    torch::serialize::InputArchive backbone;
    torch::serialize::InputArchive head;
    archive.read("backbone", backbone);
    archive.read("head", head);
    networks.backbone->load(backbone);
    networks.head->load(head);
  } catch (const c10::Error& e) {
    throw InputError(file.string() + ": does not hold the " + mode +
                     " networks of this run's model (config.toml, model.toml): " + e.what_without_backtrace());
  }
}

}  // namespace

void write_network_shape(const RunDirectory& dir, const NetworkShape& shape) {
  const toml::table table{
      {"input",
       toml::table{{"channels", shape.input.channels}, {"height", shape.input.height}, {"width", shape.input.width}}},
      {"head", toml::table{{"classes", shape.classes}}},
  };
  std::ostringstream text;
  text << "# Written by pretext run: the networks' input (after data.pad_to) and their number of\n"
          "# classes, which come from the data. pretext export and embed rebuild the networks from it.\n"
       << table << '\n';
  write_file_atomically(dir.file(kShapeFile), text.str());
}

NetworkShape read_network_shape(const fs::path& run_dir) {
  const fs::path file = run_dir / kShapeFile;
  if (!fs::is_regular_file(file))
    throw InputError(file.string() + ": no such file; 'pretext run' writes it to record the networks' input shape " +
                     "and classes (a run directory from an older pretext lacks it: run again)");
  toml::table table;
  try {
    table = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw InputError(file.string() + ": not valid TOML: " + std::string(e.description()));
  }
  NetworkShape shape;
  shape.input.channels = static_cast<int>(positive(table, file, "input.channels"));
  shape.input.height = static_cast<int>(positive(table, file, "input.height"));
  shape.input.width = static_cast<int>(positive(table, file, "input.width"));
  shape.classes = positive(table, file, "head.classes");
  return shape;
}

void save_transfer_networks(const fs::path& file, const Backbone& backbone, const Head& head) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive backbone_archive;
  torch::serialize::OutputArchive head_archive;
  backbone.save(backbone_archive);
  head.save(head_archive);
  archive.write("backbone", backbone_archive);
  archive.write("head", head_archive);
  save_archive_atomically(archive, file);
}

const std::vector<std::string>& SavedRun::modes() {
  static const std::vector<std::string> kModes = {"pretext", "fixed", "finetuned", "scratch"};
  return kModes;
}

SavedRun::SavedRun(fs::path dir) : dir_(std::move(dir)), document_(open_run_config(dir_)) {
  RunSections sections(document_);
  options_ = read_run_options(sections);
  shape_ = read_network_shape(dir_);
  host_.set_search_path({options_.plugin_path.begin(), options_.plugin_path.end()});
  model_ = host_.make_model(host_.resolve(ComponentKind::model, options_.model_plugin), sections.model);
}

SavedRun::~SavedRun() = default;

fs::path SavedRun::file_for(const std::string& mode) const {
  if (mode == "pretext") return dir_ / "backbone.pt";
  for (const auto& known : modes())
    if (mode == known) return dir_ / ("transfer-" + mode + ".pt");
  throw UsageError("--mode: expected pretext, fixed, finetuned or scratch, got '" + mode + "'");
}

SavedNetworks SavedRun::load(const std::string& mode) const {
  const fs::path file = file_for(mode);
  if (!fs::is_regular_file(file)) {
    std::string ran;
    for (const auto& m : options_.transfer.modes) ran += (ran.empty() ? "" : ", ") + m;
    throw InputError(file.string() + ": no such file" +
                     (mode == "pretext" ? std::string(" (the pretext backbone of a finished run)")
                                        : "; this run's transfer.modes were [" + ran + "]"));
  }
  SavedNetworks networks;
  networks.backbone = model_->make_backbone(ModelInput{shape_.input});
  if (mode != "pretext") networks.head = model_->make_head(networks.backbone->feature_shape(), shape_.classes);
  load_networks(file, mode, networks);
  networks.backbone->eval();
  if (networks.head) networks.head->eval();
  return networks;
}

}  // namespace pretext
