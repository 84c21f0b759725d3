// Tests for the SVHN .mat reader (data/image_set.hpp: load_svhn_mat). Every
// .mat file is written by the test itself, with matio, into a private
// temporary directory.
#include <gtest/gtest.h>
#include <matio.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/image_set.hpp"
#include "common/errors.hpp"
#include "support/loader_test_support.hpp"

namespace fs = std::filesystem;
using pretext::ImageShape;
using pretext::InputError;
using pretext::data::ImageSet;

namespace {

using pretext::testing::expect_input_error;
using pretext::testing::TempDir;
using pretext::testing::truncate_file;
using pretext::testing::write_bytes;

// ---------------------------------------------------------------------------
// SVHN .mat files

/// Writes MAT files with matio, as MATLAB would have.
class MatWriter {
 public:
  MatWriter(const fs::path& file, mat_ft version, matio_compression compression = MAT_COMPRESSION_NONE)
      : mat_(Mat_CreateVer(file.c_str(), nullptr, version)), compression_(compression) {}
  ~MatWriter() {
    if (mat_ != nullptr) Mat_Close(mat_);
  }
  MatWriter(const MatWriter&) = delete;
  MatWriter& operator=(const MatWriter&) = delete;
  MatWriter(MatWriter&&) = delete;
  MatWriter& operator=(MatWriter&&) = delete;

  [[nodiscard]] bool ok() const { return mat_ != nullptr; }

  void add(const char* name, matio_classes class_type, matio_types data_type, std::vector<std::size_t> dims,
           void* data) {
    if (mat_ == nullptr) throw std::runtime_error("MAT file was not created");
    matvar_t* var = Mat_VarCreate(name, class_type, data_type, static_cast<int>(dims.size()), dims.data(), data,
                                  MAT_F_DONT_COPY_DATA);
    if (var == nullptr) throw std::runtime_error(std::string("cannot create variable ") + name);
    const int status = Mat_VarWrite(mat_, var, compression_);
    Mat_VarFree(var);
    if (status != 0) throw std::runtime_error(std::string("cannot write variable ") + name);
  }

