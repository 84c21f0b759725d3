// NumPy .npy files: the header byte by byte, round trips, and the reader's errors.
#include "pipeline/artefacts/npy.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/errors.hpp"
#include "support/synthetic_idx.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const fs::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// A file with `dict` as its header, padded as numpy pads, and `data_bytes` zero bytes after it.
std::string npy_with_header(std::string dict, std::size_t data_bytes, char major = 1) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  std::string bytes = std::string("\x93NUMPY", 6) + major + '\0';
  bytes += static_cast<char>(dict.size() & 0xFF);
  bytes += static_cast<char>((dict.size() >> 8) & 0xFF);
  if (major == 2) bytes += std::string(2, '\0');
  return bytes + dict + std::string(data_bytes, '\0');
}

class Npy : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_dir("npy"); }
  void TearDown() override { fs::remove_all(dir_); }

  std::string error_reading(const std::string& bytes) {
    const fs::path file = dir_ / "bad.npy";
    write_bytes(file, bytes);
    try {
      artefacts::read_npy(file);
    } catch (const InputError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(file.string()), std::string::npos) << message;
      return message;
    }
    ADD_FAILURE() << "expected an InputError";
    return {};
  }

  fs::path dir_;
};

TEST_F(Npy, HeaderIsVersionOneAlignedToSixtyFourBytes) {
  const std::string header = artefacts::npy_header(artefacts::NpyType::float32, {3, 4});
  ASSERT_GE(header.size(), 10U);
  EXPECT_EQ(header.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_EQ(header.size() % 64, 0U);
  EXPECT_EQ(header.back(), '\n');
  const std::size_t length =
      static_cast<unsigned char>(header[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(header[9])) << 8);
  EXPECT_EQ(length, header.size() - 10);
  EXPECT_EQ(header.substr(10).find("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"), 0U);
  // Only spaces between the dict and the newline.
  const auto close = header.find('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), header.size() - 1);

  const std::string one_dim = artefacts::npy_header(artefacts::NpyType::int64, {5});
  EXPECT_NE(one_dim.find("'descr': '<i8'"), std::string::npos);
  EXPECT_NE(one_dim.find("'shape': (5,)"), std::string::npos) << "a 1-tuple needs its trailing comma";
  EXPECT_EQ(one_dim.size() % 64, 0U);
}

TEST_F(Npy, LongShapesStayAligned) {
  for (std::int64_t n : {std::int64_t{1}, std::int64_t{12}, std::int64_t{1234567}, std::int64_t{9876543210}}) {
    const std::string header = artefacts::npy_header(artefacts::NpyType::float32, {n, n, n});
    EXPECT_EQ(header.size() % 64, 0U) << n;
    EXPECT_EQ(header.back(), '\n') << n;
  }
}

TEST_F(Npy, FloatRoundTripIsBitExact) {
  const std::vector<float> values = {0.0F, -1.5F, 3.25e-8F, std::numeric_limits<float>::max(), -0.0F, 7.0F};
  const fs::path file = dir_ / "f.npy";
  artefacts::write_npy(file, values.data(), {2, 3});

  const std::string bytes = read_bytes(file);
  const std::string header = artefacts::npy_header(artefacts::NpyType::float32, {2, 3});
  ASSERT_EQ(bytes.size(), header.size() + values.size() * 4);
  EXPECT_EQ(bytes.substr(0, header.size()), header);
  EXPECT_EQ(std::memcmp(bytes.data() + header.size(), values.data(), values.size() * 4), 0);

  const artefacts::NpyArray array = artefacts::read_npy(file);
  EXPECT_EQ(array.type, artefacts::NpyType::float32);
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{2, 3}));
  ASSERT_EQ(array.floats.size(), values.size());
  EXPECT_EQ(std::memcmp(array.floats.data(), values.data(), values.size() * 4), 0);
  EXPECT_TRUE(std::signbit(array.floats[4]));
}

