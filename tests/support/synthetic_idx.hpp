// Tiny synthetic IDX datasets written by the tests themselves.
//
// Each image is dark noise plus one bright bar whose position depends on the
// class, so the class is learnable and so is the orientation (rotation).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace pretext::testing {

inline void write_be32(std::ofstream& out, std::uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  out.write(reinterpret_cast<const char*>(b), 4);
}

struct SyntheticIdx {
  std::filesystem::path images;
  std::filesystem::path labels;
};

/// Writes `<dir>/<name>-images-idx3-ubyte` and its labels file (raw IDX).
inline SyntheticIdx write_synthetic_idx(const std::filesystem::path& dir, const std::string& name, int count,
                                        int size, int classes, std::uint32_t seed) {
  std::filesystem::create_directories(dir);
  SyntheticIdx files{dir / (name + "-images-idx3-ubyte"), dir / (name + "-labels-idx1-ubyte")};
  std::mt19937 rng(seed);
  std::ofstream img(files.images, std::ios::binary);
  std::ofstream lab(files.labels, std::ios::binary);
  write_be32(img, 0x00000803);
  write_be32(img, static_cast<std::uint32_t>(count));
  write_be32(img, static_cast<std::uint32_t>(size));
  write_be32(img, static_cast<std::uint32_t>(size));
  write_be32(lab, 0x00000801);
  write_be32(lab, static_cast<std::uint32_t>(count));
  std::vector<unsigned char> pixels(static_cast<std::size_t>(size) * size);
  for (int i = 0; i < count; ++i) {
    const int label = i % classes;
    for (auto& p : pixels) p = static_cast<unsigned char>(rng() % 40);
    // A bar in the top rows whose length grows with the class: asymmetric
    // under rotation, and different per class.
    const int row = 1 + static_cast<int>(rng() % 2);
    const int length = 2 + (label * (size - 3)) / std::max(1, classes - 1);
    for (int x = 1; x < 1 + length && x < size; ++x) {
      pixels[static_cast<std::size_t>(row) * size + x] = 255;
      pixels[static_cast<std::size_t>(row + 1) * size + x] = 200;
    }
    img.write(reinterpret_cast<const char*>(pixels.data()), static_cast<std::streamsize>(pixels.size()));
    const auto l = static_cast<unsigned char>(label);
    lab.write(reinterpret_cast<const char*>(&l), 1);
  }
  return files;
}

/// A fresh empty directory under the system temp dir.
inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  static std::random_device device;
  auto dir = std::filesystem::temp_directory_path() / ("pretext-" + name + "-" + std::to_string(device()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace pretext::testing
