// Writes images as one PNG grid (libpng), for people to look at: GAN samples.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "pretext/image.hpp"

namespace pretext::artefacts {

/// `pixels`: `count` images of `shape`, planar CHW floats in [0, 1] (clamped).
/// One or three channels. Images are laid out `columns` per row with a
/// 2-pixel gap. The file is written atomically; std::runtime_error names it.
void write_png_grid(const std::filesystem::path& file, const std::vector<float>& pixels, std::int64_t count,
                    ImageShape shape, int columns);

struct PngInfo {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  int channels = 0;
};
/// Reads a PNG's header (for tests and checks). Throws std::runtime_error.
PngInfo read_png_info(const std::filesystem::path& file);

}  // namespace pretext::artefacts
