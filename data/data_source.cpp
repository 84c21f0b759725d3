#include "data/data_source.hpp"

#include <sstream>

#include <toml++/toml.h>

#include "data/image_folder.hpp"
#include "data/packed.hpp"

namespace pretext::data {

LoadedData load_data_source(const DataOptions& d, const std::string& path, const std::string& labels,
                            const LoadCallbacks& callbacks, const Shard& shard) {
  LoadedData loaded;
  if (d.source == "folder") {
    FolderOptions options;
    options.target = DecodeTarget{static_cast<int>(d.channels), static_cast<int>(d.image_size)};
    options.labelled_layout = d.labelled_layout;
    options.on_bad_image = d.on_bad_image == "skip" ? BadImagePolicy::skip : BadImagePolicy::fail;
    options.report_skip = callbacks.report_skip;
    options.progress = callbacks.progress;
    options.shard = shard;  // decoding is the expensive part: only the shard's files are decoded
    auto folder = load_image_folder(path, options);
    loaded.images = std::move(folder.images);
    loaded.classes = std::move(folder.classes);
    loaded.skipped = folder.skipped;
    loaded.first = folder.first;
    loaded.total = folder.listed;
    return loaded;
  }
  if (d.source == "svhn_mat") {
    loaded.images = load_svhn_mat(path);
  } else if (d.source == "packed") {
    auto packed =
        read_packed_files(path, d.verify_checksum, d.access == "stream" ? PackedAccess::stream : PackedAccess::mmap);
    loaded.images = std::move(packed.images);
    loaded.classes = std::move(packed.classes);
  } else {
    loaded.images =
        load_idx(path, labels.empty() ? idx_labels_path_for(path) : std::filesystem::path(labels));
  }
  // These are cheap to load whole next to decoding a folder: sliced afterwards.
  loaded.total = loaded.images.size();
  if (!shard.whole()) {
    const auto [first, last] = shard_range(shard, loaded.total, loaded.images.origin);
    loaded.images = slice(loaded.images, first, last);
    loaded.first = first;
  }
  return loaded;
}

std::string classes_toml(const std::vector<std::string>& classes) {
  toml::array names;
  for (const auto& name : classes) names.push_back(name);
  toml::table table;
  table.insert("classes", std::move(names));
  std::ostringstream out;
  out << "# label i is classes[i] (from the data's class folders)\n" << table << '\n';
  return out.str();
}

}  // namespace pretext::data
