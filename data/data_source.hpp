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
};

struct LoadCallbacks {
  std::function<void(const std::string&)> report_skip;     // one line per skipped file
  std::function<void(std::size_t, std::size_t)> progress;  // (done, total) while decoding a folder
};

/// Loads `path` (with `labels`, IDX only; empty: derived) as `d.source` says.
/// No padding is applied. Throws InputError naming the file.
LoadedData load_data_source(const DataOptions& d, const std::string& path, const std::string& labels,
                            const LoadCallbacks& callbacks = {});

/// classes.toml: `classes = ["cat", "dog"]`, label i is the i-th name.
std::string classes_toml(const std::vector<std::string>& classes);

}  // namespace pretext::data
