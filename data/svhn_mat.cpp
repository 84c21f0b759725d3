// SVHN "cropped digits" loader: train_32x32.mat, test_32x32.mat, extra_32x32.mat.
//
// The published files are MATLAB v5 (zlib-compressed elements); matio also
// opens v7.3 (HDF5) files, so re-saved copies work too.
#include <matio.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "data/image_set.hpp"
#include "data/mat_v5_check.hpp"
#include "common/errors.hpp"

namespace pretext::data {
namespace {

namespace fs = std::filesystem;

constexpr int kSide = 32;
constexpr int kChannels = 3;
constexpr std::size_t kPlaneSize = static_cast<std::size_t>(kSide) * kSide;
constexpr std::size_t kImageSize = kPlaneSize * kChannels;
constexpr std::size_t kMatHeaderSize = 128;
// zlib's deflate (v5 and the usual v7.3 filter) never compresses better.
constexpr std::size_t kDeflateMaxRatio = 1032;

struct MatFileCloser {
  void operator()(mat_t* mat) const noexcept { Mat_Close(mat); }
};
struct MatVarFreer {
  void operator()(matvar_t* var) const noexcept { Mat_VarFree(var); }
};
using MatFile = std::unique_ptr<mat_t, MatFileCloser>;
using MatVar = std::unique_ptr<matvar_t, MatVarFreer>;

[[noreturn]] void fail(const fs::path& file, const std::string& what) { throw InputError(file.string() + ": " + what); }

// matio treats an empty file or a directory as a valid MATLAB v4 file, so the
// obvious problems are caught here where the message can say what is wrong.
// The header is checked here too: given anything but a v5 or v7.3 header,
// Mat_Open tries MATLAB v4 and allocates whatever name length the first bytes
// declare (the fuzzer: 1.3 GB for a 306-byte file). Returns the version.
mat_ft require_v5_or_v73_header(const fs::path& file) {
  std::error_code ec;
  const auto status = fs::status(file, ec);
  if (!fs::exists(status)) fail(file, "SVHN .mat file not found");
  if (!fs::is_regular_file(status))
    fail(file, "expected an SVHN .mat file, found something that is not a regular file");
  const auto size = fs::file_size(file, ec);
  if (ec) fail(file, "cannot read the file size: " + ec.message());
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "cannot open the file for reading: " + std::string(std::strerror(errno)));
  if (size < kMatHeaderSize) {
    fail(file, "not a MAT file: expected at least a " + std::to_string(kMatHeaderSize) + "-byte header, found " +
                   std::to_string(size) + " bytes");
  }
  unsigned char header[kMatHeaderSize];
  if (!in.read(reinterpret_cast<char*>(header), sizeof header)) fail(file, "cannot read the 128-byte MAT header");
  // Bytes 124-127: the version, then 'MI', both 16-bit in the writer's byte order.
  const bool big_endian = header[126] == 'M' && header[127] == 'I';
  const bool little_endian = header[126] == 'I' && header[127] == 'M';
  const unsigned version = big_endian ? (header[124] << 8 | header[125]) : (header[125] << 8 | header[124]);
  if ((big_endian || little_endian) && version == 0x0100) return MAT_FT_MAT5;
  if ((big_endian || little_endian) && version == 0x0200) return MAT_FT_MAT73;
  fail(file,
       "not a MAT file: expected a MATLAB v5 or v7.3 header (version 0x0100 or 0x0200, then 'MI', at byte "
       "124), found a v4 file or not a MAT file at all");
}

std::string variable_names(mat_t* mat) {
  std::size_t count = 0;
  char** names = Mat_GetDir(mat, &count);  // owned by mat
  if (names == nullptr || count == 0) return "none; the file may be truncated or corrupt";
  std::string joined;
  for (std::size_t i = 0; i < count; ++i) {
    if (!joined.empty()) joined += ", ";
    joined += names[i] != nullptr ? names[i] : "?";
  }
  return joined;
}

MatVar require_variable_info(mat_t* mat, const fs::path& file, const char* name) {
  MatVar info(Mat_VarReadInfo(mat, name));
  if (!info) {
    fail(file, std::string("expected an SVHN variable '") + name +
                   "', found no such variable (variables: " + variable_names(mat) + ")");
  }
  return info;
}

std::string class_name(matio_classes class_type) {
  switch (class_type) {
    case MAT_C_DOUBLE:
      return "double";
    case MAT_C_SINGLE:
      return "single";
    case MAT_C_INT8:
      return "int8";
    case MAT_C_UINT8:
      return "uint8";
    case MAT_C_INT16:
      return "int16";
    case MAT_C_UINT16:
      return "uint16";
    case MAT_C_INT32:
      return "int32";
    case MAT_C_UINT32:
      return "uint32";
    case MAT_C_INT64:
      return "int64";
    case MAT_C_UINT64:
      return "uint64";
    case MAT_C_CHAR:
      return "char";
    case MAT_C_CELL:
      return "cell";
    case MAT_C_STRUCT:
      return "struct";
    case MAT_C_SPARSE:
      return "sparse";
    default:
      return "class " + std::to_string(static_cast<int>(class_type));
  }
}

std::string dims_text(const matvar_t& var) {
  std::string text;
  for (int d = 0; d < var.rank; ++d) text += (d > 0 ? "x" : "") + std::to_string(var.dims[d]);
  return text.empty() ? "empty" : text;
}

std::size_t element_count(const matvar_t& var) {
  std::size_t count = var.rank > 0 ? 1 : 0;
  for (int d = 0; d < var.rank; ++d) count *= var.dims[d];
  return count;
}

/// Validates X and returns the number of images it holds.
std::size_t require_svhn_images(const matvar_t& x, const fs::path& file) {
  std::error_code ec;
  const std::size_t file_size = fs::file_size(file, ec);
  if (x.class_type != MAT_C_UINT8 || x.isComplex) {
    fail(file,
         "expected X to be real uint8, found " + std::string(x.isComplex ? "complex " : "") + class_name(x.class_type));
  }
  const bool leading_dims_ok = x.rank >= 3 && x.dims[0] == kSide && x.dims[1] == kSide && x.dims[2] == kChannels;
  // MATLAB drops trailing singleton dimensions, so a one-image X is 32x32x3.
  if (!leading_dims_ok || x.rank > 4) fail(file, "expected X to be 32x32x3xN, found " + dims_text(x));
  const std::size_t count = x.rank == 4 ? x.dims[3] : 1;
  if (count == 0) fail(file, "expected at least one image, found no images (X is " + dims_text(x) + ")");
  // Checked before anything of that size is allocated, ours or matio's (for y).
  if (ec || count > kDeflateMaxRatio * file_size / kImageSize)
    fail(file, "X declares " + std::to_string(count) + " images (" + dims_text(x) + "), more than a " +
                   std::to_string(file_size) + "-byte file can hold even compressed; the file is truncated or corrupt");
  return count;
}

template <typename T>
double element_as_double(const void* data, std::size_t i) {
  return static_cast<double>(static_cast<const T*>(data)[i]);
}

double numeric_element(const matvar_t& var, std::size_t i) {
  switch (var.class_type) {
    case MAT_C_DOUBLE:
      return element_as_double<double>(var.data, i);
    case MAT_C_SINGLE:
      return element_as_double<float>(var.data, i);
    case MAT_C_INT8:
      return element_as_double<std::int8_t>(var.data, i);
    case MAT_C_UINT8:
      return element_as_double<std::uint8_t>(var.data, i);
    case MAT_C_INT16:
      return element_as_double<std::int16_t>(var.data, i);
    case MAT_C_UINT16:
      return element_as_double<std::uint16_t>(var.data, i);
    case MAT_C_INT32:
      return element_as_double<std::int32_t>(var.data, i);
    case MAT_C_UINT32:
      return element_as_double<std::uint32_t>(var.data, i);
    case MAT_C_INT64:
      return element_as_double<std::int64_t>(var.data, i);
    case MAT_C_UINT64:
      return element_as_double<std::uint64_t>(var.data, i);
    default:
      return std::nan("");
  }
}

bool is_real_numeric(const matvar_t& var) {
  switch (var.class_type) {
    case MAT_C_DOUBLE:
    case MAT_C_SINGLE:
    case MAT_C_INT8:
    case MAT_C_UINT8:
    case MAT_C_INT16:
    case MAT_C_UINT16:
    case MAT_C_INT32:
    case MAT_C_UINT32:
    case MAT_C_INT64:
    case MAT_C_UINT64:
      return !var.isComplex;
    default:
      return false;
  }
}

/// Reads y (labels 1..10, 10 meaning digit 0) and returns digits 0..9.
std::vector<Label> read_svhn_labels(mat_t* mat, const fs::path& file, std::size_t image_count) {
  const MatVar info = require_variable_info(mat, file, "y");
  if (!is_real_numeric(*info)) {
    fail(file, "expected y to be a real numeric vector, found " + std::string(info->isComplex ? "complex " : "") +
                   class_name(info->class_type));
  }
  const std::size_t count = element_count(*info);
  if (count != image_count) {
    fail(file, "expected y to hold " + std::to_string(image_count) + " labels (one per image in X), found " +
                   std::to_string(count) + " (y is " + dims_text(*info) + ")");
  }
  const MatVar y(Mat_VarRead(mat, "y"));
  if (!y || y->data == nullptr) fail(file, "cannot read the data of y; the file may be corrupt");

  std::vector<Label> labels(count);
  for (std::size_t i = 0; i < count; ++i) {
    const double value = numeric_element(*y, i);
    if (!(value >= 1.0 && value <= 10.0) || value != std::floor(value)) {
      std::ostringstream text;
      text << "expected every label in y to be an integer 1..10 (10 meaning digit 0), found " << value << " at index "
           << i << " (0-based)";
      fail(file, text.str());
    }
    labels[i] = static_cast<Label>(value) % 10;
  }
  return labels;
}

/// Reads X into a caller-owned buffer in MATLAB (column-major) order. Reading
/// into our own buffer instead of letting Mat_VarRead allocate keeps the peak
/// at one copy of the pixels (1.6 GB for extra_32x32.mat).
std::vector<std::uint8_t> read_pixels_column_major(mat_t* mat, matvar_t& x, std::size_t image_count,
                                                   const fs::path& file) {
  std::vector<std::uint8_t> pixels(image_count * kImageSize);
  int status = 0;
  if (pixels.size() <= static_cast<std::size_t>(INT_MAX)) {
    if (Mat_GetVersion(mat) == MAT_FT_MAT73) {
      // HDF5 reads a hyperslab in one call; its linear read goes element by element.
      int start[4] = {0, 0, 0, 0};
      int stride[4] = {1, 1, 1, 1};
      int edge[4] = {kSide, kSide, kChannels, static_cast<int>(image_count)};
      status = Mat_VarReadData(mat, &x, pixels.data(), start, stride, edge);
    } else {
      // For v5 the linear read is one pass; the hyperslab read goes column by column.
      status = Mat_VarReadDataLinear(mat, &x, pixels.data(), 0, 1, static_cast<int>(pixels.size()));
    }
  } else {
    // matio's partial reads take int offsets; past 2^31 bytes let it allocate.
    const MatVar whole(Mat_VarRead(mat, "X"));
    if (!whole || whole->data == nullptr || whole->nbytes < pixels.size()) {
      status = -1;
    } else {
      std::memcpy(pixels.data(), whole->data, pixels.size());
    }
  }
  if (status != 0) {
    fail(file, "cannot read the pixel data of X (matio status " + std::to_string(status) +
                   "); the file may be truncated or corrupt");
  }
  return pixels;
}

// Column-major 32x32 planes become row-major ones: a square transpose, done
// in place so no second copy of the data set is needed.
void transpose_planes_in_place(std::vector<std::uint8_t>& pixels) {
  for (std::size_t base = 0; base < pixels.size(); base += kPlaneSize) {
    std::uint8_t* plane = pixels.data() + base;
    for (std::size_t r = 0; r < kSide; ++r) {
      for (std::size_t c = r + 1; c < kSide; ++c) std::swap(plane[r + kSide * c], plane[c + kSide * r]);
    }
  }
}

}  // namespace

ImageSet load_svhn_mat(const std::filesystem::path& file) {
  const mat_ft version = require_v5_or_v73_header(file);
  if (version == MAT_FT_MAT5) require_well_formed_mat_v5(file);
  const MatFile mat(Mat_Open(file.c_str(), MAT_ACC_RDONLY));
  if (!mat) fail(file, "not a MAT file: matio cannot open it as MATLAB v5 or v7.3");
  if (Mat_GetVersion(mat.get()) != version) fail(file, "not a MAT file: matio reads it as another MAT version");

  // Check everything cheap before reading hundreds of megabytes of pixels.
  const MatVar x_info = require_variable_info(mat.get(), file, "X");
  const std::size_t image_count = require_svhn_images(*x_info, file);
  std::vector<Label> labels = read_svhn_labels(mat.get(), file, image_count);

  ImageSet set;
  set.shape = ImageShape{kChannels, kSide, kSide};
  set.pixels = read_pixels_column_major(mat.get(), *x_info, image_count, file);
  transpose_planes_in_place(set.pixels);
  set.labels = std::move(labels);
  set.origin = file.string();
  return set;
}

}  // namespace pretext::data
