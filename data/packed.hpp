// The packed dataset format: decoded images ready to train on, memory-mapped.
//
// Layout (every integer little-endian):
//   offset size
//     0     8   magic "PRTXPACK"
//     8     4   format version (1)
//    12     4   header size (128)
//    16     8   image count N
//    24     4   channels C      28  4  height H      32  4  width W
//    36     4   pixel dtype (1: uint8)
//    40     4   label dtype (2: int64)
//    44     4   reserved (0)
//    48     8   pixel section offset (a multiple of 64)    56  8  its bytes: N*C*H*W
//    64     8   label section offset (a multiple of 64)    72  8  its bytes: N*8
//    80     8   class-name section offset (0: none)         88  8  its bytes
//    96     4   CRC-32 (zlib) of the pixel section then the label section
//   100    28   reserved (0)
// Pixels are planar CHW, one image after another, exactly as ImageSet holds
// them; class names are UTF-8, one per line, label i on line i.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image_set.hpp"

namespace pretext::data {

constexpr std::uint32_t kPackedVersion = 1;
constexpr std::uint32_t kPackedHeaderSize = 128;

struct PackedDataset {
  ImageSet images;  // pixels external: they stay in the mapped file
  std::vector<std::string> classes;
};

/// Writes `set` (and class names, may be empty) atomically: a temporary file,
/// fsync, rename. Any set: owned, mapped, in parts or streamed. Throws
/// InputError for a class name with a newline, std::runtime_error naming the
/// file when it cannot be written.
void write_packed(const std::filesystem::path& file, const ImageSet& set, const std::vector<std::string>& classes);

/// How training reads the pixels of a packed file.
enum class PackedAccess {
  mmap,    // mapped and read in place: no copy; the pages read count towards the process's memory
  stream,  // read with pread, image by image: memory stays flat however large the file
};

/// Maps `file` read-only and checks magic, version, dtypes, section sizes
/// against the file's length and (unless told not to) the checksum. The
/// pixels are not copied; labels are. Throws InputError naming the file and
/// what was expected and found.
PackedDataset read_packed(const std::filesystem::path& file, bool verify_checksum = true,
                          PackedAccess access = PackedAccess::mmap);

/// The files `pattern` names: itself when it holds no glob(3) wildcard (*, ?,
/// [), else every match, sorted by name (byte order: "train-10" before
/// "train-2", so number shards with leading zeros). Throws InputError naming
/// the pattern when a wildcard matches no file.
std::vector<std::filesystem::path> packed_files(const std::string& pattern);

/// Every file `pattern` names (packed_files) as one data set: their images
/// one after another in sorted-name order, each file read as read_packed
/// reads it, still in place (mapped files are not copied: the set holds one
/// part per file). The files must agree in image shape and class names;
/// otherwise an InputError names both files and what differs.
PackedDataset read_packed_files(const std::string& pattern, bool verify_checksum = true,
                                PackedAccess access = PackedAccess::mmap);

}  // namespace pretext::data
