#include "bench/bench_support.hpp"

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include <png.h>

#include "pretext/image_ops.hpp"

namespace pretext::bench {

data::ImageSet synthetic_images(std::size_t count) {
  data::ImageSet set;
  set.shape = {3, 32, 32};
  set.origin = "synthetic";
  set.pixels.resize(count * set.shape.numel());
  set.labels.resize(count);
  SampleRng rng(42, 0, count, 0, 0);
  std::size_t i = 0;
  for (; i + 8 <= set.pixels.size(); i += 8) {
    const std::uint64_t word = rng.next();
    for (int b = 0; b < 8; ++b) set.pixels[i + b] = static_cast<std::uint8_t>(word >> (8 * b));
  }
  for (; i < set.pixels.size(); ++i) set.pixels[i] = static_cast<std::uint8_t>(rng.next());
  for (std::size_t k = 0; k < count; ++k) set.labels[k] = static_cast<pretext::data::Label>(k % 10);
  return set;
}

void RotationViews::make_views(ConstImageView image, std::int64_t /*source_label*/, SampleRng& /*rng*/,
                               const ViewSlots& views) const {
  for (int k = 0; k < 4; ++k) {
    ops::rotate90(image, views.view(k), k);
    views.set_label(k, k);
  }
}

double FixedOptions::number(std::string_view key, double fallback, double, double, std::string_view) {
  const auto it = numbers_.find(std::string(key));
  return it == numbers_.end() ? fallback : it->second;
}

void FixedOptions::fail(std::string_view key, std::string_view expected) {
  throw std::invalid_argument("bench option " + std::string(key) + ": expected " + std::string(expected));
}

namespace {
// Only C objects live in this frame: libpng reports errors by longjmp.
bool write_png_rows(FILE* file, int width, int height, png_bytep* rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png)) != 0) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}
}  // namespace

void write_rgb_png(const std::filesystem::path& file, const data::ImageSet& set, std::size_t i) {
  const ImageShape s = set.shape;
  const std::uint8_t* planar = set.image(i);
  std::vector<std::uint8_t> interleaved(s.numel());
  for (std::size_t p = 0; p < s.plane_size(); ++p)
    for (int c = 0; c < s.channels; ++c)
      interleaved[p * s.channels + c] = planar[static_cast<std::size_t>(c) * s.plane_size() + p];
  std::vector<png_bytep> rows;
  for (int y = 0; y < s.height; ++y)
    rows.push_back(interleaved.data() + static_cast<std::size_t>(y) * s.width * s.channels);
  FILE* out = std::fopen(file.c_str(), "wb");
  if (out == nullptr) throw std::runtime_error("cannot write " + file.string());
  const bool ok = write_png_rows(out, s.width, s.height, rows.data());
  std::fclose(out);
  if (!ok) throw std::runtime_error("libpng could not write " + file.string());
}

long proc_status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

JsonRow& JsonRow::add(const std::string& key, const std::string& value) {
  body_ += (body_.empty() ? "" : ", ") + ("\"" + key + "\": \"" + value + "\"");
  return *this;
}

JsonRow& JsonRow::add(const std::string& key, double value) {
  char buffer[64];
  if (std::isfinite(value))
    std::snprintf(buffer, sizeof buffer, "%.6g", value);
  else
    std::snprintf(buffer, sizeof buffer, "null");
  body_ += (body_.empty() ? "" : ", ") + ("\"" + key + "\": " + buffer);
  return *this;
}

JsonRow& JsonRow::add(const std::string& key, long long value) {
  body_ += (body_.empty() ? "" : ", ") + ("\"" + key + "\": " + std::to_string(value));
  return *this;
}

void JsonRow::print() const {
  std::printf("{%s}\n", body_.c_str());
  std::fflush(stdout);
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace pretext::bench
