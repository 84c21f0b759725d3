#include "data/packed.hpp"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.hpp"
#include "common/atomic_file.hpp"

// Labels are mapped as int64 in host order; the format says little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the packed format is read in place on little-endian hosts");

namespace pretext::data {
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'P', 'R', 'T', 'X', 'P', 'A', 'C', 'K'};
constexpr std::uint32_t kUint8 = 1;
constexpr std::uint32_t kInt64 = 2;
constexpr std::uint64_t kAlignment = 64;

struct Header {
  std::uint32_t version = kPackedVersion;
  std::uint32_t header_size = kPackedHeaderSize;
  std::uint64_t count = 0;
  std::uint32_t channels = 0, height = 0, width = 0;
  std::uint32_t pixel_dtype = kUint8, label_dtype = kInt64;
  std::uint64_t pixel_offset = 0, pixel_bytes = 0;
  std::uint64_t label_offset = 0, label_bytes = 0;
  std::uint64_t classes_offset = 0, classes_bytes = 0;
  std::uint32_t checksum = 0;
};

std::uint64_t align(std::uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

template <typename T>
void put(std::array<char, kPackedHeaderSize>& bytes, std::size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof value);  // little-endian host (static_assert above)
}

template <typename T>
T get(const std::uint8_t* bytes, std::size_t at) {
  T value;
  std::memcpy(&value, bytes + at, sizeof value);
  return value;
}

std::array<char, kPackedHeaderSize> encode(const Header& h) {
  std::array<char, kPackedHeaderSize> b{};
  std::memcpy(b.data(), kMagic, sizeof kMagic);
  put(b, 8, h.version);
  put(b, 12, h.header_size);
  put(b, 16, h.count);
  put(b, 24, h.channels);
  put(b, 28, h.height);
  put(b, 32, h.width);
  put(b, 36, h.pixel_dtype);
  put(b, 40, h.label_dtype);
  put(b, 48, h.pixel_offset);
  put(b, 56, h.pixel_bytes);
  put(b, 64, h.label_offset);
  put(b, 72, h.label_bytes);
  put(b, 80, h.classes_offset);
  put(b, 88, h.classes_bytes);
  put(b, 96, h.checksum);
  return b;
}

Header decode(const std::uint8_t* b) {
  Header h;
  h.version = get<std::uint32_t>(b, 8);
  h.header_size = get<std::uint32_t>(b, 12);
  h.count = get<std::uint64_t>(b, 16);
  h.channels = get<std::uint32_t>(b, 24);
  h.height = get<std::uint32_t>(b, 28);
  h.width = get<std::uint32_t>(b, 32);
  h.pixel_dtype = get<std::uint32_t>(b, 36);
  h.label_dtype = get<std::uint32_t>(b, 40);
  h.pixel_offset = get<std::uint64_t>(b, 48);
  h.pixel_bytes = get<std::uint64_t>(b, 56);
  h.label_offset = get<std::uint64_t>(b, 64);
  h.label_bytes = get<std::uint64_t>(b, 72);
  h.classes_offset = get<std::uint64_t>(b, 80);
  h.classes_bytes = get<std::uint64_t>(b, 88);
  h.checksum = get<std::uint32_t>(b, 96);
  return h;
}

// Calls `run` on the set's pixels in order, in as few contiguous pieces as
// its storage allows: one for an owned or mapped set, one per part, buffers of
// whole images for a streamed set (so writing one never holds it all).
void for_each_pixel_run(const ImageSet& set, const std::function<void(const std::uint8_t*, std::uint64_t)>& run) {
  const std::size_t bytes = set.shape.numel();
  if (set.data() != nullptr) {
    run(set.data(), set.size() * bytes);
  } else if (!set.parts.empty()) {
    for (std::size_t k = 0; k < set.parts.size(); ++k) {
      const std::size_t end = k + 1 < set.parts.size() ? set.parts[k + 1].first : set.size();
      run(set.parts[k].pixels, (end - set.parts[k].first) * bytes);
    }
  } else if (set.streamed()) {
    const std::size_t per_buffer = std::max<std::size_t>(1, (8U << 20) / std::max<std::size_t>(bytes, 1));
    std::vector<std::uint8_t> buffer(std::min(set.size(), per_buffer) * bytes);
    for (std::size_t first = 0; first < set.size(); first += per_buffer) {
      const std::size_t n = std::min(per_buffer, set.size() - first);
      for (std::size_t i = 0; i < n; ++i) set.read_image(first + i, buffer.data() + i * bytes);
      run(buffer.data(), n * bytes);
    }
  }
}