 private:
  mat_t* mat_;
  matio_compression compression_;
};

constexpr std::size_t kSvhnImage = std::size_t{32} * 32 * 3;

/// A pixel value that differs under any swap of row/column or channel/image.
std::uint8_t svhn_value(std::size_t r, std::size_t c, std::size_t ch, std::size_t n) {
  return static_cast<std::uint8_t>((r * 7 + c * 13 + ch * 71 + n * 101) & 0xFF);
}

/// X in MATLAB column-major order: (r, c, ch, n) at r + 32c + 1024ch + 3072n.
std::vector<std::uint8_t> svhn_pixels(std::size_t count) {
  std::vector<std::uint8_t> x(count * kSvhnImage);
  for (std::size_t n = 0; n < count; ++n)
    for (std::size_t ch = 0; ch < 3; ++ch)
      for (std::size_t c = 0; c < 32; ++c)
        for (std::size_t r = 0; r < 32; ++r) x[r + 32 * c + 1024 * ch + 3072 * n] = svhn_value(r, c, ch, n);
  return x;
}

/// An SVHN-like file: X 32x32x3xN uint8 and y Nx1 double, like the published ones.
void write_svhn(const fs::path& file, std::vector<double> labels, mat_ft version = MAT_FT_MAT5,
                matio_compression compression = MAT_COMPRESSION_NONE) {
  std::vector<std::uint8_t> x = svhn_pixels(labels.size());
  MatWriter writer(file, version, compression);
  writer.add("X", MAT_C_UINT8, MAT_T_UINT8, {32, 32, 3, labels.size()}, x.data());
  writer.add("y", MAT_C_DOUBLE, MAT_T_DOUBLE, {labels.size(), 1}, labels.data());
}

void expect_svhn_layout(const ImageSet& set, std::size_t count) {
  ASSERT_EQ(set.shape, (ImageShape{3, 32, 32}));
  ASSERT_EQ(set.size(), count);
  ASSERT_EQ(set.pixels.size(), count * kSvhnImage);
  std::size_t mismatches = 0;
  for (std::size_t n = 0; n < count; ++n)
    for (std::size_t ch = 0; ch < 3; ++ch)
      for (std::size_t r = 0; r < 32; ++r)
        for (std::size_t c = 0; c < 32; ++c)
          mismatches += set.pixels[n * 3072 + ch * 1024 + r * 32 + c] != svhn_value(r, c, ch, n);
  EXPECT_EQ(mismatches, 0u);
}

TEST(SvhnMat, ReadsColumnMajorXAsPlanarChwAndLabelTenAsZero) {
  TempDir dir;
  const auto file = dir.file("train_32x32.mat");
  write_svhn(file, {10, 1, 7});

  const ImageSet set = pretext::data::load_svhn_mat(file);
  expect_svhn_layout(set, 3);
  // Spot checks written out by hand: out[n*3072 + ch*1024 + r*32 + c].
  EXPECT_EQ(set.pixels[0], svhn_value(0, 0, 0, 0));
  EXPECT_EQ(set.pixels[1], svhn_value(0, 1, 0, 0));   // next column, not next row
  EXPECT_EQ(set.pixels[32], svhn_value(1, 0, 0, 0));  // next row
  EXPECT_EQ(set.pixels[1 * 3072 + 2 * 1024 + 5 * 32 + 7], svhn_value(5, 7, 2, 1));
  EXPECT_EQ(set.pixels[2 * 3072 + 1 * 1024 + 31 * 32 + 0], svhn_value(31, 0, 1, 2));
  EXPECT_EQ(set.image(2)[3071], svhn_value(31, 31, 2, 2));
  EXPECT_EQ(set.labels, (std::vector<pretext::data::Label>{0, 1, 7}));
  EXPECT_EQ(set.origin, file.string());
}

TEST(SvhnMat, ReadsZlibCompressedV5LikeThePublishedFiles) {
  TempDir dir;
  const auto file = dir.file("test_32x32.mat");
  write_svhn(file, {3, 10, 9, 2}, MAT_FT_MAT5, MAT_COMPRESSION_ZLIB);
  const ImageSet set = pretext::data::load_svhn_mat(file);
  expect_svhn_layout(set, 4);
  EXPECT_EQ(set.labels, (std::vector<pretext::data::Label>{3, 0, 9, 2}));
}

TEST(SvhnMat, ReadsV73HdfFiles) {
  TempDir dir;
  const auto file = dir.file("extra_32x32.mat");
  if (!MatWriter(dir.file("probe.mat"), MAT_FT_MAT73).ok()) GTEST_SKIP() << "matio built without HDF5";
  write_svhn(file, {10, 5}, MAT_FT_MAT73);
  const ImageSet set = pretext::data::load_svhn_mat(file);
  expect_svhn_layout(set, 2);
  EXPECT_EQ(set.labels, (std::vector<pretext::data::Label>{0, 5}));
}

TEST(SvhnMat, ReadsOneImageStoredAs32x32x3) {
  // MATLAB drops trailing singleton dimensions when it saves one image.
  TempDir dir;
  const auto file = dir.file("one.mat");
  std::vector<std::uint8_t> x = svhn_pixels(1);
  double label = 4;
  {
    MatWriter writer(file, MAT_FT_MAT5);
    writer.add("X", MAT_C_UINT8, MAT_T_UINT8, {32, 32, 3}, x.data());
    writer.add("y", MAT_C_DOUBLE, MAT_T_DOUBLE, {1, 1}, &label);
  }
  const ImageSet set = pretext::data::load_svhn_mat(file);
  expect_svhn_layout(set, 1);
  EXPECT_EQ(set.labels, (std::vector<pretext::data::Label>{4}));
}

TEST(SvhnMat, AcceptsLabelsOfAnyNumericClass) {
  TempDir dir;
  const auto file = dir.file("uint8_labels.mat");
  std::vector<std::uint8_t> x = svhn_pixels(2);
  std::vector<std::uint8_t> labels = {10, 8};
  {
    MatWriter writer(file, MAT_FT_MAT5);
    writer.add("X", MAT_C_UINT8, MAT_T_UINT8, {32, 32, 3, 2}, x.data());
    writer.add("y", MAT_C_UINT8, MAT_T_UINT8, {2, 1}, labels.data());
  }
  EXPECT_EQ(pretext::data::load_svhn_mat(file).labels, (std::vector<pretext::data::Label>{0, 8}));
}

TEST(SvhnMatErrors, MissingFile) {
  TempDir dir;
  const auto file = dir.file("absent_32x32.mat");
  expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file, {"not found"});
}

