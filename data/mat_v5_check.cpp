#include "data/mat_v5_check.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "common/errors.hpp"

namespace pretext::data {
namespace {

namespace fs = std::filesystem;

// Element types and array classes of the MAT-file format (MathWorks, "MAT-File Format", 2021).
constexpr std::uint32_t kMiInt8 = 1;
constexpr std::uint32_t kMiInt32 = 5;
constexpr std::uint32_t kMiUint32 = 6;
constexpr std::uint32_t kMiMatrix = 14;
constexpr std::uint32_t kMiCompressed = 15;
constexpr std::uint32_t kCharClass = 4;
constexpr std::uint32_t kFirstNumericClass = 6;  // double; 6..15 are the numeric classes
constexpr std::uint32_t kLastNumericClass = 15;  // uint64

constexpr std::uint64_t kTagSize = 8;
constexpr std::uint64_t kMatHeaderSize = 128;
constexpr std::uint64_t kDeflateMaxRatio = 1032;  // zlib's deflate never compresses better
constexpr std::uint32_t kMaxRank = 32;
// A variable's header: flags (16), dims tag and dims (8 + 4 * kMaxRank), name tag (8).
constexpr std::size_t kArrayHeaderBytes = 16 + kTagSize + 4 * kMaxRank + kTagSize;

using Bytes = std::vector<unsigned char>;

/// A variable's bytes in the file's byte order.
class Reader {
 public:
  Reader(const Bytes& bytes, bool big_endian) : bytes_(bytes), big_endian_(big_endian) {}
  [[nodiscard]] bool has(std::uint64_t at, std::uint64_t n) const {
    return at <= bytes_.size() && n <= bytes_.size() - at;
  }
  [[nodiscard]] std::uint32_t u32(std::uint64_t at) const {
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const int shift = big_endian_ ? 8 * (3 - i) : 8 * i;
      value |= static_cast<std::uint32_t>(bytes_[at + static_cast<std::uint64_t>(i)]) << shift;
    }
    return value;
  }

 private:
  const Bytes& bytes_;
  bool big_endian_;
};

/// Reports a problem with the variable at byte `offset`.
class Failure {
 public:
  Failure(const fs::path& file, std::uint64_t offset) : file_(file), offset_(offset) {}
  [[noreturn]] void operator()(const std::string& what) const {
    throw InputError(file_.string() + ": corrupt MAT file: the variable at byte offset " + std::to_string(offset_) +
                     ": " + what);
  }

 private:
  const fs::path& file_;
  std::uint64_t offset_;
};

std::string class_name(std::uint32_t class_id) {
  switch (class_id) {
    case 1:
      return "a cell array";
    case 2:
      return "a struct";
    case 3:
      return "an object";
    case 5:
      return "a sparse array";
    case 16:
      return "a function handle";
    case 17:
      return "an opaque object";
    default:
      return "of unknown class " + std::to_string(class_id);
  }
}

std::string element(const Reader& r, std::uint64_t at) {
  return "type " + std::to_string(r.u32(at)) + " of " + std::to_string(r.u32(at + 4)) + " bytes";
}

/// Checks the header inside a variable of `length` bytes; `content` holds its
/// first bytes (up to kArrayHeaderBytes, fewer only if the data ended).
void check_array_header(const Bytes& content, bool big_endian, std::uint64_t length, const Failure& fail) {
  const Reader r(content, big_endian);
  constexpr std::uint64_t kSmallest = 16 + kTagSize + 8 + kTagSize;  // flags, two dims, a name tag
  if (length < kSmallest)
    fail(std::to_string(length) + " bytes are too few for a variable header (" + std::to_string(kSmallest) + ")");
  if (!r.has(0, kSmallest)) fail("the data ends inside its header");
  if (r.u32(0) != kMiUint32 || r.u32(4) != 8)
    fail("expected array flags (a uint32 element of 8 bytes), found " + element(r, 0));
  const std::uint32_t class_id = r.u32(8) & 0xFFu;
  if (class_id != kCharClass && (class_id < kFirstNumericClass || class_id > kLastNumericClass))
    fail("found " + class_name(class_id) + "; only numeric and char arrays are read (an SVHN file holds X and y)");

  const std::uint32_t dims_bytes = r.u32(20);
  if (r.u32(16) != kMiInt32 || dims_bytes % 4 != 0 || dims_bytes < 8 || dims_bytes > 4 * kMaxRank)
    fail("expected 2 to " + std::to_string(kMaxRank) + " dimensions (an int32 element), found " + element(r, 16));
  const std::uint64_t name_at = 24 + (dims_bytes + 7) / 8 * 8;
  if (name_at + kTagSize > length) fail("its " + std::to_string(length) + " bytes are too few for its header");
  if (!r.has(0, name_at + kTagSize)) fail("the data ends inside its header");
  for (std::uint64_t d = 0; d < dims_bytes / 4; ++d) {
    if (r.u32(24 + 4 * d) > INT32_MAX) fail("a dimension is negative");
  }

  const std::uint32_t name_tag = r.u32(name_at);
  const bool small_format = (name_tag >> 16) != 0;  // type and length packed in 4 bytes
  const std::uint32_t name_type = small_format ? (name_tag & 0xFFFFu) : name_tag;
  const std::uint64_t name_bytes = small_format ? (name_tag >> 16) : r.u32(name_at + 4);
  const std::uint64_t name_room = small_format ? 4 : length - name_at - kTagSize;
  if (name_type != kMiInt8 || name_bytes > name_room)
    fail("expected a name (int8 text) inside its " + std::to_string(length) + " bytes, found type " +
         std::to_string(name_type) + " of " + std::to_string(name_bytes) + " bytes");
}

/// Inflates up to `want` bytes of a compressed element's data, which starts
/// at `data_at` and runs for `compressed` bytes.
Bytes inflate_start(std::ifstream& in, std::uint64_t data_at, std::uint64_t compressed, std::size_t want,
                    const Failure& fail) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) fail("cannot inflate it: zlib could not start");
  Bytes out(want);
  unsigned char chunk[512];
  std::uint64_t left = compressed;
  in.seekg(static_cast<std::streamoff>(data_at));
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(want);
  int status = Z_OK;
  bool read_ok = true;
  while (z.avail_out > 0 && status == Z_OK) {
    if (z.avail_in == 0) {
      if (left == 0) break;
      const auto n = static_cast<std::streamsize>(std::min<std::uint64_t>(left, sizeof chunk));
      if (!in.read(reinterpret_cast<char*>(chunk), n)) {
        read_ok = false;
        break;
      }
      left -= static_cast<std::uint64_t>(n);
      z.next_in = chunk;
      z.avail_in = static_cast<uInt>(n);
    }
    status = inflate(&z, Z_NO_FLUSH);
  }
  const std::string message = z.msg != nullptr ? z.msg : "zlib status " + std::to_string(status);
  out.resize(want - z.avail_out);
  inflateEnd(&z);
  if (!read_ok) fail("cannot read it");
  if (status != Z_OK && status != Z_STREAM_END) fail("cannot inflate it: " + message);
  return out;
}

}  // namespace

