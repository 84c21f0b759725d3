// In-memory image collections and the loaders that fill them.
//
// Pixels are uint8, one image after another, each planar CHW. This is the
// cheapest form to keep resident (Fashion-MNIST: 47 MB) and to decode from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pretext/image.hpp"

namespace pretext::data {

/// A class label as a dataset holds it: 0-based, -1 when unknown. 32 bits
/// because labels are per-image metadata that stays resident even when the
/// pixels are streamed; packed files still store them as int64.
using Label = std::int32_t;

struct ImageSet {
  ImageShape shape;                  // of every image
  std::vector<std::uint8_t> pixels;  // size() * shape.numel() bytes, image-major, CHW; unused when external
  std::vector<Label> labels;         // one per image, 0-based; -1 when unknown
  std::string origin;                // the file(s) it came from, for messages
  // Pixels held elsewhere (a memory-mapped packed file), read in place with
  // no copy: same layout as `pixels`; `storage` keeps them alive.
  const std::uint8_t* external = nullptr;
  std::shared_ptr<const void> storage;
  // Streamed pixels (a packed file opened with access = "stream"): neither
  // owned nor mapped; read_image copies image i's bytes out of the file.
  // Thread-safe. Memory stays flat however large the file.
  std::function<void(std::size_t index, std::uint8_t* out)> read_image;

  [[nodiscard]] std::size_t size() const { return labels.size(); }
  /// All pixels, owned or external. Read through this, not `pixels`.
  [[nodiscard]] const std::uint8_t* data() const { return external != nullptr ? external : pixels.data(); }
  [[nodiscard]] bool streamed() const { return static_cast<bool>(read_image); }
  /// Image i of a resident (owned or mapped) set, in place.
  [[nodiscard]] const std::uint8_t* image(std::size_t i) const { return data() + i * shape.numel(); }
  /// Image i of any set: in place when resident, else read into `scratch`
  /// (shape.numel() bytes).
  const std::uint8_t* image(std::size_t i, std::uint8_t* scratch) const {
    if (!streamed()) return image(i);
    read_image(i, scratch);
    return scratch;
  }
};

/// Reads an SVHN `*_32x32.mat` file as published (MATLAB v5 or v7.3 via matio):
/// X is 32x32x3xN uint8 in MATLAB (column-major) order, y is Nx1 with label 10
/// meaning digit 0. Returns 3x32x32 images with labels 0..9.
/// Throws InputError naming the file and what was expected.
ImageSet load_svhn_mat(const std::filesystem::path& file);

/// Reads an IDX image file and its IDX label file, gzip-compressed or raw
/// (detected by magic). Returns 1xHxW images. Throws InputError on a missing,
/// truncated or malformed file, or when the counts disagree.
ImageSet load_idx(const std::filesystem::path& images, const std::filesystem::path& labels);

/// Reads an IDX image file alone, for images whose labels are unknown: every
/// label is -1. Same checks as load_idx.
ImageSet load_idx_images(const std::filesystem::path& images);

/// The label file conventionally paired with an IDX image file:
/// ".../train-images-idx3-ubyte.gz" -> ".../train-labels-idx1-ubyte.gz".
/// Throws InputError if the name does not contain "images-idx3".
std::filesystem::path idx_labels_path_for(const std::filesystem::path& images);

/// Zero-pads every image symmetrically to `size` x `size` (e.g. 28 -> 32).
/// A no-op when the images already have that size; InputError if larger.
void pad_to(ImageSet& set, int size);

/// Checks every label is in [0, classes). Throws InputError naming the first bad one.
void check_labels(const ImageSet& set, std::int64_t classes);

}  // namespace pretext::data