TEST_F(Npy, IntRoundTripKeepsNegativeAndLargeValues) {
  const std::vector<std::int64_t> values = {-1, 0, 9, std::numeric_limits<std::int64_t>::min(), 1LL << 40};
  const fs::path file = dir_ / "i.npy";
  artefacts::write_npy(file, values.data(), {5});
  const std::string bytes = read_bytes(file);
  EXPECT_EQ(static_cast<unsigned char>(bytes[artefacts::npy_header(artefacts::NpyType::int64, {5}).size()]), 0xFF);  // -1, little-endian

  const artefacts::NpyArray array = artefacts::read_npy(file);
  EXPECT_EQ(array.type, artefacts::NpyType::int64);
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{5}));
  EXPECT_EQ(array.ints, values);
  EXPECT_TRUE(array.floats.empty());
}

TEST_F(Npy, EmptyArraysRoundTrip) {
  const fs::path file = dir_ / "empty.npy";
  artefacts::write_npy(file, static_cast<const float*>(nullptr), {0, 16});
  const artefacts::NpyArray array = artefacts::read_npy(file);
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{0, 16}));
  EXPECT_EQ(array.size(), 0);
}

TEST_F(Npy, ReadsHeadersAsNumpyMayWriteThem) {
  // Keys in another order, double quotes, version 2.0 (4-byte header length).
  const fs::path file = dir_ / "numpy.npy";
  write_bytes(file, npy_with_header("{\"shape\": (2,), 'fortran_order': False, 'descr': '<i8'}", 16, 2));
  const artefacts::NpyArray array = artefacts::read_npy(file);
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(array.ints, (std::vector<std::int64_t>{0, 0}));
}

TEST_F(Npy, WrongMagicIsAnError) {
  EXPECT_NE(error_reading("PK\x03\x04 not numpy at all").find("not a .npy file"), std::string::npos);
  EXPECT_NE(error_reading("").find("not a .npy file"), std::string::npos);
}

TEST_F(Npy, UnsupportedVersionIsAnError) {
  std::string bytes = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4);
  bytes[6] = 3;
  EXPECT_NE(error_reading(bytes).find("unsupported .npy version 3.0"), std::string::npos);
}

TEST_F(Npy, OtherDtypesAndFortranOrderAreErrors) {
  EXPECT_NE(error_reading(npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 8))
                .find("found '<f8'"),
            std::string::npos);
  EXPECT_NE(error_reading(npy_with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", 4))
                .find("found '>f4'"),
            std::string::npos);
  EXPECT_NE(error_reading(npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", 4))
                .find("Fortran order"),
            std::string::npos);
}

TEST_F(Npy, CorruptHeadersAreErrors) {
  EXPECT_NE(error_reading(npy_with_header("{'descr': '<f4', 'fortran_order': False}", 4)).find("lacks"),
            std::string::npos);
  EXPECT_NE(error_reading(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (a,), }", 4))
                .find("tuple of non-negative integers"),
            std::string::npos);
  EXPECT_NE(error_reading(npy_with_header("['descr', '<f4']", 4)).find("malformed header"), std::string::npos);
  EXPECT_NE(error_reading(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4))
                .find("unexpected key 'x'"),
            std::string::npos);
  // A header length that runs past the end of the file.
  std::string cut = artefacts::npy_header(artefacts::NpyType::float32, {4});
  cut.resize(cut.size() - 20);
  EXPECT_NE(error_reading(cut).find("truncated .npy header"), std::string::npos);
}

TEST_F(Npy, TruncatedOrOverlongDataIsAnError) {
  const std::vector<float> values(12, 1.0F);
  const fs::path file = dir_ / "good.npy";
  artefacts::write_npy(file, values.data(), {3, 4});
  std::string bytes = read_bytes(file);

  const std::string truncated = error_reading(bytes.substr(0, bytes.size() - 3));
  EXPECT_NE(truncated.find("shape (3, 4) of <f4, so expected 48 bytes of data, found 45 (truncated)"),
            std::string::npos)
      << truncated;
  EXPECT_NE(error_reading(bytes + "xx").find("found 50"), std::string::npos);
}

TEST_F(Npy, MissingFileIsAnError) { EXPECT_THROW(artefacts::read_npy(dir_ / "absent.npy"), InputError); }

TEST_F(Npy, WriteLeavesNoTemporaryFile) {
  const std::vector<std::int64_t> values = {1, 2};
  artefacts::write_npy(dir_ / "a.npy", values.data(), {2});
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1U);
}

}  // namespace
}  // namespace pretext
