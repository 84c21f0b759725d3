// IDX loader: the container of MNIST and Fashion-MNIST, gzip-compressed or raw.
//
// A file is a big-endian header (magic, then one uint32 per dimension)
// followed by the data. zlib's gz* functions look for the gzip magic (1f 8b)
// and pass other files through untouched, so one reader serves both forms.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "data/image_set.hpp"
#include "common/errors.hpp"

namespace pretext::data {
namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t kImagesMagic = 0x00000803;  // uint8 elements, 3 dimensions
constexpr std::uint32_t kLabelsMagic = 0x00000801;  // uint8 elements, 1 dimension
constexpr std::size_t kMaxGzReadBytes = 1u << 30;   // gzread's count must fit in an int
// The payload buffer starts small and doubles as data arrives, so memory
// follows the data actually in the file, not what a header claims: with a
// 64 MB first buffer, each 16-byte file declaring a large size cost 64 MB
// of zeroed memory (the fuzzer ran at 30 files/s). Fashion-MNIST's 47 MB
// take six doublings, a few ms next to decompression.
constexpr std::size_t kInitialPayloadBytes = std::size_t{1} << 20;

[[noreturn]] void fail(const fs::path& file, const std::string& what) { throw InputError(file.string() + ": " + what); }

std::string hex32(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08" PRIX32, value);
  return text;
}

std::uint32_t big_endian_u32(const unsigned char* bytes) {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) | (std::uint32_t{bytes[2]} << 8) |
         std::uint32_t{bytes[3]};
}

/// An IDX file opened through zlib, which reads gzip and raw files alike.
class IdxStream {
 public:
  explicit IdxStream(fs::path file) : file_(std::move(file)) {
    std::error_code ec;
    const auto status = fs::status(file_, ec);
    if (!fs::exists(status)) fail(file_, "IDX file not found");
    if (!fs::is_regular_file(status)) fail(file_, "expected an IDX file, found something that is not a regular file");
    errno = 0;
    handle_ = gzopen(file_.c_str(), "rb");
    if (handle_ == nullptr) {
      fail(file_,
           "cannot open the file for reading: " + std::string(errno != 0 ? std::strerror(errno) : "out of memory"));
    }
    gzbuffer(handle_, 1u << 20);
  }
  ~IdxStream() { gzclose(handle_); }
  IdxStream(const IdxStream&) = delete;
  IdxStream& operator=(const IdxStream&) = delete;
  IdxStream(IdxStream&&) = delete;
  IdxStream& operator=(IdxStream&&) = delete;

  [[nodiscard]] const fs::path& path() const { return file_; }

  /// Reads up to `size` bytes; returns fewer only where the data ends.
  std::size_t read_some(std::uint8_t* destination, std::size_t size) {
    std::size_t total = 0;
    while (total < size) {
      const auto request = static_cast<unsigned>(std::min(size - total, kMaxGzReadBytes));
      const int got = gzread(handle_, destination + total, request);
      if (got < 0) fail(file_, "cannot decompress: " + zlib_error() + " (expected a gzip or raw IDX file)");
      if (got == 0) break;
      total += static_cast<std::size_t>(got);
    }
    return total;
  }

  /// Whether zlib saw a gzip stream stop before its end marker and trailer.
  [[nodiscard]] bool ended_early() {
    int code = Z_OK;
    gzerror(handle_, &code);
    return code == Z_BUF_ERROR;
  }

 private:
  std::string zlib_error() {
    int code = Z_OK;
    const char* message = gzerror(handle_, &code);
    if (code == Z_ERRNO) return std::strerror(errno);
    return message != nullptr ? message : "unknown zlib error";
  }

  fs::path file_;
  gzFile handle_ = nullptr;
};

/// Reads the magic and the dimension sizes, checking the magic.
std::vector<std::uint32_t> read_header(IdxStream& stream, std::uint32_t expected_magic, const char* expected_kind) {
  const std::size_t dimension_count = expected_magic & 0xFFu;
  const std::size_t header_bytes = 4 * (1 + dimension_count);
  std::uint8_t header[16] = {};
  const std::size_t got = stream.read_some(header, header_bytes);
  if (got < 4) {
    fail(stream.path(),
         "truncated IDX header: expected " + std::to_string(header_bytes) + " bytes, got " + std::to_string(got));
  }
  const std::uint32_t magic = big_endian_u32(header);
  if (magic != expected_magic) {
    std::string hint;
    if (magic == kImagesMagic) hint = "; this is an IDX image file";
    if (magic == kLabelsMagic) hint = "; this is an IDX label file";
    fail(stream.path(),
         "expected IDX magic " + hex32(expected_magic) + " (" + expected_kind + "), found " + hex32(magic) + hint);
  }
  if (got < header_bytes) {
    fail(stream.path(),
         "truncated IDX header: expected " + std::to_string(header_bytes) + " bytes, got " + std::to_string(got));
  }
  std::vector<std::uint32_t> sizes(dimension_count);
  for (std::size_t d = 0; d < dimension_count; ++d) sizes[d] = big_endian_u32(header + 4 * (d + 1));
  return sizes;
}

