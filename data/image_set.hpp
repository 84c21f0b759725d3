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
#include <utility>
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
  // Pixels held elsewhere, read in place with no copy: one memory-mapped
  // packed file (`external`, same layout as `pixels`), or several one after
  // another (`parts`, the shards a glob matched: mappings cannot be joined
  // into one contiguous range, each file's pixels start at a byte that is not
  // page-aligned). `storage` keeps them alive.
  const std::uint8_t* external = nullptr;
  struct Part {
    std::size_t first = 0;                 // the set's index of the part's first image
    const std::uint8_t* pixels = nullptr;  // that image; the part's others follow it
  };
  std::vector<Part> parts;  // sorted by `first`, none empty; unused when empty
  std::shared_ptr<const void> storage;
  // Streamed pixels (a packed file opened with access = "stream"): neither
  // owned nor mapped; read_image copies image i's bytes out of the file.
  // Thread-safe. Memory stays flat however large the file.
  std::function<void(std::size_t index, std::uint8_t* out)> read_image;

  [[nodiscard]] std::size_t size() const { return labels.size(); }
  /// All pixels in one range, owned or external; nullptr when they are not
  /// contiguous (streamed, or in several parts): image() reads any set.
  [[nodiscard]] const std::uint8_t* data() const {
    if (!parts.empty() || streamed()) return nullptr;
    return external != nullptr ? external : pixels.data();
  }
  [[nodiscard]] bool streamed() const { return static_cast<bool>(read_image); }
  /// Image i of a resident (owned, mapped or in parts) set, in place.
  [[nodiscard]] const std::uint8_t* image(std::size_t i) const {
    return parts.empty() ? data() + i * shape.numel() : part_image(i);
  }
  /// Image i of any set: in place when resident, else read into `scratch`
  /// (shape.numel() bytes).
  const std::uint8_t* image(std::size_t i, std::uint8_t* scratch) const {
    if (!streamed()) return image(i);
    read_image(i, scratch);
    return scratch;
  }

 private:
  [[nodiscard]] const std::uint8_t* part_image(std::size_t i) const;
};

/// The I-th of N contiguous slices of a data set, 0-based like torchrun's
/// ranks: images [I*n/N, (I+1)*n/N) of n. Slices 0..N-1 are disjoint, cover
/// every image once, and concatenated in order give the whole set back.
struct Shard {
  std::size_t index = 0;  // I, below count
  std::size_t count = 1;  // N; 1: the whole set
  [[nodiscard]] bool whole() const { return count == 1; }
  /// [first, last) of n images. Exact for count below 2^32 (no overflow).
  [[nodiscard]] std::size_t first(std::size_t n) const { return n / count * index + n % count * index / count; }
  [[nodiscard]] std::size_t last(std::size_t n) const { return Shard{index + 1, count}.first(n); }
};

/// [first, last) of `shard` over the n images of `origin`. Throws InputError
/// naming `origin` and the shard when that slice is empty (more shards than
/// images): a packed file of no images is a mistake, not a shard.
std::pair<std::size_t, std::size_t> shard_range(const Shard& shard, std::size_t n, const std::string& origin);

/// Images [first, last) of `set` (any kind, streamed included) as an owned
/// set with the same shape, labels and origin.
ImageSet slice(const ImageSet& set, std::size_t first, std::size_t last);

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
