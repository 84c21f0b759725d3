// Tiny PNG and JPEG files written by the tests themselves (libpng, libjpeg).
#pragma once

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

namespace pretext::testing {

struct PngSpec {
  int width = 0;
  int height = 0;
  int color_type = PNG_COLOR_TYPE_RGB;
  int bit_depth = 8;
  std::vector<std::uint8_t> rows;  // packed rows as libpng wants them (16-bit: big-endian)
  std::vector<png_color> palette;  // PNG_COLOR_TYPE_PALETTE only
};

namespace detail {
// Only C objects live in this frame: libpng reports errors by longjmp.
inline bool write_png_file(FILE* file, const PngSpec* spec, png_bytep* rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png)) != 0) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(spec->width), static_cast<png_uint_32>(spec->height),
               spec->bit_depth, spec->color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (spec->color_type == PNG_COLOR_TYPE_PALETTE)
    png_set_PLTE(png, info, spec->palette.data(), static_cast<int>(spec->palette.size()));
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}
}  // namespace detail

inline void write_png(const std::filesystem::path& path, const PngSpec& spec) {
  std::filesystem::create_directories(path.parent_path());
  const std::size_t stride = spec.rows.size() / static_cast<std::size_t>(spec.height);
  std::vector<png_bytep> rows;
  for (int y = 0; y < spec.height; ++y)
    rows.push_back(const_cast<png_bytep>(spec.rows.data()) + static_cast<std::size_t>(y) * stride);
  FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) throw std::runtime_error("cannot write " + path.string());
  const bool ok = detail::write_png_file(file, &spec, rows.data());
  std::fclose(file);
  if (!ok) throw std::runtime_error("libpng could not write " + path.string());
}

/// An 8-bit grey PNG of `width` x `height` from row-major values.
inline void write_grey_png(const std::filesystem::path& path, int width, int height,
                           const std::vector<std::uint8_t>& values) {
  write_png(path, PngSpec{width, height, PNG_COLOR_TYPE_GRAY, 8, values, {}});
}

/// A JPEG (quality 95) from interleaved samples: components 1 (grey), 3 (RGB) or 4 (CMYK).
inline void write_jpeg(const std::filesystem::path& path, int width, int height, int components,
                       const std::vector<std::uint8_t>& samples) {
  std::filesystem::create_directories(path.parent_path());
  jpeg_compress_struct info;
  jpeg_error_mgr errors;
  info.err = jpeg_std_error(&errors);  // exits on error: acceptable in a test writer
  jpeg_create_compress(&info);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&info, &buffer, &size);
  info.image_width = static_cast<JDIMENSION>(width);
  info.image_height = static_cast<JDIMENSION>(height);
  info.input_components = components;
  info.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, 95, TRUE);
  jpeg_start_compress(&info, TRUE);
  const std::size_t stride = static_cast<std::size_t>(width) * static_cast<std::size_t>(components);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(samples.data()) + info.next_scanline * stride;
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(buffer), static_cast<std::streamsize>(size));
  std::free(buffer);
}

inline std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

/// The first half of `path`'s bytes, written back: a truncated file.
inline void truncate_to_half(const std::filesystem::path& path) {
  auto bytes = read_bytes(path);
  bytes.resize(bytes.size() / 2);
  write_bytes(path, bytes);
}

}  // namespace pretext::testing