std::string shape_text(const ImageShape& s) {
  return std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width);
}

std::string printable(const std::uint8_t* bytes, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += (bytes[i] >= 32 && bytes[i] < 127) ? static_cast<char>(bytes[i]) : '?';
  return s;
}

struct Mapping {
  void* address = MAP_FAILED;
  std::size_t length = 0;
  ~Mapping() {
    if (address != MAP_FAILED) munmap(address, length);
  }
};

// checksum() over a mapped file, in slices whose pages are dropped from this
// process once read (they stay in the page cache): verifying a file larger
// than memory must not make the process that large.
std::uint32_t checksum_mapped(const Mapping& mapping, const std::uint8_t* pixels, std::uint64_t pixel_bytes,
                              const std::uint8_t* labels, std::uint64_t label_bytes) {
  constexpr std::uint64_t kSlice = 8U << 20;  // a multiple of any page size
  const auto* base = static_cast<const std::uint8_t*>(mapping.address);
  uLong crc = crc32_z(0L, Z_NULL, 0);
  for (std::uint64_t done = 0; done < pixel_bytes;) {
    const std::uint64_t n = std::min(kSlice, pixel_bytes - done);
    crc = crc32_z(crc, pixels + done, n);
    done += n;
    // Whole pages before the next byte to read, from the mapping's start.
    const auto read_to = static_cast<std::uint64_t>(pixels + done - base) / kSlice * kSlice;
    if (read_to > 0) ::madvise(mapping.address, read_to, MADV_DONTNEED);
  }
  crc = crc32_z(crc, labels, label_bytes);
  return static_cast<std::uint32_t>(crc);
}

/// An open file descriptor, closed with the last reader that holds it.
struct OpenFile {
  int fd = -1;
  ~OpenFile() {
    if (fd >= 0) ::close(fd);
  }
};

