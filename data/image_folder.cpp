#include "data/image_folder.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <utility>

#include <oneapi/tbb/flow_graph.h>

#include "common/errors.hpp"

namespace pretext::data {
namespace fs = std::filesystem;
namespace {

// Files per flow-graph message: enough that scheduling costs nothing next to
// decoding, few enough that progress moves and both cores stay busy.
constexpr std::size_t kChunk = 256;

struct FileEntry {
  fs::path path;
  Label label;
};

std::vector<fs::path> images_below(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
    if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<FileEntry> list_files(const fs::path& root, bool labelled, std::vector<std::string>& classes) {
  std::vector<FileEntry> files;
  if (!labelled) {
    for (auto& path : images_below(root)) files.push_back({std::move(path), -1});
    return files;
  }
  classes = folder_classes(root);
  if (classes.empty())
    throw InputError(root.string() + ": expected one sub-folder per class (labelled_layout = true), found none");
  for (std::size_t label = 0; label < classes.size(); ++label) {
    const auto class_files = images_below(root / classes[label]);
    if (class_files.empty())
      throw InputError((root / classes[label]).string() + ": class folder holds no .png/.jpg/.jpeg images");
    for (const auto& path : class_files) files.push_back({path, static_cast<Label>(label)});
  }
  return files;
}

// The flow graph: chunks of file numbers ─▶ decode (parallel, each image
// straight into its place in `pixels`) ─▶ sequencer ─▶ progress (serial, in
// file order). It runs in the caller's oneTBB arena, so a caller that limits
// the arena's threads limits the decoding.
void decode_all(const std::vector<FileEntry>& files, const FolderOptions& options, std::uint8_t* pixels,
                std::vector<std::string>& failures) {
  namespace flow = oneapi::tbb::flow;
  const std::size_t bytes = options.target.shape().numel();
  const std::size_t chunks = (files.size() + kChunk - 1) / kChunk;
  flow::graph g;
  std::size_t next = 0;
  flow::input_node<std::size_t> source(g, [&](oneapi::tbb::flow_control& control) -> std::size_t {
    if (next == chunks) control.stop();
    return next++;
  });
  flow::function_node<std::size_t, std::size_t> decode(g, flow::unlimited, [&](std::size_t chunk) {
    const std::size_t end = std::min(files.size(), (chunk + 1) * kChunk);
    for (std::size_t i = chunk * kChunk; i < end; ++i) {
      try {
        decode_image_file(files[i].path, options.target, pixels + i * bytes);
      } catch (const std::exception& e) {
        failures[i] = e.what();  // the policy is applied afterwards, in file order
      }
    }
    return chunk;
  });
  flow::sequencer_node<std::size_t> in_order(g, [](std::size_t chunk) { return chunk; });
  flow::function_node<std::size_t> progress(g, flow::serial, [&](std::size_t chunk) {
    if (options.progress) options.progress(std::min(files.size(), (chunk + 1) * kChunk), files.size());
  });
  flow::make_edge(source, decode);
  flow::make_edge(decode, in_order);
  flow::make_edge(in_order, progress);
  source.activate();
  g.wait_for_all();
}

}  // namespace

bool is_image_file(const fs::path& file) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

std::vector<std::string> folder_classes(const fs::path& root) {
  std::error_code error;
  if (!fs::is_directory(root, error)) throw InputError(root.string() + ": expected a folder of images");
  std::vector<std::string> classes;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory()) classes.push_back(entry.path().filename().string());
  std::sort(classes.begin(), classes.end());
  return classes;
}

FolderDataset load_image_folder(const fs::path& root, const FolderOptions& options) {
  std::error_code error;
  if (!fs::is_directory(root, error)) throw InputError(root.string() + ": expected a folder of images");
  FolderDataset result;
  std::vector<FileEntry> files = list_files(root, options.labelled_layout, result.classes);
  if (files.empty()) throw InputError(root.string() + ": no .png/.jpg/.jpeg images found below this folder");
  // Listing the whole folder is cheap; decoding is what a shard saves.
  result.listed = files.size();
  if (!options.shard.whole()) {
    const auto [first, last] = shard_range(options.shard, files.size(), root.string());
    files.erase(files.begin() + static_cast<std::ptrdiff_t>(last), files.end());
    files.erase(files.begin(), files.begin() + static_cast<std::ptrdiff_t>(first));
    result.first = first;
  }

  const ImageShape shape = options.target.shape();
  const std::size_t bytes = shape.numel();
  std::vector<std::uint8_t> pixels(files.size() * bytes);
  std::vector<std::string> failures(files.size());  // empty: decoded
  decode_all(files, options, pixels.data(), failures);

  // Drop the failures in place, in file order, so labels stay aligned.
  ImageSet& set = result.images;
  set.shape = shape;
  set.origin = root.string();
  std::size_t kept = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (!failures[i].empty()) {
      if (options.on_bad_image == BadImagePolicy::fail)
        throw InputError(failures[i] + " (data.on_bad_image = \"fail\"; \"skip\" leaves such files out)");
      ++result.skipped;
      if (options.report_skip) options.report_skip(failures[i]);
      continue;
    }
    if (kept != i)
      std::copy_n(pixels.begin() + static_cast<std::ptrdiff_t>(i * bytes), bytes,
                  pixels.begin() + static_cast<std::ptrdiff_t>(kept * bytes));
    set.labels.push_back(files[i].label);
    ++kept;
  }
  if (kept == 0) throw InputError(root.string() + ": every one of " + std::to_string(files.size()) + " images failed");
  pixels.resize(kept * bytes);
  pixels.shrink_to_fit();
  set.pixels = std::move(pixels);
  return result;
}

}  // namespace pretext::data