TEST(SvhnMatErrors, NotAMatFile) {
  TempDir dir;
  const auto text = dir.file("notes.mat");
  std::ofstream(text) << std::string(300, 'x');
  expect_input_error([&] { pretext::data::load_svhn_mat(text); }, text, {"not a MAT file"});

  // matio itself would accept an empty file as MATLAB v4.
  const auto empty = dir.file("empty.mat");
  write_bytes(empty, {});
  expect_input_error([&] { pretext::data::load_svhn_mat(empty); }, empty, {"0 bytes"});
}

TEST(SvhnMatErrors, MissingLabels) {
  TempDir dir;
  const auto file = dir.file("no_y.mat");
  std::vector<std::uint8_t> x = svhn_pixels(2);
  MatWriter(file, MAT_FT_MAT5).add("X", MAT_C_UINT8, MAT_T_UINT8, {32, 32, 3, 2}, x.data());
  expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file, {"'y'", "variables: X"});
}

TEST(SvhnMatErrors, MissingImages) {
  TempDir dir;
  const auto file = dir.file("no_x.mat");
  std::vector<double> y = {1, 2};
  MatWriter(file, MAT_FT_MAT5).add("y", MAT_C_DOUBLE, MAT_T_DOUBLE, {2, 1}, y.data());
  expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file, {"'X'"});
}

TEST(SvhnMatErrors, WrongImageDimensions) {
  TempDir dir;
  const auto file = dir.file("mnist_sized.mat");
  std::vector<std::uint8_t> x(std::size_t{28} * 28 * 3 * 2, 1);
  std::vector<double> y = {1, 2};
  {
    MatWriter writer(file, MAT_FT_MAT5);
    writer.add("X", MAT_C_UINT8, MAT_T_UINT8, {28, 28, 3, 2}, x.data());
    writer.add("y", MAT_C_DOUBLE, MAT_T_DOUBLE, {2, 1}, y.data());
  }
  expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file, {"32x32x3xN", "28x28x3x2"});
}

TEST(SvhnMatErrors, ImagesNotUint8) {
  TempDir dir;
  const auto file = dir.file("double_x.mat");
  std::vector<double> x(kSvhnImage, 0.5);
  double y = 1;
  {
    MatWriter writer(file, MAT_FT_MAT5);
    writer.add("X", MAT_C_DOUBLE, MAT_T_DOUBLE, {32, 32, 3, 1}, x.data());
    writer.add("y", MAT_C_DOUBLE, MAT_T_DOUBLE, {1, 1}, &y);
  }
  expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file, {"uint8", "double"});
}

TEST(SvhnMatErrors, LabelCountMismatch) {
  TempDir dir;
  const auto file = dir.file("short_y.mat");
  std::vector<std::uint8_t> x = svhn_pixels(3);
  std::vector<double> y = {1, 2};
  {
    MatWriter writer(file, MAT_FT_MAT5);
    writer.add("X", MAT_C_UINT8, MAT_T_UINT8, {32, 32, 3, 3}, x.data());
    writer.add("y", MAT_C_DOUBLE, MAT_T_DOUBLE, {2, 1}, y.data());
  }
  expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file, {"3 labels", "found 2"});
}

