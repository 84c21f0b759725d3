// PNG (libpng) and JPEG (libjpeg-turbo) decoding, channel conversion and
// resize + centre crop.
//
// Both libraries report errors by longjmp. A longjmp must not skip the
// destructor of a C++ object, so every setjmp lives in a function whose own
// frame holds only plain C data; buffers are owned by the caller and reached
// through a context struct, and messages are copied into a char array there.
#include "data/image_decode.hpp"

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include <jpeglib.h>
#include <png.h>

#include "common/errors.hpp"

namespace pretext::data {
namespace {

constexpr std::size_t kMessageSize = 256;
// zlib's deflate never compresses better than 1032:1, so a PNG's raw
// scanlines can never be more than 1032 times the file's size.
constexpr std::uint64_t kDeflateMaxRatio = 1032;

// Refuses a header that declares more than kMaxImagePixels, before anything
// of that size is allocated (by us or by libjpeg's whole-image buffers).
void require_plausible_size(std::uint64_t width, std::uint64_t height, const std::string& name, const char* format) {
  if (width * height > kMaxImagePixels)
    throw InputError(name + ": bad " + format + ": the header declares " + std::to_string(width) + "x" +
                     std::to_string(height) + " pixels, more than the " + std::to_string(kMaxImagePixels) +
                     " an image may have");
}

// ---- PNG ------------------------------------------------------------------

struct PngContext {
  std::jmp_buf jump;
  char message[kMessageSize] = {};
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
  std::size_t position = 0;
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  std::uint64_t stored_row_bytes = 0;  // one scanline as stored, before the transforms
  int channels = 0;                    // after the transforms: 1 or 3
  png_bytep* rows = nullptr;           // height pointers into the caller's buffer
};

extern "C" void png_error_to_context(png_structp png, png_const_charp message) {
  auto* context = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(context->message, kMessageSize, "%s", message);
  std::longjmp(context->jump, 1);
}

extern "C" void png_ignore_warning(png_structp /*png*/, png_const_charp /*message*/) {}

extern "C" void png_read_from_memory(png_structp png, png_bytep out, png_size_t count) {
  auto* context = static_cast<PngContext*>(png_get_io_ptr(png));
  if (context->size - context->position < count) png_error(png, "the file ends early (truncated PNG)");
  std::memcpy(out, context->data + context->position, count);
  context->position += count;
}

// Phase 1 reads the header and sets up the transforms; phase 2 (rows set)
// reads the pixels. Returns false with context->message set on error.
bool png_decode(PngContext* context, bool read_rows) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, context, png_error_to_context, png_ignore_warning);
  if (png == nullptr) {
    std::snprintf(context->message, kMessageSize, "libpng could not start");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(context->message, kMessageSize, "libpng could not start");
    return false;
  }
  if (setjmp(context->jump) != 0) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  context->position = 0;
  png_set_read_fn(png, context, png_read_from_memory);
  png_read_info(png, info);
  context->stored_row_bytes = png_get_rowbytes(png, info);
  const int color = png_get_color_type(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_set_strip_16(png);
  if ((color & PNG_COLOR_MASK_ALPHA) != 0) png_set_strip_alpha(png);
  // tRNS transparency is never expanded to alpha, so it is dropped too.
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  context->width = png_get_image_width(png, info);
  context->height = png_get_image_height(png, info);
  context->channels = png_get_channels(png, info);
  if (read_rows) {
    png_read_image(png, context->rows);
    png_read_end(png, nullptr);
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

InterleavedImage decode_png(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  PngContext context;
  context.data = bytes.data();
  context.size = bytes.size();
  if (!png_decode(&context, false)) throw InputError(name + ": bad PNG: " + context.message);
  require_plausible_size(context.width, context.height, name, "PNG");
  // A short file that declares a large image is caught here, before its
  // pixels are allocated (the fuzzer's 100-byte "8000x8000" PNGs).
  const std::uint64_t stored_bytes = std::uint64_t{context.height} * (context.stored_row_bytes + 1);
  if (stored_bytes > kDeflateMaxRatio * bytes.size())
    throw InputError(name + ": bad PNG: the header declares " + std::to_string(context.width) + "x" +
                     std::to_string(context.height) + " pixels (" + std::to_string(stored_bytes) +
                     " bytes of scanlines), more than a " + std::to_string(bytes.size()) +
                     "-byte file can hold; the file is truncated or corrupt");
  if (context.channels != 1 && context.channels != 3)
    throw InputError(name + ": bad PNG: expected grey or RGB after the transforms, found " +
                     std::to_string(context.channels) + " channels");
  InterleavedImage image{static_cast<int>(context.width), static_cast<int>(context.height), context.channels, {}};
  const std::size_t stride = static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.channels);
  image.pixels.resize(stride * static_cast<std::size_t>(image.height));
  std::vector<png_bytep> rows(static_cast<std::size_t>(image.height));
  for (std::size_t y = 0; y < rows.size(); ++y) rows[y] = image.pixels.data() + y * stride;
  context.rows = rows.data();
  context.message[0] = '\0';
  if (!png_decode(&context, true)) throw InputError(name + ": bad PNG: " + context.message);
  return image;
}

// ---- JPEG -----------------------------------------------------------------

struct JpegContext {
  jpeg_error_mgr manager;  // first: libjpeg hands us a pointer to it
  std::jmp_buf jump;
  char message[kMessageSize] = {};
  bool cmyk = false;
  int width = 0;
  int height = 0;
  int channels = 0;
  std::uint8_t* pixels = nullptr;  // caller's buffer, set for phase 2
};

extern "C" void jpeg_error_to_context(j_common_ptr info) {
  auto* context = reinterpret_cast<JpegContext*>(info->err);
  (*info->err->format_message)(info, context->message);
  std::longjmp(context->jump, 1);
}

// Level -1 is a warning about corrupt data (a truncated file is one): an
// error here, rather than an image silently padded with grey.
extern "C" void jpeg_warning_to_context(j_common_ptr info, int level) {
  if (level == -1) jpeg_error_to_context(info);
}

bool jpeg_decode(JpegContext* context, const std::uint8_t* data, std::size_t size, bool read_pixels) {
  jpeg_decompress_struct info;
  info.err = jpeg_std_error(&context->manager);
  context->manager.error_exit = jpeg_error_to_context;
  context->manager.emit_message = jpeg_warning_to_context;
  if (setjmp(context->jump) != 0) {
    jpeg_destroy_decompress(&info);
    return false;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, data, static_cast<unsigned long>(size));
  jpeg_read_header(&info, TRUE);
  if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
    context->cmyk = true;
    jpeg_destroy_decompress(&info);
    return true;
  }
  // jpeg_start_decompress allocates whole-image buffers for progressive files:
  // a header over kMaxImagePixels stops here and decode_jpeg refuses it.
  if (std::uint64_t{info.image_width} * info.image_height > kMaxImagePixels) {
    context->width = static_cast<int>(info.image_width);
    context->height = static_cast<int>(info.image_height);
    jpeg_destroy_decompress(&info);
    return true;
  }
  info.out_color_space = info.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&info);
  context->width = static_cast<int>(info.output_width);
  context->height = static_cast<int>(info.output_height);
  context->channels = info.output_components;
  if (read_pixels) {
    const std::size_t stride = static_cast<std::size_t>(context->width) * static_cast<std::size_t>(context->channels);
    while (info.output_scanline < info.output_height) {
      JSAMPROW row = context->pixels + static_cast<std::size_t>(info.output_scanline) * stride;
      jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
  }
  jpeg_destroy_decompress(&info);
  return true;
}

InterleavedImage decode_jpeg(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  JpegContext context;
  if (!jpeg_decode(&context, bytes.data(), bytes.size(), false))
    throw InputError(name + ": bad JPEG: " + context.message);
  if (context.cmyk)
    throw InputError(name + ": CMYK/YCCK JPEG is not supported (expected a grey or colour JPEG); convert it to RGB");
  require_plausible_size(static_cast<std::uint64_t>(context.width), static_cast<std::uint64_t>(context.height), name,
                         "JPEG");
  InterleavedImage image{context.width, context.height, context.channels, {}};
  image.pixels.resize(static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height) *
                      static_cast<std::size_t>(image.channels));
  context.pixels = image.pixels.data();
  if (!jpeg_decode(&context, bytes.data(), bytes.size(), true))
    throw InputError(name + ": bad JPEG: " + context.message);
  return image;
}