/// ImageSet::read_image for a packed file: one pread per image (the page
/// cache serves repeated reads; nothing is mapped into this process).
std::function<void(std::size_t, std::uint8_t*)> stream_reader(const std::string& name, std::uint64_t pixel_offset,
                                                              std::uint64_t image_bytes) {
  auto file = std::make_shared<OpenFile>();
  file->fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (file->fd < 0) throw InputError(name + ": cannot open the packed file: " + std::strerror(errno));
  return [file, name, pixel_offset, image_bytes](std::size_t index, std::uint8_t* out) {
    const std::uint64_t start = pixel_offset + index * image_bytes;
    for (std::uint64_t done = 0; done < image_bytes;) {
      const ssize_t got = ::pread(file->fd, out + done, image_bytes - done, static_cast<off_t>(start + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        throw InputError(name + ": cannot read image " + std::to_string(index) + " (" +
                         (got < 0 ? std::string(std::strerror(errno)) : "the file got shorter") + ")");
      done += static_cast<std::uint64_t>(got);
    }
  };
}

}  // namespace

void write_packed(const fs::path& file, const ImageSet& set, const std::vector<std::string>& classes) {
  std::string names;
  for (const auto& name : classes) {
    if (name.find('\n') != std::string::npos)
      throw InputError(file.string() + ": class name '" + name +
                       "' holds a newline; the packed format cannot store it");
    names += name + "\n";
  }
  Header h;
  h.count = set.size();
  h.channels = static_cast<std::uint32_t>(set.shape.channels);
  h.height = static_cast<std::uint32_t>(set.shape.height);
  h.width = static_cast<std::uint32_t>(set.shape.width);
  h.pixel_offset = align(kPackedHeaderSize);
  h.pixel_bytes = h.count * set.shape.numel();
  h.label_offset = align(h.pixel_offset + h.pixel_bytes);
  h.label_bytes = h.count * sizeof(std::int64_t);
  h.classes_offset = names.empty() ? 0 : align(h.label_offset + h.label_bytes);
  h.classes_bytes = names.size();
  const std::vector<std::int64_t> stored_labels(set.labels.begin(), set.labels.end());  // int64 on disk
  const auto* labels = reinterpret_cast<const std::uint8_t*>(stored_labels.data());
  uLong crc = crc32_z(0L, Z_NULL, 0);
  for_each_pixel_run(set, [&](const std::uint8_t* pixels, std::uint64_t bytes) { crc = crc32_z(crc, pixels, bytes); });
  h.checksum = static_cast<std::uint32_t>(crc32_z(crc, labels, h.label_bytes));

  // Errors name the file and the OS's reason ("No space left on device").
  AtomicFile out(file);
  const auto header = encode(h);
  std::uint64_t at = 0;
  auto write_at = [&](std::uint64_t offset, const void* data, std::uint64_t bytes) {
    static const char kZeros[kAlignment] = {};
    out.append(kZeros, static_cast<std::size_t>(offset - at));
    out.append(data, static_cast<std::size_t>(bytes));
    at = offset + bytes;
  };
  write_at(0, header.data(), header.size());
  for_each_pixel_run(set, [&](const std::uint8_t* pixels, std::uint64_t bytes) {
    write_at(std::max(at, h.pixel_offset), pixels, bytes);  // zeros up to the section first
  });
  write_at(h.label_offset, labels, h.label_bytes);
  if (!names.empty()) write_at(h.classes_offset, names.data(), names.size());
  out.commit();
}

PackedDataset read_packed(const fs::path& file, bool verify_checksum, PackedAccess access) {
  const std::string name = file.string();
  const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(name + ": cannot open the packed file: " + std::strerror(errno));
  struct stat info {};
  const bool stat_ok = ::fstat(fd, &info) == 0;
  const auto file_size = stat_ok ? static_cast<std::uint64_t>(info.st_size) : 0;
  auto mapping = std::make_shared<Mapping>();
  if (stat_ok && file_size >= kPackedHeaderSize) {
    mapping->length = file_size;
    mapping->address = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  ::close(fd);  // the mapping stays valid
  if (!stat_ok) throw InputError(name + ": cannot read the file's size");
  if (file_size < kPackedHeaderSize)
    throw InputError(name + ": truncated: expected a packed header of " + std::to_string(kPackedHeaderSize) +
                     " bytes, the file has " + std::to_string(file_size));
  if (mapping->address == MAP_FAILED) throw InputError(name + ": cannot map the file: " + std::strerror(errno));
  const auto* bytes = static_cast<const std::uint8_t*>(mapping->address);

  if (std::memcmp(bytes, kMagic, sizeof kMagic) != 0)
    throw InputError(name + ": not a packed dataset: expected magic PRTXPACK, found '" + printable(bytes, 8) + "'");
  const Header h = decode(bytes);
  auto fail = [&](const std::string& what) { throw InputError(name + ": " + what); };
  if (h.version != kPackedVersion)
    fail("expected packed format version " + std::to_string(kPackedVersion) + ", found " + std::to_string(h.version) +
         " (written by another pretext version? run pretext preprocess again)");
  if (h.header_size != kPackedHeaderSize)
    fail("expected a header size of " + std::to_string(kPackedHeaderSize) + ", found " + std::to_string(h.header_size));
  if (h.pixel_dtype != kUint8) fail("expected pixel dtype 1 (uint8), found " + std::to_string(h.pixel_dtype));
  if (h.label_dtype != kInt64) fail("expected label dtype 2 (int64), found " + std::to_string(h.label_dtype));
  if (h.channels == 0 || h.height == 0 || h.width == 0 || h.channels > 4096 || h.height > 65536 || h.width > 65536)
    fail("implausible image shape " + std::to_string(h.channels) + "x" + std::to_string(h.height) + "x" +
         std::to_string(h.width));
  const std::uint64_t image_bytes = std::uint64_t{h.channels} * h.height * h.width;
  if (h.count > (std::uint64_t{1} << 40) / image_bytes)  // keeps the products below from overflowing
    fail("implausible image count " + std::to_string(h.count));
  if (h.pixel_bytes != h.count * image_bytes || h.label_bytes != h.count * sizeof(std::int64_t))
    fail("section sizes disagree with " + std::to_string(h.count) + " images of " + std::to_string(image_bytes) +
         " bytes (pixels " + std::to_string(h.pixel_bytes) + ", labels " + std::to_string(h.label_bytes) + " bytes)");
  // Every section must end inside the file. Compared as "bytes <= size - offset"
  // because offset + bytes can wrap around 2^64 for a corrupt header (the
  // fuzzer found a class section that "ended" at byte 72 that way).
  const auto section_fits = [&](std::uint64_t offset, std::uint64_t bytes) {
    return offset <= file_size && bytes <= file_size - offset;
  };
  const auto promised = [](std::uint64_t offset, std::uint64_t bytes) {
    return bytes > UINT64_MAX - offset ? std::string("more than 2^64") : std::to_string(offset + bytes);
  };
  if (!section_fits(h.pixel_offset, h.pixel_bytes) || !section_fits(h.label_offset, h.label_bytes))
    fail("truncated: the header promises " + promised(h.label_offset, h.label_bytes) + " bytes, the file has " +
         std::to_string(file_size));
  if (h.pixel_offset % kAlignment != 0 || h.label_offset % kAlignment != 0 || h.pixel_offset < kPackedHeaderSize ||
      h.label_offset < h.pixel_offset + h.pixel_bytes)
    fail("expected 64-byte aligned pixel and label sections after the header, found offsets " +
         std::to_string(h.pixel_offset) + " and " + std::to_string(h.label_offset));
  if (h.classes_offset != 0 && !section_fits(h.classes_offset, h.classes_bytes))
    fail("truncated: the class-name section at byte " + std::to_string(h.classes_offset) + " promises " +
         promised(h.classes_offset, h.classes_bytes) + " bytes, the file has " + std::to_string(file_size));
  const std::uint8_t* pixels = bytes + h.pixel_offset;
  const std::uint8_t* labels = bytes + h.label_offset;
  if (verify_checksum) {
    const std::uint32_t found = checksum_mapped(*mapping, pixels, h.pixel_bytes, labels, h.label_bytes);
    if (found != h.checksum) {
      std::ostringstream message;
      message << "checksum mismatch: the header says CRC-32 0x" << std::hex << h.checksum << ", the data gives 0x"
              << found << " (the file is corrupt)";
      fail(message.str());
    }
  }

  PackedDataset result;
  ImageSet& set = result.images;
  set.shape = ImageShape{static_cast<int>(h.channels), static_cast<int>(h.height), static_cast<int>(h.width)};
  set.labels.resize(h.count);
  for (std::uint64_t i = 0; i < h.count; ++i) {
    std::int64_t label = 0;
    std::memcpy(&label, labels + i * sizeof label, sizeof label);
    if (label < -1 || label > std::numeric_limits<Label>::max())
      fail("expected every label to be -1 (unknown) or in 0.." + std::to_string(std::numeric_limits<Label>::max()) +
           ", found " + std::to_string(label) + " at index " + std::to_string(i));
    set.labels[i] = static_cast<Label>(label);
  }
  set.origin = name;
  if (h.classes_offset != 0) {
    std::istringstream lines(std::string(reinterpret_cast<const char*>(bytes + h.classes_offset), h.classes_bytes));
    for (std::string line; std::getline(lines, line);) result.classes.push_back(line);
  }
  if (access == PackedAccess::mmap) {
    set.external = pixels;
    set.storage = mapping;
  } else {
    set.read_image = stream_reader(name, h.pixel_offset, image_bytes);
  }
  return result;
}

std::vector<fs::path> packed_files(const std::string& pattern) {
  if (pattern.find_first_of("*?[") == std::string::npos) return {fs::path(pattern)};
  glob_t matches{};
  const int status = ::glob(pattern.c_str(), 0, nullptr, &matches);
  std::vector<fs::path> files;
  if (status == 0)
    for (std::size_t i = 0; i < matches.gl_pathc; ++i) files.emplace_back(matches.gl_pathv[i]);
  ::globfree(&matches);
  if (status == GLOB_NOMATCH || (status == 0 && files.empty()))
    throw InputError(pattern + ": expected the pattern to match one or more packed files, found none");
  if (status != 0)
    throw InputError(pattern + ": cannot expand the pattern (glob(3) failed with " + std::to_string(status) + ")");
  // glob(3) sorts by the locale's collation; byte order is the same everywhere.
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) { return a.native() < b.native(); });
  return files;
}