TEST(SvhnMatErrors, LabelOutsideOneToTen) {
  TempDir dir;
  const auto too_big = dir.file("label_11.mat");
  write_svhn(too_big, {1, 10, 11});
  expect_input_error([&] { pretext::data::load_svhn_mat(too_big); }, too_big, {"found 11 at index 2", "1..10"});

  // Zero-based labels are the classic mistake when re-saving SVHN.
  const auto zero = dir.file("label_0.mat");
  write_svhn(zero, {0, 4});
  expect_input_error([&] { pretext::data::load_svhn_mat(zero); }, zero, {"found 0 at index 0"});

  const auto fraction = dir.file("label_fraction.mat");
  write_svhn(fraction, {3, 2.5});
  expect_input_error([&] { pretext::data::load_svhn_mat(fraction); }, fraction, {"found 2.5 at index 1"});
}

TEST(SvhnMatErrors, NoImages) {
  TempDir dir;
  const auto file = dir.file("empty_x.mat");
  {
    MatWriter writer(file, MAT_FT_MAT5);
    writer.add("X", MAT_C_UINT8, MAT_T_UINT8, {32, 32, 3, 0}, nullptr);
    writer.add("y", MAT_C_DOUBLE, MAT_T_DOUBLE, {0, 1}, nullptr);
  }
  expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file, {"no images"});
}

TEST(SvhnMatErrors, TruncatedFile) {
  TempDir dir;
  for (const auto compression : {MAT_COMPRESSION_NONE, MAT_COMPRESSION_ZLIB}) {
    const auto file = dir.file(compression == MAT_COMPRESSION_NONE ? "half.mat" : "half_zlib.mat");
    write_svhn(file, {1, 2, 3, 4, 5, 6, 7, 8}, MAT_FT_MAT5, compression);
    truncate_file(file, fs::file_size(file) / 2);
    expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file, {"truncated"});
  }
}

TEST(SvhnMatErrors, TruncatedInsideLabelsOnly) {
  // X is whole; matio alone would report y as merely missing.
  TempDir dir;
  const auto file = dir.file("cut_y.mat");
  write_svhn(file, {1, 2, 3, 4, 5, 6, 7, 8});
  truncate_file(file, fs::file_size(file) - 16);
  expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file, {"truncated"});
}

// Hand-made v5 files for the headers matio must never see (the .mat fuzzer's finds).
void put_le32(std::vector<std::uint8_t>& bytes, std::uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) bytes.push_back(static_cast<std::uint8_t>(value >> shift));
}

/// A little-endian v5 file: the 128-byte header, then `elements` as given.
std::vector<std::uint8_t> mat_v5_file(const std::vector<std::uint8_t>& elements) {
  std::vector<std::uint8_t> bytes(124, ' ');
  const std::string text = "MATLAB 5.0 MAT-file, written by pretext's tests";
  std::copy(text.begin(), text.end(), bytes.begin());
  bytes.insert(bytes.end(), {0x00, 0x01, 'I', 'M'});  // version 0x0100, then 'MI', both little-endian
  bytes.insert(bytes.end(), elements.begin(), elements.end());
  return bytes;
}

/// A uint8 variable's element: flags, a dims element of `dims_bytes` bytes
/// holding `dims`, and `tail` (name, data) as given.
std::vector<std::uint8_t> uint8_matrix(std::uint32_t dims_bytes, const std::vector<std::uint32_t>& dims,
                                       const std::vector<std::uint8_t>& tail) {
  std::vector<std::uint8_t> body;
  for (const std::uint32_t word : {6U, 8U, 9U, 0U}) put_le32(body, word);  // miUINT32 flags: class 9 = uint8
  put_le32(body, 5);                                                       // miINT32
  put_le32(body, dims_bytes);
  for (const std::uint32_t d : dims) put_le32(body, d);
  body.insert(body.end(), tail.begin(), tail.end());
  std::vector<std::uint8_t> element;
  put_le32(element, 14);  // miMATRIX
  put_le32(element, static_cast<std::uint32_t>(body.size()));
  element.insert(element.end(), body.begin(), body.end());
  return element;
}

std::vector<std::uint8_t> zlib_compressed_element(const std::vector<std::uint8_t>& element) {
  uLongf size = compressBound(element.size());
  std::vector<std::uint8_t> packed(size);
  EXPECT_EQ(compress(packed.data(), &size, element.data(), element.size()), Z_OK);
  std::vector<std::uint8_t> out;
  put_le32(out, 15);  // miCOMPRESSED
  put_le32(out, static_cast<std::uint32_t>(size));
  out.insert(out.end(), packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(size));
  return out;
}