// ---- Resize ---------------------------------------------------------------

struct Tap {
  int source;
  float weight;
};

// For each of `out_size` outputs, the source pixels and weights that make it,
// over the source span [offset, offset + span) of a `source_size` axis.
std::vector<std::vector<Tap>> resample_taps(int source_size, double offset, double span, int out_size) {
  std::vector<std::vector<Tap>> taps(static_cast<std::size_t>(out_size));
  const double scale = span / out_size;
  for (int o = 0; o < out_size; ++o) {
    auto& list = taps[static_cast<std::size_t>(o)];
    if (scale > 1.0) {  // area averaging: the coverage of each source pixel
      const double begin = offset + o * scale;
      const double end = begin + scale;
      for (int s = static_cast<int>(std::floor(begin)); s < static_cast<int>(std::ceil(end)); ++s) {
        const double covered = std::min<double>(end, s + 1) - std::max<double>(begin, s);
        if (covered > 0) list.push_back({std::clamp(s, 0, source_size - 1), static_cast<float>(covered / scale)});
      }
    } else {  // bilinear between the two nearest source centres
      const double centre = offset + (o + 0.5) * scale - 0.5;
      const int left = static_cast<int>(std::floor(centre));
      const auto right_weight = static_cast<float>(centre - left);
      list.push_back({std::clamp(left, 0, source_size - 1), 1.0F - right_weight});
      list.push_back({std::clamp(left + 1, 0, source_size - 1), right_weight});
    }
  }
  return taps;
}

}  // namespace

