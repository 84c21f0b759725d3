// Torch-free image types shared by the flow-graph stages and plugins.
//
// Images travel through the graph as planar CHW float32 in [0, 1]. Keeping
// this header free of LibTorch means stages compile in a fraction of the time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace pretext {

struct ImageShape {
  int channels = 0;
  int height = 0;
  int width = 0;

  [[nodiscard]] std::size_t numel() const {
    return static_cast<std::size_t>(channels) * static_cast<std::size_t>(height) *
           static_cast<std::size_t>(width);
  }
  [[nodiscard]] std::size_t plane_size() const {
    return static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  }
  friend bool operator==(const ImageShape& a, const ImageShape& b) {
    return a.channels == b.channels && a.height == b.height && a.width == b.width;
  }
  friend bool operator!=(const ImageShape& a, const ImageShape& b) { return !(a == b); }
};

/// A mutable view of one planar CHW image. Does not own its pixels.
struct ImageView {
  float* data = nullptr;
  ImageShape shape;

  [[nodiscard]] float* plane(int c) const { return data + static_cast<std::size_t>(c) * shape.plane_size(); }
  /// Row `y` of channel `c`: shape.width contiguous pixels.
  [[nodiscard]] float* row(int c, int y) const {
    return plane(c) + static_cast<std::size_t>(y) * static_cast<std::size_t>(shape.width);
  }
  [[nodiscard]] float& at(int c, int y, int x) const { return row(c, y)[x]; }
};

/// A read-only view of one planar CHW image.
struct ConstImageView {
  const float* data = nullptr;
  ImageShape shape;

  ConstImageView() = default;
  ConstImageView(const float* d, ImageShape s) : data(d), shape(s) {}
  ConstImageView(ImageView v) : data(v.data), shape(v.shape) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] const float* plane(int c) const {
    return data + static_cast<std::size_t>(c) * shape.plane_size();
  }
  /// Row `y` of channel `c`: shape.width contiguous pixels.
  [[nodiscard]] const float* row(int c, int y) const {
    return plane(c) + static_cast<std::size_t>(y) * static_cast<std::size_t>(shape.width);
  }
  [[nodiscard]] const float& at(int c, int y, int x) const { return row(c, y)[x]; }
};

/// A rectangle of pixels: rows [top, top + height), columns [left, left + width).
struct Region {
  int top = 0;
  int left = 0;
  int height = 0;
  int width = 0;
};

/// Copies `from` (a region of `src`) into `dst` with its top-left corner at
/// (top, left), in every channel. Throws std::out_of_range, naming both
/// rectangles and both shapes, when either region does not fit its image or
/// the channel counts differ: a wrong offset is a message, not a stray write.
inline void copy_region(ConstImageView src, Region from, ImageView dst, int top, int left) {
  const auto fits = [](const Region& r, const ImageShape& s) {  // no sum that could overflow an int
    return r.top >= 0 && r.left >= 0 && r.height >= 0 && r.width >= 0 && r.top <= s.height &&
           r.height <= s.height - r.top && r.left <= s.width && r.width <= s.width - r.left;
  };
  const Region to{top, left, from.height, from.width};
  if (src.shape.channels != dst.shape.channels || !fits(from, src.shape) || !fits(to, dst.shape)) {
    const auto text = [](const Region& r) {
      return std::to_string(r.height) + "x" + std::to_string(r.width) + " at (" + std::to_string(r.top) + ", " +
             std::to_string(r.left) + ")";
    };
    const auto shape = [](const ImageShape& s) {
      return std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width);
    };
    throw std::out_of_range("copy_region: " + text(from) + " of a " + shape(src.shape) + " image to " + text(to) +
                            " of a " + shape(dst.shape) + " image does not fit");
  }
  for (int c = 0; c < src.shape.channels; ++c)
    for (int y = 0; y < from.height; ++y)
      std::copy_n(src.row(c, from.top + y) + from.left, from.width, dst.row(c, top + y) + left);
}

/// Copies all of `src` into `dst`, which must have the same shape (else std::out_of_range).
inline void copy_image(ConstImageView src, ImageView dst) {
  if (src.shape != dst.shape)
    throw std::out_of_range("copy_image: a " + std::to_string(src.shape.channels) + "x" +
                            std::to_string(src.shape.height) + "x" + std::to_string(src.shape.width) +
                            " image does not fit a " + std::to_string(dst.shape.channels) + "x" +
                            std::to_string(dst.shape.height) + "x" + std::to_string(dst.shape.width) + " view");
  std::copy_n(src.data, src.shape.numel(), dst.data);
}

/// Deterministic random stream for one sample.
///
/// Seeded from (run seed, epoch, sample index, view, purpose) so that the
/// values a sample sees never depend on which thread processed it or when.
/// SplitMix64 mixing for the key, xoshiro256** for the stream.
class SampleRng {
 public:
  SampleRng(std::uint64_t seed, std::uint64_t epoch, std::uint64_t index, std::uint64_t view,
            std::uint64_t purpose) {
    std::uint64_t key = mix(seed ^ 0x9E3779B97F4A7C15ULL);
    key = mix(key ^ epoch);
    key = mix(key ^ index);
    key = mix(key ^ view);
    key = mix(key ^ purpose);
    for (auto& s : state_) {
      key += 0x9E3779B97F4A7C15ULL;
      s = mix(key);
    }
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// Uniform double in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform double in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }

  static std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t state_[4]{};
};

}  // namespace pretext