// Found by fuzz/svhn_mat_fuzz.cpp (tests/fuzz/corpus/svhn_mat/crash-dims-length-1.3GB.mat):
// a 507-byte file whose compressed X declared a 1.3 GB list of dimensions;
// Mat_VarReadInfo allocated it. Variable headers are now checked first.
TEST(SvhnMatErrors, VariableHeadersAreCheckedBeforeMatioReadsThem) {
  TempDir dir;
  const std::vector<std::uint8_t> name = {1, 0, 1, 0, 'X', 0, 0, 0};  // small-format int8 name "X"
  const auto huge_dims = uint8_matrix(0x4e060000, {1, 1}, name);
  const auto compressed = dir.file("compressed_dims.mat");
  write_bytes(compressed, mat_v5_file(zlib_compressed_element(huge_dims)));
  expect_input_error([&] { pretext::data::load_svhn_mat(compressed); }, compressed,
                     {"corrupt MAT file: the variable at byte offset 128", "dimensions", "1309016064 bytes"});
  const auto plain = dir.file("plain_dims.mat");
  write_bytes(plain, mat_v5_file(huge_dims));
  expect_input_error([&] { pretext::data::load_svhn_mat(plain); }, plain, {"byte offset 128", "dimensions"});

  // A compressed variable declaring more than deflate could ever expand to.
  auto inflated_too_far = uint8_matrix(16, {32, 32, 3, 1}, name);
  inflated_too_far[4] = 0xF0;  // its length, low byte first: now 0xF0 + 256 * ...
  inflated_too_far[7] = 0x7F;
  const auto bomb = dir.file("declares_2GB.mat");
  write_bytes(bomb, mat_v5_file(zlib_compressed_element(inflated_too_far)));
  expect_input_error([&] { pretext::data::load_svhn_mat(bomb); }, bomb, {"compressed bytes can hold"});

  // Only numeric and char arrays: matio would follow a cell's nested headers.
  auto cell = uint8_matrix(8, {1, 1}, name);
  cell[16] = 1;  // class 1: cell
  const auto with_cell = dir.file("cell.mat");
  write_bytes(with_cell, mat_v5_file(cell));
  expect_input_error([&] { pretext::data::load_svhn_mat(with_cell); }, with_cell, {"found a cell array"});
}

// Found by the fuzzer too (crash-v4-name-length-1.3GB.mat): without a v5 or
// v7.3 header, Mat_Open tried MATLAB v4 and allocated the name length that the
// bytes at offset 16 declared. The header is now checked before Mat_Open.
TEST(SvhnMatErrors, AFileWithoutAV5OrV73HeaderNeverReachesMatio) {
  TempDir dir;
  const auto file = dir.file("v4_like.mat");
  std::vector<std::uint8_t> bytes(306, 0);
  const std::string text = "MATLAB 5.0 MAT-file";  // at offset 8: bytes 16..19 read as a 1.3 GB name length
  std::copy(text.begin(), text.end(), bytes.begin() + 8);
  bytes[0] = 10;
  write_bytes(file, bytes);
  expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file,
                     {"not a MAT file: expected a MATLAB v5 or v7.3 header", "at byte 124"});
}

// X's dimensions promise far more images than the file holds: refused before
// the labels or the pixels are allocated for them.
TEST(SvhnMatErrors, MoreImagesThanTheFileCanHoldIsRefusedBeforeAllocating) {
  TempDir dir;
  const auto file = dir.file("million.mat");
  const std::vector<std::uint8_t> tail = {1, 0, 1, 0, 'X', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};  // name, empty data
  write_bytes(file, mat_v5_file(uint8_matrix(16, {32, 32, 3, 1000000}, tail)));
  expect_input_error([&] { pretext::data::load_svhn_mat(file); }, file,
                     {"X declares 1000000 images", "more than a", "truncated or corrupt"});
}

}  // namespace
