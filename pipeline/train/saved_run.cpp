#include "pipeline/train/saved_run.hpp"

#include <sstream>

#include "common/atomic_file.hpp"
#include "common/errors.hpp"
#include "pipeline/train/checkpoint.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

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
    load_sub_archives(archive, {{"backbone", *networks.backbone}, {"head", *networks.head}});
  } catch (const c10::Error& e) {
    throw InputError(file.string() + ": does not hold the " + mode +
                     " networks of this run's model (config.toml, model.toml): " + e.what_without_backtrace());
  }
}

}  // namespace

void write_network_shape(const artefacts::RunDirectory& dir, const NetworkShape& shape) {
  const toml::table table{
      {"input",
       toml::table{{"channels", shape.input.channels}, {"height", shape.input.height}, {"width", shape.input.width}}},
      {"head", toml::table{{"classes", shape.classes}}},
  };
  std::ostringstream text;
  text << "# Written by pretext run: the networks' input (after data.pad_to) and their number of\n"
          "# classes, which come from the data. pretext export and embed rebuild the networks from it.\n"
       << table << '\n';
  write_file_atomically(dir.network_shape(), text.str());
}

NetworkShape read_network_shape(const fs::path& run_dir) {
  const fs::path file = artefacts::RunLayout(run_dir).network_shape();
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
  save_sub_archives(archive, {{"backbone", backbone}, {"head", head}});
  save_archive_atomically(archive, file);
}

SavedRun::SavedRun(fs::path dir)
    : dir_(std::move(dir)),
      run_(AssembledRun::from_run_directory(dir_, AssembledRun::Components::model)),
      shape_(read_network_shape(dir_)) {}

SavedRun::~SavedRun() = default;

fs::path SavedRun::file_for(const std::string& mode) const {
  const artefacts::RunLayout layout(dir_);
  if (mode == kPretextMode) return layout.pretext_backbone();
  if (is_transfer_mode(mode)) return layout.transfer_networks(mode);
  std::string expected = kPretextMode;
  for (const auto& known : transfer_modes()) expected += (&known == &transfer_modes().back() ? " or " : ", ") + known.name;
  throw UsageError("--mode: expected " + expected + ", got '" + mode + "'");
}

SavedNetworks SavedRun::load(const std::string& mode) const {
  const fs::path file = file_for(mode);
  if (!fs::is_regular_file(file)) {
    std::string ran;
    for (const auto& m : options().transfer.modes) ran += (ran.empty() ? "" : ", ") + m;
    throw InputError(file.string() + ": no such file" +
                     (mode == kPretextMode ? std::string(" (the pretext backbone of a finished run)")
                                        : "; this run's transfer.modes were [" + ran + "]"));
  }
  SavedNetworks networks;
  networks.backbone = run_->model()->make_backbone(ModelInput{shape_.input});
  if (mode != kPretextMode) networks.head = run_->model()->make_head(networks.backbone->feature_shape(), shape_.classes);
  load_networks(file, mode, networks);
  networks.backbone->eval();
  if (networks.head) networks.head->eval();
  return networks;
}

}  // namespace pretext
