// Fuzz target: the PNG and JPEG decoders (data/image_decode.cpp).
//
// Input: the bytes of an image file; decode_image tells PNG from JPEG by the
// signature, as for an image folder. A decoded image is then resized to two
// small targets (grey and RGB), as the folder loader would, unless it is over
// 4 Mi values (see below).
//
// Expected: InputError (the file named, with what is wrong). Anything else
// is a bug: a crash or a longjmp gone astray, a leak (libpng and libjpeg
// state must be freed on every error path), std::bad_alloc (a header must
// not be able to demand gigabytes), UB in the resize.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/image_decode.hpp"
#include "fuzz/expected_error.hpp"
#include "common/errors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> bytes(data, data + size);
  pretext::data::InterleavedImage image;
  try {
    image = pretext::data::decode_image(bytes, "fuzz-image");
  } catch (const pretext::InputError& error) {
    pretext::fuzz::note_expected(error);
    return 0;
  }
  const std::size_t expected = static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height) *
                               static_cast<std::size_t>(image.channels);
  if (image.width <= 0 || image.height <= 0 || (image.channels != 1 && image.channels != 3) ||
      image.pixels.size() != expected)
    __builtin_trap();  // the decoder returned an image that is not what it promises
  // Resizing a legitimately large image (arithmetic-coded JPEGs reach 64 Mi
  // pixels in a few hundred bytes) takes seconds under ASan; keep runs fast.
  if (expected > (std::size_t{1} << 22)) return 0;
  std::vector<std::uint8_t> out;
  for (const pretext::data::DecodeTarget target :
       {pretext::data::DecodeTarget{1, 5}, pretext::data::DecodeTarget{3, 8}}) {
    out.assign(target.shape().numel(), 0);
    pretext::data::resize_to_target(image, target, out.data());
  }
  return 0;
}
