// Results that leave C++: a run's networks as a PyTorch state dict
// (`pretext export`), and the frozen features of a dataset as NumPy arrays
// (`pretext embed`). See docs/export.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image_set.hpp"
#include "pipeline/train/compute.hpp"
#include "pipeline/train/saved_run.hpp"

namespace pretext {

/// Every parameter and buffer of the networks, named as the modules name them
/// and prefixed "backbone." or "head.", as contiguous CPU tensors (what
/// torch.nn.Module.state_dict() gives in Python).
c10::Dict<std::string, at::Tensor> state_dict(const SavedNetworks& networks);

/// Writes state_dict(run.load(mode)) with torch::pickle_save (PyTorch's zip
/// format, which torch.load reads), atomically.
void export_state_dict(const SavedRun& run, const std::string& mode, const std::filesystem::path& out);

/// What --data names: a TOML config whose [data] section gives source, path
/// and labels_path as in a run, or a dataset file (.mat: svhn_mat; an IDX file
/// ending in .gz or ubyte: idx). Images whose label file is absent (IDX only)
/// get label -1. UsageError for anything else; loader errors are InputErrors.
data::ImageSet load_embedding_data(const std::filesystem::path& config_or_file);

enum class Pooling { none, avg };
/// "none" or "avg"; UsageError naming --pool otherwise.
Pooling pooling_from(const std::string& name);

struct Embedding {
  torch::Tensor features;            // (N, D) float32 on the CPU
  std::vector<std::int64_t> labels;  // N, -1 where unknown
};

inline constexpr std::int64_t kEmbedBatchSize = 512;

/// The backbone's features of every image of `images`, in eval mode, without
/// gradients, in float32, on `compute`'s device, in batches. The images are
/// padded to the run's data.pad_to first; InputError when their shape then
/// differs from the networks' input (model.toml). D = C*H*W, or C with avg.
Embedding embed(const SavedRun& run, const SavedNetworks& networks, data::ImageSet images, Pooling pooling,
                const Compute& compute, std::int64_t batch_size = kEmbedBatchSize);

/// FILE.npy -> FILE.labels.npy. UsageError unless `features` ends in ".npy".
std::filesystem::path labels_file_for(const std::filesystem::path& features);

/// Writes the features (N x D '<f4') and the labels (N '<i8') beside them.
void write_embedding(const std::filesystem::path& features_file, const Embedding& embedding);

}  // namespace pretext