void require_well_formed_mat_v5(const fs::path& file) {
  std::error_code ec;
  const std::uint64_t size = fs::file_size(file, ec);
  std::ifstream in(file, std::ios::binary);
  unsigned char header[kMatHeaderSize];
  if (ec || !in.read(reinterpret_cast<char*>(header), sizeof header))
    throw InputError(file.string() + ": cannot read the 128-byte MAT header");
  // The writer stores the 16-bit value 'MI' in its own byte order.
  const bool big_endian = header[126] == 'M' && header[127] == 'I';

  std::uint64_t offset = kMatHeaderSize;
  while (offset < size) {
    if (size - offset < kTagSize) {
      throw InputError(file.string() + ": truncated MAT file: expected an 8-byte element tag at byte offset " +
                       std::to_string(offset) + ", found " + std::to_string(size - offset) + " bytes");
    }
    const Failure fail(file, offset);
    Bytes tag(kTagSize);
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(reinterpret_cast<char*>(tag.data()), kTagSize)) fail("cannot read it");
    const Reader r(tag, big_endian);
    const std::uint32_t type = r.u32(0);
    const std::uint32_t length = r.u32(4);
    // Anything but a (possibly compressed) variable has a layout this walk
    // does not know; leave the judgement to matio.
    if (type != kMiMatrix && type != kMiCompressed) return;
    const std::uint64_t end = offset + kTagSize + length;
    if (end > size) {
      throw InputError(file.string() + ": truncated MAT file: the variable at byte offset " + std::to_string(offset) +
                       " needs " + std::to_string(length) + " bytes, but the file has only " +
                       std::to_string(size - offset - kTagSize) + " after its tag");
    }
    if (type == kMiCompressed) {
      const Bytes inflated = inflate_start(in, offset + kTagSize, length, kTagSize + kArrayHeaderBytes, fail);
      const Reader inner(inflated, big_endian);
      if (!inner.has(0, kTagSize)) fail("the compressed data holds less than an element tag");
      if (inner.u32(0) != kMiMatrix) fail("expected a compressed matrix (type 14), found " + element(inner, 0));
      const std::uint64_t declared = inner.u32(4);
      if (kTagSize + declared > kDeflateMaxRatio * length)
        fail("it declares " + std::to_string(declared) + " bytes, more than its " + std::to_string(length) +
             " compressed bytes can hold");
      check_array_header(Bytes(inflated.begin() + kTagSize, inflated.end()), big_endian, declared, fail);
    } else {
      Bytes content(std::min<std::uint64_t>(length, kArrayHeaderBytes));
      if (!in.read(reinterpret_cast<char*>(content.data()), static_cast<std::streamsize>(content.size())))
        fail("cannot read it");
      check_array_header(content, big_endian, length, fail);
    }
    offset = end;
  }
}

}  // namespace pretext::data
