// Loading one file or folder named by a config's [data] section, whatever its
// source: IDX, SVHN .mat, an image folder or a packed file. Torch-free.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "data/image_set.hpp"
#include "data/data_options.hpp"

namespace pretext::data {

struct LoadedData {
  ImageSet images;
  std::vector<std::string> classes;  // label -> name where the source has names (folder, packed)
  std::size_t skipped = 0;           // folder, on_bad_image = "skip"
  std::size_t first = 0;             // the shard's first image in the whole source
  std::size_t total = 0;             // images in the whole source (a folder's: image files, skipped ones too)
};

struct LoadCallbacks {
  std::function<void(const std::string&)> report_skip;     // one line per skipped file
  std::function<void(std::size_t, std::size_t)> progress;  // (done, total) while decoding a folder
};

/// Loads `path` (with `labels`, IDX only; empty: derived) as `d.source` says;
/// for "packed", `path` may be a glob of files read as one (read_packed_files).
/// Only `shard`'s slice of the images is kept: a folder decodes only those
/// files (its class names still come from the whole folder), other sources
/// are sliced once loaded. No padding is applied. Throws InputError naming the
/// file, or the shard when it holds no image (shard_range).
LoadedData load_data_source(const DataOptions& d, const std::string& path, const std::string& labels,
                            const LoadCallbacks& callbacks = {}, const Shard& shard = {});

/// classes.toml: `classes = ["cat", "dog"]`, label i is the i-th name.
std::string classes_toml(const std::vector<std::string>& classes);

}  // namespace pretext::data
