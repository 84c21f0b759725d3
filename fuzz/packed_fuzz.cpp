// Fuzz target: the packed-file reader (data/packed.cpp).
//
// Input: a packed file, written to a memory file and memory-mapped by
// read_packed through its /proc/self/fd path. It is read three times: mapped
// without the checksum check (most mutations break the CRC, and the section
// checks behind it must hold on their own), mapped with it, and streamed.
//
// Expected: InputError (the file named, with what was expected and found).
// Anything else is a bug: a crash, reading outside the mapping, a leak,
// an exception of another type.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/packed.hpp"
#include "fuzz/expected_error.hpp"
#include "fuzz/memory_file.hpp"
#include "common/errors.hpp"

namespace {

// Every byte read below is summed into this, so the reads cannot be optimised away.
volatile unsigned touched_sum = 0;

// Reads every pixel, label and class name: the mapping ends where the file
// does, so a section the header placed past the end faults here; streamed
// images come through read_image.
void touch(const pretext::data::PackedDataset& packed) {
  const pretext::data::ImageSet& set = packed.images;
  // Only with images: a file of 0 images may declare any shape.
  std::vector<std::uint8_t> scratch(set.size() > 0 ? set.shape.numel() : 0);
  unsigned sum = 0;
  for (std::size_t i = 0; i < set.size(); ++i) {
    const std::uint8_t* image = set.image(i, scratch.data());
    for (std::size_t j = 0; j < scratch.size(); ++j) sum += image[j];
  }
  for (const std::int64_t label : set.labels) sum += static_cast<unsigned>(label);
  for (const auto& name : packed.classes) sum += static_cast<unsigned>(name.size());
  touched_sum = sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static pretext::fuzz::MemoryFile file("fuzz.pack");
  file.write(data, size);
  using pretext::data::PackedAccess;
  const struct {
    bool verify_checksum;
    PackedAccess access;
  } reads[] = {{false, PackedAccess::mmap}, {true, PackedAccess::mmap}, {false, PackedAccess::stream}};
  for (const auto& read : reads) {
    try {
      touch(pretext::data::read_packed(file.path(), read.verify_checksum, read.access));
    } catch (const pretext::InputError& error) {
      pretext::fuzz::note_expected(error);
    }
  }
  return 0;
}
