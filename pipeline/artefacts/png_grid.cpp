#include "pipeline/artefacts/png_grid.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "common/atomic_file.hpp"

namespace pretext::artefacts {
namespace {

constexpr int kGap = 2;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open(const std::filesystem::path& path, const char* mode) {
  File file(std::fopen(path.c_str(), mode));
  if (!file) throw std::runtime_error("cannot open " + path.string());
  return file;
}

[[noreturn]] void png_failed(png_structp png, png_const_charp message) {
  (void)png;
  throw std::runtime_error(std::string("libpng: ") + message);
}

// libpng's write callback: bytes into the AtomicFile. A failed write ends
// libpng's work through png_error (which throws, via png_failed); the
// AtomicFile keeps the OS's reason.
void append_png_data(png_structp png, png_bytep data, png_size_t size) {
  auto* out = static_cast<AtomicFile*>(png_get_io_ptr(png));
  if (!out->append(data, size)) png_error(png, "write failed");
}
// Given, so libpng never falls back to fflush() on what it would take for a FILE*.
void flush_png_data(png_structp /*png*/) {}

}  // namespace

void write_png_grid(const std::filesystem::path& file, const std::vector<float>& pixels, std::int64_t count,
                    ImageShape shape, int columns) {
  if (shape.channels != 1 && shape.channels != 3)
    throw std::runtime_error("write_png_grid: 1 or 3 channels expected, got " + std::to_string(shape.channels));
  const int cols = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(columns, count)));
  const int rows = static_cast<int>((count + cols - 1) / cols);
  const int width = cols * shape.width + (cols - 1) * kGap;
  const int height = rows * shape.height + (rows - 1) * kGap;
  const int channels = shape.channels;
  std::vector<png_byte> canvas(static_cast<std::size_t>(width) * height * channels, 255);
  for (std::int64_t i = 0; i < count; ++i) {
    const int x0 = static_cast<int>(i % cols) * (shape.width + kGap);
    const int y0 = static_cast<int>(i / cols) * (shape.height + kGap);
    const float* image = pixels.data() + static_cast<std::size_t>(i) * shape.numel();
    for (int c = 0; c < channels; ++c)
      for (int y = 0; y < shape.height; ++y)
        for (int x = 0; x < shape.width; ++x) {
          const float v = std::clamp(image[(static_cast<std::size_t>(c) * shape.height + y) * shape.width + x], 0.F, 1.F);
          canvas[(static_cast<std::size_t>(y0 + y) * width + x0 + x) * channels + c] =
              static_cast<png_byte>(std::lround(v * 255.0F));
        }
  }

  AtomicFile out(file);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, png_failed, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) throw std::runtime_error("libpng: out of memory");
  try {
    png_set_write_fn(png, &out, append_png_data, flush_png_data);
    png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; ++y) png_write_row(png, canvas.data() + static_cast<std::size_t>(y) * width * channels);
    png_write_end(png, nullptr);
  } catch (...) {
    png_destroy_write_struct(&png, &info);
    out.check();  // a failed write: the OS's reason, naming the file
    throw;
  }
  png_destroy_write_struct(&png, &info);
  out.commit();
}

PngInfo read_png_info(const std::filesystem::path& file) {
  File in = open(file, "rb");
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, png_failed, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) throw std::runtime_error("libpng: out of memory");
  PngInfo result;
  try {
    png_init_io(png, in.get());
    png_read_info(png, info);
    result.width = png_get_image_width(png, info);
    result.height = png_get_image_height(png, info);
    result.channels = png_get_channels(png, info);
  } catch (const std::exception& e) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw std::runtime_error(file.string() + ": " + e.what());
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return result;
}

}  // namespace pretext::artefacts
