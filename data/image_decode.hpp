// Decoding PNG and JPEG files into the planar uint8 images an ImageSet holds.
//
// Torch-free: libpng for PNG, libjpeg-turbo for JPEG. The format is told by
// the file's first bytes, not its name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "pretext/image.hpp"

namespace pretext::data {

/// Larger images are refused (InputError) before their pixels are allocated:
/// 64 Mi pixels, e.g. 8192 x 8192, 192 MiB as RGB.
constexpr std::uint64_t kMaxImagePixels = std::uint64_t{1} << 26;

/// What every decoded image becomes: `channels` (1: grey, 3: RGB) planes of
/// `size` x `size` pixels.
struct DecodeTarget {
  int channels = 3;
  int size = 32;
  [[nodiscard]] ImageShape shape() const { return {channels, size, size}; }
};

/// A decoded image before resizing: interleaved (HWC) grey or RGB.
struct InterleavedImage {
  int width = 0;
  int height = 0;
  int channels = 0;  // 1 or 3
  std::vector<std::uint8_t> pixels;
};

/// Decodes a PNG or JPEG held in memory. `name` is only used in messages.
///   PNG: palette expanded to RGB, 1/2/4-bit grey expanded to 8 bits,
///        16-bit samples stripped to their high byte, alpha (or tRNS
///        transparency) dropped: the stored colour is kept as is.
///   JPEG: grey or YCbCr/RGB; CMYK and YCCK are refused. libjpeg's "corrupt
///        data" warnings (e.g. a truncated file) count as errors.
///   Either: over kMaxImagePixels is refused; so is a PNG whose scanlines
///        could not fit in the file even at deflate's best ratio.
/// Throws InputError naming `name` and what is wrong.
InterleavedImage decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name);

/// Converts to `target.channels` (grey -> RGB by replication, RGB -> grey by
/// ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B), then resizes the shorter side
/// to `target.size` and crops the centre square. Downscaling averages areas
/// (each output pixel is the coverage-weighted mean of the source pixels under
/// it); upscaling is bilinear (pixel centres aligned). Writes planar CHW into
/// `out`, which must hold target.shape().numel() bytes.
void resize_to_target(const InterleavedImage& image, const DecodeTarget& target, std::uint8_t* out);

/// Reads, decodes and resizes one file into `out` (target.shape().numel()
/// bytes). Throws InputError naming the file.
void decode_image_file(const std::filesystem::path& file, const DecodeTarget& target, std::uint8_t* out);

}  // namespace pretext::data
