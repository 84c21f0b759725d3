// Operations on whole in-memory image sets.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/image_set.hpp"
#include "common/errors.hpp"

namespace pretext::data {

void pad_to(ImageSet& set, int size) {
  const ImageShape from = set.shape;
  if (from.height == size && from.width == size) return;
  if (from.height > size || from.width > size) {
    throw InputError(set.origin + ": expected images no larger than the target " + std::to_string(size) + "x" +
                     std::to_string(size) + ", found " + std::to_string(from.height) + "x" +
                     std::to_string(from.width) + "; images are only ever padded, never cropped");
  }
  // Odd differences put the extra row/column at the bottom/right, the same
  // split as TensorFlow's "SAME" padding.
  const auto top = static_cast<std::size_t>((size - from.height) / 2);
  const auto left = static_cast<std::size_t>((size - from.width) / 2);
  const ImageShape to{from.channels, size, size};
  const std::size_t planes = set.size() * static_cast<std::size_t>(from.channels);
  if (set.streamed())
    throw InputError(set.origin + ": images are " + std::to_string(from.height) + "x" + std::to_string(from.width) +
                     " and a streamed packed file cannot be padded to " + std::to_string(size) +
                     "; write it at that size (pretext preprocess) or read it with data.access = \"mmap\"");

  std::vector<std::uint8_t> padded(set.size() * to.numel(), 0);
  const auto channels = static_cast<std::size_t>(from.channels);
  for (std::size_t plane = 0; plane < planes; ++plane) {
    // Plane by image: the pixels may be in several parts (a glob of packed files).
    const std::uint8_t* source = set.image(plane / channels) + plane % channels * from.plane_size();
    std::uint8_t* target = padded.data() + plane * to.plane_size();
    for (std::size_t row = 0; row < static_cast<std::size_t>(from.height); ++row) {
      const std::uint8_t* source_row = source + row * static_cast<std::size_t>(from.width);
      std::copy(source_row, source_row + from.width, target + (top + row) * static_cast<std::size_t>(size) + left);
    }
  }
  set.pixels = std::move(padded);
  set.external = nullptr;  // padded copies are owned
  set.parts.clear();
  set.storage.reset();
  set.shape = to;
}

const std::uint8_t* ImageSet::part_image(std::size_t i) const {
  // The last part that starts at or before i: a binary search, so a glob of
  // many shards costs log(files) per image.
  const auto after = std::upper_bound(parts.begin(), parts.end(), i,
                                      [](std::size_t index, const Part& part) { return index < part.first; });
  const Part& part = *(after - 1);
  return part.pixels + (i - part.first) * shape.numel();
}

std::pair<std::size_t, std::size_t> shard_range(const Shard& shard, std::size_t n, const std::string& origin) {
  const std::size_t first = shard.first(n);
  const std::size_t last = shard.last(n);
  if (first == last)
    throw InputError(origin + ": expected images in shard " + std::to_string(shard.index) + "/" +
                     std::to_string(shard.count) + ", found none: its " + std::to_string(n) +
                     " images are too few for " + std::to_string(shard.count) + " shards");
  return {first, last};
}

ImageSet slice(const ImageSet& set, std::size_t first, std::size_t last) {
  if (first > last || last > set.size())
    throw InputError(set.origin + ": expected a slice within its " + std::to_string(set.size()) + " images, found [" +
                     std::to_string(first) + ", " + std::to_string(last) + ")");
  ImageSet out;
  out.shape = set.shape;
  out.origin = set.origin;
  out.labels.assign(set.labels.begin() + static_cast<std::ptrdiff_t>(first),
                    set.labels.begin() + static_cast<std::ptrdiff_t>(last));
  const std::size_t bytes = set.shape.numel();
  out.pixels.resize((last - first) * bytes);
  std::vector<std::uint8_t> scratch(set.streamed() ? bytes : 0);
  for (std::size_t i = first; i < last; ++i)
    std::copy_n(set.image(i, scratch.data()), bytes,
                out.pixels.begin() + static_cast<std::ptrdiff_t>((i - first) * bytes));
  return out;
}

void check_labels(const ImageSet& set, std::int64_t classes) {
  for (std::size_t i = 0; i < set.labels.size(); ++i) {
    const std::int64_t label = set.labels[i];
    if (label < 0 || label >= classes) {
      throw InputError(set.origin + ": expected labels in 0.." + std::to_string(classes - 1) + " (" +
                       std::to_string(classes) + " classes), found " + std::to_string(label) + " at index " +
                       std::to_string(i));
    }
  }
}

}  // namespace pretext::data