PackedDataset read_packed_files(const std::string& pattern, bool verify_checksum, PackedAccess access) {
  const std::vector<fs::path> files = packed_files(pattern);
  if (files.size() == 1) return read_packed(files.front(), verify_checksum, access);

  std::vector<PackedDataset> read;
  for (const auto& file : files) read.push_back(read_packed(file, verify_checksum, access));
  // Shards of one data set: the same images and labels mean the same things.
  const PackedDataset& model = read.front();
  for (std::size_t k = 1; k < read.size(); ++k) {
    const auto differs = [&](const std::string& expected, const std::string& found) {
      throw InputError(files[k].string() + ": expected " + expected + " like " + files.front().string() +
                       " (both match '" + pattern + "'; the files of one pattern are shards of one data set), found " +
                       found);
    };
    const PackedDataset& other = read[k];
    if (other.images.shape != model.images.shape)
      differs(shape_text(model.images.shape) + " images", shape_text(other.images.shape));
    if (other.classes.size() != model.classes.size())
      differs(std::to_string(model.classes.size()) + " class names", std::to_string(other.classes.size()));
    for (std::size_t c = 0; c < model.classes.size(); ++c)
      if (other.classes[c] != model.classes[c])
        differs("class " + std::to_string(c) + " to be '" + model.classes[c] + "'", "'" + other.classes[c] + "'");
  }

  // Each file stays where read_packed left it (mapped, or open for pread):
  // the set reads every image in place through its file's part. Copying them
  // into one owned buffer would be simpler, but would cost the memory and the
  // time mapping exists to save.
  PackedDataset joined;
  ImageSet& set = joined.images;
  set.shape = model.images.shape;
  set.origin = pattern + " (" + std::to_string(files.size()) + " files)";
  joined.classes = model.classes;
  auto mappings = std::make_shared<std::vector<std::shared_ptr<const void>>>();
  using Reader = std::function<void(std::size_t, std::uint8_t*)>;
  std::vector<std::pair<std::size_t, Reader>> readers;  // (first image, the file's reader)
  for (PackedDataset& part : read) {
    if (part.images.size() == 0) continue;
    const std::size_t first = set.size();
    set.labels.insert(set.labels.end(), part.images.labels.begin(), part.images.labels.end());
    if (access == PackedAccess::mmap) {
      set.parts.push_back({first, part.images.external});
      mappings->push_back(std::move(part.images.storage));
    } else {
      readers.emplace_back(first, std::move(part.images.read_image));
    }
  }
  if (access == PackedAccess::mmap) {
    set.storage = std::move(mappings);
  } else {
    set.read_image = [readers = std::move(readers)](std::size_t index, std::uint8_t* out) {
      const auto after = std::upper_bound(readers.begin(), readers.end(), index,
                                          [](std::size_t i, const auto& reader) { return i < reader.first; });
      const auto& [first, read] = *(after - 1);
      read(index - first, out);
    };
  }
  return joined;
}

}  // namespace pretext::data
