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
  for (std::size_t plane = 0; plane < planes; ++plane) {
    const std::uint8_t* source = set.data() + plane * from.plane_size();
    std::uint8_t* target = padded.data() + plane * to.plane_size();
    for (std::size_t row = 0; row < static_cast<std::size_t>(from.height); ++row) {
      const std::uint8_t* source_row = source + row * static_cast<std::size_t>(from.width);
      std::copy(source_row, source_row + from.width, target + (top + row) * static_cast<std::size_t>(size) + left);
    }
  }
  set.pixels = std::move(padded);
  set.external = nullptr;  // padded copies are owned
  set.storage.reset();
  set.shape = to;
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
