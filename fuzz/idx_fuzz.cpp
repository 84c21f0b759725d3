// Fuzz target: the IDX reader (data/idx.cpp), raw and gzip.
//
// Input: an IDX image file, read with load_idx_images. If the input holds the
// marker "\nLABELS\n", the bytes before it are the image file and the bytes
// after it the label file, and load_idx reads the pair as well. Both files
// live in memory (memfd) and are opened by path, as the reader wants.
//
// Expected: InputError (the file named, with what was expected and found).
// Anything else is a bug, including std::bad_alloc: a header must not be able
// to make the reader allocate more than the data can fill.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "data/image_set.hpp"
#include "fuzz/expected_error.hpp"
#include "fuzz/memory_file.hpp"
#include "common/errors.hpp"

namespace {

// Every byte read below is summed into this, so the reads cannot be optimised away.
volatile unsigned touched_sum = 0;

constexpr std::string_view kLabelsMarker = "\nLABELS\n";

void check(const pretext::data::ImageSet& set) {
  // Every pixel must be there: touching all of them lets ASan see a short buffer.
  unsigned sum = 0;
  const std::size_t bytes = set.size() * set.shape.numel();
  if (set.pixels.size() != bytes) __builtin_trap();
  for (std::size_t i = 0; i < bytes; ++i) sum += set.data()[i];
  touched_sum = sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static pretext::fuzz::MemoryFile images("fuzz-images-idx3-ubyte");
  static pretext::fuzz::MemoryFile labels("fuzz-labels-idx1-ubyte");
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t marker = input.find(kLabelsMarker);
  const std::size_t image_bytes = marker == std::string_view::npos ? size : marker;
  images.write(data, image_bytes);
  try {
    check(pretext::data::load_idx_images(images.path()));
  } catch (const pretext::InputError& error) {
    pretext::fuzz::note_expected(error);
  }
  if (marker != std::string_view::npos) {
    const std::size_t label_start = marker + kLabelsMarker.size();
    labels.write(data + label_start, size - label_start);
    try {
      const pretext::data::ImageSet set = pretext::data::load_idx(images.path(), labels.path());
      check(set);
      for (const std::int64_t label : set.labels)
        if (label < 0 || label > 255) __builtin_trap();  // labels are uint8 in the file
    } catch (const pretext::InputError& error) {
      pretext::fuzz::note_expected(error);
    }
  }
  return 0;
}
