// Fuzz target: the SVHN .mat reader (data/svhn_mat.cpp, through matio).
//
// Input: a .mat file (MATLAB v5, or v7.3 = HDF5), written to a memory file
// and opened by path, since matio only reads files.
//
// Expected: InputError (the file named, with what was expected and found).
// Anything else is a bug: a crash (in our code or in matio, which our checks
// must keep away from inputs it cannot handle), a leak, std::bad_alloc (a
// header must not be able to demand more memory than the file can fill).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "data/image_set.hpp"
#include "fuzz/expected_error.hpp"
#include "fuzz/memory_file.hpp"
#include "common/errors.hpp"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // HDF5 would otherwise try to flock() the memory file for every v7.3 input.
  setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static pretext::fuzz::MemoryFile file("fuzz_32x32.mat");
  file.write(data, size);
  try {
    const pretext::data::ImageSet set = pretext::data::load_svhn_mat(file.path());
    if (set.size() == 0 || set.pixels.size() != set.size() * set.shape.numel()) __builtin_trap();
    for (const std::int64_t label : set.labels)
      if (label < 0 || label > 9) __builtin_trap();  // the reader promises digits 0..9
  } catch (const pretext::InputError& error) {
    pretext::fuzz::note_expected(error);
  }
  return 0;
}