/// Reads exactly `expected` bytes of data and checks nothing follows them.
std::vector<std::uint8_t> read_payload(IdxStream& stream, std::size_t expected, const std::string& declared) {
  std::vector<std::uint8_t> data(std::min(expected, kInitialPayloadBytes));
  std::size_t got = 0;
  for (;;) {
    got += stream.read_some(data.data() + got, data.size() - got);
    if (got < data.size() || data.size() == expected) break;
    data.resize(std::min(expected, data.size() * 2));
  }
  if (got < expected) {
    fail(stream.path(), "truncated: the header declares " + declared + ", so expected " + std::to_string(expected) +
                            " bytes of data, got " + std::to_string(got) +
                            (stream.ended_early() ? " (the gzip stream ends early)" : ""));
  }
  std::uint8_t extra = 0;
  if (stream.read_some(&extra, 1) != 0) {
    fail(stream.path(), "the header declares " + declared + " (" + std::to_string(expected) +
                            " bytes of data), but the file holds more data than that");
  }
  if (stream.ended_early()) {
    fail(stream.path(), "truncated gzip stream: the data is complete but the gzip trailer (CRC and length) is missing");
  }
  return data;
}

}  // namespace

ImageSet load_idx(const std::filesystem::path& images, const std::filesystem::path& labels) {
  IdxStream image_stream(images);
  const std::vector<std::uint32_t> image_dims = read_header(image_stream, kImagesMagic, "uint8 images, 3 dimensions");
  const std::uint32_t image_count = image_dims[0];
  const std::uint32_t height = image_dims[1];
  const std::uint32_t width = image_dims[2];
  if (image_count == 0) fail(images, "expected at least one image, found a header declaring 0 images");
  if (height == 0 || width == 0 || height > INT_MAX || width > INT_MAX) {
    fail(images, "expected a positive image size, found " + std::to_string(height) + "x" + std::to_string(width));
  }

  IdxStream label_stream(labels);
  const std::uint32_t label_count = read_header(label_stream, kLabelsMagic, "uint8 labels, 1 dimension")[0];
  if (label_count != image_count) {
    fail(labels, "expected one label per image of " + images.string() + " (" + std::to_string(image_count) +
                     "), found " + std::to_string(label_count) + " labels");
  }

  ImageSet set;
  set.shape = ImageShape{1, static_cast<int>(height), static_cast<int>(width)};
  const std::string declared_images =
      std::to_string(image_count) + " images of " + std::to_string(height) + "x" + std::to_string(width);
  if (set.shape.numel() > SIZE_MAX / image_count)
    fail(images, "the header declares an impossible size: " + declared_images);
  set.pixels = read_payload(image_stream, image_count * set.shape.numel(), declared_images);

  const std::vector<std::uint8_t> raw_labels =
      read_payload(label_stream, label_count, std::to_string(label_count) + " labels");
  set.labels.assign(raw_labels.begin(), raw_labels.end());
  set.origin = images.string() + " with labels " + labels.string();
  return set;
}

ImageSet load_idx_images(const std::filesystem::path& images) {
  IdxStream stream(images);
  const std::vector<std::uint32_t> dims = read_header(stream, kImagesMagic, "uint8 images, 3 dimensions");
  if (dims[0] == 0) fail(images, "expected at least one image, found a header declaring 0 images");
  if (dims[1] == 0 || dims[2] == 0 || dims[1] > INT_MAX || dims[2] > INT_MAX)
    fail(images, "expected a positive image size, found " + std::to_string(dims[1]) + "x" + std::to_string(dims[2]));
  ImageSet set;
  set.shape = ImageShape{1, static_cast<int>(dims[1]), static_cast<int>(dims[2])};
  const std::string declared =
      std::to_string(dims[0]) + " images of " + std::to_string(dims[1]) + "x" + std::to_string(dims[2]);
  if (set.shape.numel() > SIZE_MAX / dims[0]) fail(images, "the header declares an impossible size: " + declared);
  set.pixels = read_payload(stream, dims[0] * set.shape.numel(), declared);
  set.labels.assign(dims[0], -1);
  set.origin = images.string() + " (no labels)";
  return set;
}

std::filesystem::path idx_labels_path_for(const std::filesystem::path& images) {
  static const std::string kImagesTag = "images-idx3";
  static const std::string kLabelsTag = "labels-idx1";
  std::string name = images.filename().string();
  const auto position = name.find(kImagesTag);
  if (position == std::string::npos) {
    fail(images, "expected an IDX image file named like 'train-images-idx3-ubyte.gz' (containing '" + kImagesTag +
                     "') so its label file can be found, found the name '" + name + "'");
  }
  name.replace(position, kImagesTag.size(), kLabelsTag);
  return images.parent_path() / name;
}

}  // namespace pretext::data