InterleavedImage decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  static const std::uint8_t kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() >= sizeof kPng && std::equal(std::begin(kPng), std::end(kPng), bytes.begin()))
    return decode_png(bytes, name);
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return decode_jpeg(bytes, name);
  throw InputError(name + ": expected a PNG or JPEG file, found neither signature (" + std::to_string(bytes.size()) +
                   " bytes)");
}

void resize_to_target(const InterleavedImage& image, const DecodeTarget& target, std::uint8_t* out) {
  const auto width = static_cast<std::size_t>(image.width);
  const auto height = static_cast<std::size_t>(image.height);
  const auto pixel_count = width * height;
  // Planar float source in the target's channel count.
  std::vector<float> planes(static_cast<std::size_t>(target.channels) * pixel_count);
  const std::uint8_t* p = image.pixels.data();
  for (std::size_t i = 0; i < pixel_count; ++i) {
    const auto c = static_cast<std::size_t>(image.channels);
    if (target.channels == 1) {
      planes[i] = c == 1 ? p[i] : 0.299F * p[i * c] + 0.587F * p[i * c + 1] + 0.114F * p[i * c + 2];
    } else {
      for (std::size_t k = 0; k < 3; ++k) planes[k * pixel_count + i] = p[i * c + (c == 1 ? 0 : k)];
    }
  }
  const int side = std::min(image.width, image.height);
  const auto columns = resample_taps(image.width, (image.width - side) / 2.0, side, target.size);
  const auto rows = resample_taps(image.height, (image.height - side) / 2.0, side, target.size);
  const auto size = static_cast<std::size_t>(target.size);
  std::vector<float> horizontal(height * size);
  for (int ch = 0; ch < target.channels; ++ch) {
    const float* plane = planes.data() + static_cast<std::size_t>(ch) * pixel_count;
    for (std::size_t y = 0; y < height; ++y)
      for (std::size_t x = 0; x < size; ++x) {
        float sum = 0;
        for (const Tap& t : columns[x]) sum += t.weight * plane[y * width + static_cast<std::size_t>(t.source)];
        horizontal[y * size + x] = sum;
      }
    std::uint8_t* target_plane = out + static_cast<std::size_t>(ch) * size * size;
    for (std::size_t y = 0; y < size; ++y)
      for (std::size_t x = 0; x < size; ++x) {
        float sum = 0;
        for (const Tap& t : rows[y]) sum += t.weight * horizontal[static_cast<std::size_t>(t.source) * size + x];
        target_plane[y * size + x] = static_cast<std::uint8_t>(std::clamp(std::lround(sum), 0L, 255L));
      }
  }
}

void decode_image_file(const std::filesystem::path& file, const DecodeTarget& target, std::uint8_t* out) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(file.string() + ": cannot open the image file");
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const InterleavedImage image = decode_image(bytes, file.string());
  if (image.width <= 0 || image.height <= 0) throw InputError(file.string() + ": the image has no pixels");
  resize_to_target(image, target, out);
}

}  // namespace pretext::data
