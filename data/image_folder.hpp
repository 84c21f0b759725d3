// Folders of PNG/JPEG images as an ImageSet.
//
// Labelled layout (torchvision's ImageFolder): one sub-folder per class,
// classes are the sorted sub-folder names, a class's label is its index, and
// the images of a class are every .png/.jpg/.jpeg below its folder. Unlabelled
// layout: every image anywhere below the root, label -1. Files are taken in
// sorted path order, so a folder always loads the same way.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/image_decode.hpp"
#include "data/image_set.hpp"

namespace pretext::data {

enum class BadImagePolicy { skip, fail };

struct FolderOptions {
  DecodeTarget target;
  bool labelled_layout = true;
  BadImagePolicy on_bad_image = BadImagePolicy::fail;
  /// Called once per skipped file, in file order, with the decoder's message
  /// (which names the file). Default: nothing is reported.
  std::function<void(const std::string&)> report_skip;
  /// Called between chunks with (images done, images in all). Optional.
  std::function<void(std::size_t, std::size_t)> progress;
  /// Only this slice of the sorted file list is decoded (one host's part of
  /// `pretext preprocess --shard`); classes still come from the whole folder,
  /// so labels agree across shards. Default: every file.
  Shard shard;
};

struct FolderDataset {
  ImageSet images;
  std::vector<std::string> classes;  // label i is classes[i]; empty for the unlabelled layout
  std::size_t skipped = 0;
  std::size_t listed = 0;  // image files in the whole folder (every shard's, bad ones too)
  std::size_t first = 0;   // the shard's first file in that list
};

/// True for .png, .jpg and .jpeg, in any case.
bool is_image_file(const std::filesystem::path& file);

/// The class names of a labelled folder: its sub-folder names, sorted.
std::vector<std::string> folder_classes(const std::filesystem::path& root);

/// Decodes every image (of options.shard) on all cores, through a oneTBB flow
/// graph in the caller's arena, reporting progress in file order. Throws
/// InputError when the folder is missing or holds no images, when the shard
/// holds none, or (policy fail) naming the first bad file in file order.
FolderDataset load_image_folder(const std::filesystem::path& root, const FolderOptions& options);

}  // namespace pretext::data
