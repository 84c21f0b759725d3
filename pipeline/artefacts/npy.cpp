#include "pipeline/artefacts/npy.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string_view>

#include "common/errors.hpp"
#include "common/atomic_file.hpp"

// The element bytes are copied as they are in memory, and .npy says '<'.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy.cpp writes host-order bytes as little-endian");

namespace pretext::artefacts {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr std::size_t kAlignment = 64;  // numpy aligns the data so it can be memory-mapped

const char* descr(NpyType type) { return type == NpyType::float32 ? "<f4" : "<i8"; }
std::size_t item_size(NpyType type) { return type == NpyType::float32 ? 4 : 8; }

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

std::int64_t element_count(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape) {
    if (d < 0) throw std::invalid_argument("npy: negative dimension in shape " + shape_text(shape));
    if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d)
      throw std::invalid_argument("npy: shape " + shape_text(shape) + " is too large");
    n *= d;
  }
  return n;
}

void write_array(const fs::path& path, NpyType type, const void* data, const std::vector<std::int64_t>& shape) {
  const std::string header = npy_header(type, shape);
  const auto bytes = static_cast<std::streamsize>(element_count(shape) * static_cast<std::int64_t>(item_size(type)));
  AtomicFile out(path);
  out.append(header.data(), header.size());
  out.append(data, static_cast<std::size_t>(bytes));
  out.commit();
}

/// The subset of Python literal syntax numpy writes in a header dict.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const fs::path& file) : text_(text), file_(file) {}

  NpyArray parse() {
    NpyArray array;
    bool has_descr = false, has_order = false, has_shape = false;
    expect('{');
    while (!consume('}')) {
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        const std::string d = string_literal();
        if (d == "<f4") {
          array.type = NpyType::float32;
        } else if (d == "<i8") {
          array.type = NpyType::int64;
        } else {
          fail("expected dtype '<f4' (float32) or '<i8' (int64), found '" + d + "'");
        }
        has_descr = true;
      } else if (key == "fortran_order") {
        if (word() != "False") fail("expected 'fortran_order': False (C order); Fortran order is not supported");
        has_order = true;
      } else if (key == "shape") {
        array.shape = tuple();
        has_shape = true;
      } else {
        fail("unexpected key '" + key + "' in the header (expected descr, fortran_order and shape)");
      }
      if (!consume(',')) {
        expect('}');
        break;
      }
    }
    if (!has_descr || !has_order || !has_shape) fail("the header lacks one of 'descr', 'fortran_order', 'shape'");
    return array;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(file_.string() + ": " + what + " (header: " + std::string(text_) + ")");
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t')) ++pos_;
  }
  bool consume(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!consume(c)) fail(std::string("malformed header dict: expected '") + c + "' at offset " + std::to_string(pos_));
  }
  std::string string_literal() {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"'))
      fail("malformed header dict: expected a quoted string at offset " + std::to_string(pos_));
    const char quote = text_[pos_++];
    const auto end = text_.find(quote, pos_);
    if (end == std::string_view::npos) fail("malformed header dict: unterminated string");
    std::string s(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }
  std::string word() {
    skip_space();
    const auto start = pos_;
    while (pos_ < text_.size() && std::isalpha(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }
  std::vector<std::int64_t> tuple() {
    std::vector<std::int64_t> dims;
    expect('(');
    while (!consume(')')) {
      skip_space();
      const auto start = pos_;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
      if (pos_ == start || pos_ - start > 18) fail("expected the shape as a tuple of non-negative integers");
      dims.push_back(std::stoll(std::string(text_.substr(start, pos_ - start))));
      if (!consume(',')) {
        expect(')');
        break;
      }
    }
    return dims;
  }

  std::string_view text_;
  const fs::path& file_;
  std::size_t pos_ = 0;
};

}  // namespace

std::int64_t NpyArray::size() const { return element_count(shape); }

std::string npy_header(NpyType type, const std::vector<std::int64_t>& shape) {
  std::string dict =
      std::string("{'descr': '") + descr(type) + "', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
  const std::size_t prefix = kMagic.size() + 2 + 2;       // magic, version, header length
  const std::size_t unpadded = prefix + dict.size() + 1;  // + '\n'
  dict.append((kAlignment - unpadded % kAlignment) % kAlignment, ' ');
  dict += '\n';
  if (dict.size() > std::numeric_limits<std::uint16_t>::max())
    throw std::invalid_argument("npy: header for shape " + shape_text(shape) + " does not fit format 1.0");
  std::string out(kMagic);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xFF);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict;
}

void write_npy(const fs::path& path, const float* data, const std::vector<std::int64_t>& shape) {
  write_array(path, NpyType::float32, data, shape);
}

void write_npy(const fs::path& path, const std::int64_t* data, const std::vector<std::int64_t>& shape) {
  write_array(path, NpyType::int64, data, shape);
}

NpyArray read_npy(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string() + ": cannot open the .npy file: " + std::strerror(errno));
  char prefix[8] = {};
  in.read(prefix, sizeof prefix);
  if (in.gcount() < static_cast<std::streamsize>(sizeof prefix) || std::string_view(prefix, 6) != kMagic)
    throw InputError(path.string() + ": not a .npy file (expected the magic \\x93NUMPY at the start)");
  const int major = static_cast<unsigned char>(prefix[6]);
  if ((major != 1 && major != 2) || prefix[7] != 0)
    throw InputError(path.string() + ": unsupported .npy version " + std::to_string(major) + "." +
                     std::to_string(static_cast<unsigned char>(prefix[7])) + " (expected 1.0 or 2.0)");
  unsigned char length_bytes[4] = {};
  const std::size_t length_size = major == 1 ? 2 : 4;
  in.read(reinterpret_cast<char*>(length_bytes), static_cast<std::streamsize>(length_size));
  std::size_t header_length = 0;
  for (std::size_t i = length_size; i-- > 0;) header_length = (header_length << 8) | length_bytes[i];
  std::string header(header_length, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_length));
  if (!in || header.empty() || header.back() != '\n')
    throw InputError(path.string() + ": truncated .npy header (expected " + std::to_string(header_length) +
                     " bytes ending in a newline)");

  NpyArray array = HeaderParser(header, path).parse();
  std::int64_t count = 0;
  try {
    count = array.size();
  } catch (const std::invalid_argument& e) {
    throw InputError(path.string() + ": " + e.what());
  }
  const auto data_start = static_cast<std::uintmax_t>(sizeof prefix + length_size + header_length);
  const std::uintmax_t data_bytes = fs::file_size(path) - data_start;
  const auto expected = static_cast<std::uintmax_t>(count) * item_size(array.type);
  if (data_bytes != expected)
    throw InputError(path.string() + ": the header declares shape " + shape_text(array.shape) + " of " +
                     descr(array.type) + ", so expected " + std::to_string(expected) + " bytes of data, found " +
                     std::to_string(data_bytes) + (data_bytes < expected ? " (truncated)" : ""));
  char* target = nullptr;
  if (array.type == NpyType::float32) {
    array.floats.resize(static_cast<std::size_t>(count));
    target = reinterpret_cast<char*>(array.floats.data());
  } else {
    array.ints.resize(static_cast<std::size_t>(count));
    target = reinterpret_cast<char*>(array.ints.data());
  }
  in.read(target, static_cast<std::streamsize>(expected));
  if (!in) throw InputError(path.string() + ": cannot read the .npy data");
  return array;
}

}  // namespace pretext::artefacts
