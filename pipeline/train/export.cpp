#include "pipeline/train/export.hpp"

#include <numeric>

#include "common/atomic_file.hpp"
#include "common/errors.hpp"
#include "data/packed.hpp"
#include "data/data_source.hpp"
#include "pipeline/artefacts/npy.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/config/run_options.hpp"
#include "pipeline/train/trainer.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

std::string shape_text(const ImageShape& s) {
  return std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width);
}

/// In the order Python's state_dict() uses: each module's own parameters,
/// then its own buffers, modules in registration order, depth first.
void add_module_state(const torch::nn::Module& network, const std::string& prefix,
                      c10::Dict<std::string, at::Tensor>& dict) {
  for (const auto& module : network.named_modules(prefix, /*include_self=*/true)) {
    const std::string base = module.key() + ".";
    for (const auto& p : module.value()->named_parameters(/*recurse=*/false))
      dict.insert(base + p.key(), p.value().detach().to(torch::kCPU).contiguous());
    for (const auto& b : module.value()->named_buffers(/*recurse=*/false))
      dict.insert(base + b.key(), b.value().detach().to(torch::kCPU).contiguous());
  }
}

/// An IDX image file with its label file when one sits beside it (or is
/// named), else without labels.
data::ImageSet load_idx_for_embedding(const fs::path& images, const std::string& labels_path) {
  if (!labels_path.empty()) return data::load_idx(images, labels_path);
  const std::string name = images.filename().string();
  if (name.find("images-idx3") != std::string::npos) {
    const fs::path labels = data::idx_labels_path_for(images);
    if (fs::exists(labels)) return data::load_idx(images, labels);
  }
  return data::load_idx_images(images);
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

c10::Dict<std::string, at::Tensor> state_dict(const SavedNetworks& networks) {
  c10::Dict<std::string, at::Tensor> dict;
  add_module_state(*networks.backbone, "backbone", dict);
  if (networks.head) add_module_state(*networks.head, "head", dict);
  return dict;
}

void export_state_dict(const SavedRun& run, const std::string& mode, const fs::path& out) {
  const SavedNetworks networks = run.load(mode);
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(state_dict(networks)));
  write_file_atomically(out, std::string_view(bytes.data(), bytes.size()));
}

data::ImageSet load_embedding_data(const fs::path& config_or_file) {
  const std::string name = config_or_file.filename().string();
  if (config_or_file.extension() == ".toml") {
    auto document = config::Document::load(config_or_file);
    RunSections sections(document);
    const data::DataOptions d = read_run_options(sections).data;
    sections.data.finish();  // a typo in [data] is caught as in a run
    if (d.source == "svhn_mat") return data::load_svhn_mat(d.path);
    if (d.source == "folder" || d.source == "packed") return data::load_data_source(d, d.path, d.labels_path).images;
    return load_idx_for_embedding(d.path, d.labels_path);
  }
  if (config_or_file.extension() == ".mat") return data::load_svhn_mat(config_or_file);
  if (config_or_file.extension() == ".pack") return data::read_packed_files(config_or_file.string()).images;
  if (ends_with(name, ".gz") || name.find("ubyte") != std::string::npos)
    return load_idx_for_embedding(config_or_file, "");
  throw UsageError(
      "--data: expected a TOML config with a [data] section (.toml), an SVHN .mat file, a packed file (.pack) "
      "or an IDX file (named *.gz or *ubyte), got '" +
      config_or_file.string() + "'");
}

Pooling pooling_from(const std::string& name) {
  if (name == "none") return Pooling::none;
  if (name == "avg") return Pooling::avg;
  throw UsageError("--pool: expected none or avg, got '" + name + "'");
}

Embedding embed(const SavedRun& run, const SavedNetworks& networks, data::ImageSet images, Pooling pooling,
                const Compute& compute, std::int64_t batch_size) {
  const std::int64_t pad = run.options().data.pad_to;
  if (pad > 0) data::pad_to(images, static_cast<int>(pad));
  const ImageShape& expected = run.shape().input;
  if (images.shape != expected)
    throw InputError(images.origin + ": images are " + shape_text(images.shape) +
                     " (after the run's data.pad_to = " + std::to_string(pad) + "), but the run's networks take " +
                     shape_text(expected) + " (" + (run.directory() / "model.toml").string() + ")");

  Backbone& backbone = *networks.backbone;
  compute.place(backbone);
  backbone.eval();
  torch::NoGradGuard no_grad;
  const FeatureShape f = backbone.feature_shape();
  const std::int64_t dim = pooling == Pooling::avg ? f.channels : f.channels * f.height * f.width;
  const auto count = static_cast<std::int64_t>(images.size());

  Embedding out;
  out.features = torch::empty({count, dim}, torch::kFloat);
  out.labels.assign(images.labels.begin(), images.labels.end());
  std::vector<std::uint32_t> indices;
  for (std::int64_t start = 0; start < count; start += batch_size) {
    const std::int64_t end = std::min(start + batch_size, count);
    indices.resize(static_cast<std::size_t>(end - start));
    std::iota(indices.begin(), indices.end(), static_cast<std::uint32_t>(start));
    torch::Tensor features = backbone.forward(compute.place(decode_subset(images, indices).images));
    if (pooling == Pooling::avg) features = features.mean({2, 3});
    features = features.to(torch::kCPU, torch::kFloat).reshape({end - start, -1});
    if (features.size(1) != dim)
      throw std::runtime_error("model '" + run.options().model_plugin + "': the backbone gives " +
                               std::to_string(features.size(1)) + " features per image, but its feature_shape() says " +
                               std::to_string(dim));
    out.features.slice(0, start, end).copy_(features);
  }
  return out;
}

fs::path labels_file_for(const fs::path& features) {
  if (features.extension() != ".npy")
    throw UsageError("--out: expected a file name ending in .npy, got '" + features.string() + "'");
  fs::path labels = features;
  return labels.replace_extension(".labels.npy");
}

void write_embedding(const fs::path& features_file, const Embedding& embedding) {
  const fs::path labels_file = labels_file_for(features_file);
  const torch::Tensor features = embedding.features.to(torch::kCPU, torch::kFloat).contiguous();
  artefacts::write_npy(features_file, features.data_ptr<float>(), {features.size(0), features.size(1)});
  artefacts::write_npy(labels_file, embedding.labels.data(), {static_cast<std::int64_t>(embedding.labels.size())});
}

}  // namespace pretext
