// Torch-free image types shared by the flow-graph stages and plugins.
//
// Images travel through the graph as planar CHW float32 in [0, 1]. Keeping
// this header free of LibTorch means stages compile in a fraction of the time.
#pragma once

#include <cstddef>
#include <cstdint>

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
  [[nodiscard]] float& at(int c, int y, int x) const {
    return plane(c)[static_cast<std::size_t>(y) * static_cast<std::size_t>(shape.width) + static_cast<std::size_t>(x)];
  }
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
  [[nodiscard]] float at(int c, int y, int x) const {
    return plane(c)[static_cast<std::size_t>(y) * static_cast<std::size_t>(shape.width) + static_cast<std::size_t>(x)];
  }
};

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
