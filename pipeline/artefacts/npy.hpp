// NumPy .npy files (format version 1.0), torch-free: how features and labels
// leave pretext for Python (`numpy.load`).
//
// Layout: the magic "\x93NUMPY", version bytes 1 0, a little-endian uint16
// header length, then a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// padded with spaces and ended by '\n' so the data starts at a multiple of 64
// bytes; then the elements in C order, little-endian.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace pretext::artefacts {

/// The element types pretext writes and reads.
enum class NpyType { float32, int64 };  // '<f4', '<i8'

/// The bytes before the data: magic, version, header length and the padded
/// header dict. Exposed for tests.
std::string npy_header(NpyType type, const std::vector<std::int64_t>& shape);

/// Writes a C-order array atomically. `data` holds product(shape) elements.
/// Throws std::runtime_error naming the file if it cannot be written.
void write_npy(const std::filesystem::path& path, const float* data, const std::vector<std::int64_t>& shape);
void write_npy(const std::filesystem::path& path, const std::int64_t* data, const std::vector<std::int64_t>& shape);

/// An array read back from a .npy file.
struct NpyArray {
  NpyType type = NpyType::float32;
  std::vector<std::int64_t> shape;
  std::vector<float> floats;                // when type is float32
  std::vector<std::int64_t> ints;           // when type is int64
  [[nodiscard]] std::int64_t size() const;  // product of shape
};

/// Reads a .npy file written by write_npy or by numpy (versions 1.0 and 2.0,
/// little-endian '<f4' or '<i8', C order). Throws InputError naming the file
/// and what was expected: bad magic or version, a header that is not a dict
/// with descr, fortran_order and shape, another dtype, or data of the wrong size.
NpyArray read_npy(const std::filesystem::path& path);

}  // namespace pretext::artefacts
