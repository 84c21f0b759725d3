#include "data/image_folder.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <utility>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "pipeline/errors.hpp"

namespace pretext::data {
namespace fs = std::filesystem;
namespace {

// Images are decoded in chunks of this many so progress can be reported
// between them; large enough that the gaps cost nothing.
constexpr std::size_t kChunk = 2048;

struct FileEntry {
  fs::path path;
  std::int64_t label;
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
    for (const auto& path : class_files) files.push_back({path, static_cast<std::int64_t>(label)});
  }
  return files;
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
  const std::vector<FileEntry> files = list_files(root, options.labelled_layout, result.classes);
  if (files.empty()) throw InputError(root.string() + ": no .png/.jpg/.jpeg images found below this folder");

  const ImageShape shape = options.target.shape();
  const std::size_t bytes = shape.numel();
  std::vector<std::uint8_t> pixels(files.size() * bytes);
  std::vector<std::string> failures(files.size());  // empty: decoded
  for (std::size_t begin = 0; begin < files.size(); begin += kChunk) {
    const std::size_t end = std::min(files.size(), begin + kChunk);
    tbb::parallel_for(tbb::blocked_range<std::size_t>(begin, end), [&](const tbb::blocked_range<std::size_t>& r) {
      for (std::size_t i = r.begin(); i != r.end(); ++i) {
        try {
          decode_image_file(files[i].path, options.target, pixels.data() + i * bytes);
        } catch (const std::exception& e) {
          failures[i] = e.what();
        }
      }
    });
    if (options.progress) options.progress(end, files.size());
  }

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
