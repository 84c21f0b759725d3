#include "pretext/image_ops.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// The per-pixel loops are compiled for AVX-512 and AVX2 besides the x86-64
// baseline, and the best one is picked when the library loads (GCC function
// multi-versioning; one binary runs on any x86-64). The file is built with
// -ffp-contract=off, so no clone fuses a multiply and an add the others
// round separately: every clone gives the same bits.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(PRETEXT_NO_SIMD_CLONES)
#define PRETEXT_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PRETEXT_SIMD_CLONES
#endif

namespace pretext::ops {
namespace {

// ITU-R 601-2 luma, as torchvision's rgb_to_grayscale.
constexpr float kLumaR = 0.2989F;
constexpr float kLumaG = 0.587F;
constexpr float kLumaB = 0.114F;

float clamp01(float v) { return std::min(1.0F, std::max(0.0F, v)); }

// out = clamp(factor * img + (1 - factor) * other), the torchvision _blend.
PRETEXT_SIMD_CLONES void blend_with_scalar(float* __restrict p, std::size_t n, float factor, float other) {
  const float offset = (1.0F - factor) * other;
  for (std::size_t i = 0; i < n; ++i) p[i] = clamp01(factor * p[i] + offset);
}

// Sum of the greyscale image, in double. The sum is split into kLanes
// partial sums with a fixed assignment of pixels to lanes, added up in a
// fixed order at the end: the compiler can vectorise it, and the result is
// the same bit for bit whichever instruction set runs it.
constexpr std::size_t kLanes = 8;
PRETEXT_SIMD_CLONES double grey_sum(const float* __restrict r, const float* __restrict g, const float* __restrict b,
                                    std::size_t n) {
  std::array<double, kLanes> acc{};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::size_t j = 0; j < kLanes; ++j)
      acc[j] += static_cast<double>(kLumaR * r[i + j] + kLumaG * g[i + j] + kLumaB * b[i + j]);
  for (; i < n; ++i) acc[i % kLanes] += static_cast<double>(kLumaR * r[i] + kLumaG * g[i] + kLumaB * b[i]);
  double sum = 0.0;
  for (double a : acc) sum += a;
  return sum;
}

PRETEXT_SIMD_CLONES double plane_sum(const float* __restrict p, std::size_t n) {
  std::array<double, kLanes> acc{};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::size_t j = 0; j < kLanes; ++j) acc[j] += static_cast<double>(p[i + j]);
  for (; i < n; ++i) acc[i % kLanes] += static_cast<double>(p[i]);
  double sum = 0.0;
  for (double a : acc) sum += a;
  return sum;
}

PRETEXT_SIMD_CLONES void saturate(float* __restrict r, float* __restrict g, float* __restrict b, std::size_t n,
                                  float factor) {
  const float keep = 1.0F - factor;
  for (std::size_t i = 0; i < n; ++i) {
    const float grey = keep * (kLumaR * r[i] + kLumaG * g[i] + kLumaB * b[i]);
    r[i] = clamp01(factor * r[i] + grey);
    g[i] = clamp01(factor * g[i] + grey);
    b[i] = clamp01(factor * b[i] + grey);
  }
}

// Eight floats as one value: GCC and Clang lower it to whatever vector
// registers the target has (two SSE registers, one AVX register, ...).
using Row8 = float __attribute__((vector_size(32)));

inline __attribute__((always_inline)) void load8(Row8& r, const float* p) { __builtin_memcpy(&r, p, sizeof r); }
inline __attribute__((always_inline)) void store8(float* p, const Row8& r) { __builtin_memcpy(p, &r, sizeof r); }

// Transposes the 8 x 8 tile held in rows[0..7]: three rounds of shuffles.
inline __attribute__((always_inline)) void transpose8(Row8 (&rows)[8]) {
  Row8 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(rows[i], rows[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(rows[i], rows[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  Row8 u[8];
  for (int i = 0; i < 8; i += 4) {
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int i = 0; i < 4; ++i) {
    rows[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    rows[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// Quarter turns of one n x n plane, counter-clockwise:
//   1: out[y][x] = in[x][n-1-y]      3: out[y][x] = in[n-1-x][y]
// Both are a transpose with rows or columns taken in reverse. When n is a
// multiple of 8 they go through 8 x 8 tiles transposed in registers (a
// strided element-by-element copy costs about three times as much);
// otherwise element by element.
PRETEXT_SIMD_CLONES void turn_plane(const float* __restrict in, float* __restrict out, int n, int turns) {
  const auto un = static_cast<std::size_t>(n);
  if (n % 8 != 0) {
    for (std::size_t y = 0; y < un; ++y)
      for (std::size_t x = 0; x < un; ++x)
        out[y * un + x] = turns == 1 ? in[x * un + (un - 1 - y)] : in[(un - 1 - x) * un + y];
    return;
  }
  Row8 tile[8];
  for (std::size_t ty = 0; ty < un; ty += 8) {
    for (std::size_t tx = 0; tx < un; tx += 8) {
      if (turns == 1) {
        // Rows tx.. of the input, columns n-8-ty..: transposed, they are the
        // output's rows ty+7 down to ty.
        for (std::size_t j = 0; j < 8; ++j) load8(tile[j], in + (tx + j) * un + (un - 8 - ty));
        transpose8(tile);
        for (std::size_t i = 0; i < 8; ++i) store8(out + (ty + 7 - i) * un + tx, tile[i]);
      } else {
        // Rows n-1-tx down to n-8-tx of the input, columns ty..: transposed,
        // they are the output's rows ty.. in order.
        for (std::size_t j = 0; j < 8; ++j) load8(tile[j], in + (un - 1 - tx - j) * un + ty);
        transpose8(tile);
        for (std::size_t i = 0; i < 8; ++i) store8(out + (ty + i) * un + tx, tile[i]);
      }
    }
  }
}

// One output row or column of a bilinear resize: the two source indices and
// the weight of the second.
struct Tap {
  std::size_t first = 0;
  std::size_t second = 0;
  float weight = 0.0F;
};

// align_corners=False source coordinates of `out` samples over [start, start
// + length) of an axis of `in` pixels, clamped to the box's own edge pixels,
// as F.interpolate sees a crop that has already been cut out.
std::vector<Tap> bilinear_taps(double start, double length, int out, int in) {
  std::vector<Tap> taps(static_cast<std::size_t>(out));
  const double scale = length / out;
  const double lo = std::max(0.0, start);
  const double hi = std::min(static_cast<double>(in - 1), std::max(start, start + length - 1.0));
  for (int d = 0; d < out; ++d) {
    const double s = std::clamp(start + (d + 0.5) * scale - 0.5, lo, std::max(lo, hi));
    const auto i0 = static_cast<int>(std::floor(s));
    Tap& tap = taps[static_cast<std::size_t>(d)];
    tap.first = static_cast<std::size_t>(i0);
    tap.second = static_cast<std::size_t>(std::min(i0 + 1, in - 1));
    tap.weight = static_cast<float>(s - i0);
  }
  return taps;
}

// Python's round(): half to even (nearbyint in the default rounding mode).
int round_half_even(double v) { return static_cast<int>(std::nearbyint(v)); }

}  // namespace

PRETEXT_SIMD_CLONES void to_float(const std::uint8_t* __restrict src, ImageView dst) {
  constexpr float kScale = 1.0F / 255.0F;
  float* __restrict out = dst.data;
  const std::size_t n = dst.shape.numel();
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(src[i]) * kScale;
}

void rotate90(ConstImageView src, ImageView dst, int quarter_turns) {
  const int n = src.shape.height;
  if (src.shape.width != n) throw std::invalid_argument("rotate90: image must be square");
  const int k = ((quarter_turns % 4) + 4) % 4;
  const std::size_t plane = src.shape.plane_size();
  for (int c = 0; c < src.shape.channels; ++c) {
    const float* in = src.plane(c);
    float* out = dst.plane(c);
    switch (k) {
      case 0: std::copy(in, in + plane, out); break;
      case 2: std::reverse_copy(in, in + plane, out); break;
      default: turn_plane(in, out, n, k); break;
    }
  }
}

void adjust_brightness(ImageView image, float factor) {
  blend_with_scalar(image.data, image.shape.numel(), factor, 0.0F);
}

void adjust_contrast(ImageView image, float factor) {
  const std::size_t plane = image.shape.plane_size();
  const double sum = image.shape.channels == 3 ? grey_sum(image.plane(0), image.plane(1), image.plane(2), plane)
                                               : plane_sum(image.plane(0), plane);
  blend_with_scalar(image.data, image.shape.numel(), factor, static_cast<float>(sum / static_cast<double>(plane)));
}

void adjust_saturation(ImageView image, float factor) {
  if (image.shape.channels != 3) return;  // greyscale has no saturation
  saturate(image.plane(0), image.plane(1), image.plane(2), image.shape.plane_size(), factor);
}

void color_jitter(ImageView image, const ColorJitterParams& params, SampleRng& rng) {
  // Draw in torchvision's order (permutation, then brightness, contrast,
  // saturation) so one stream yields the same decisions as its get_params.
  std::array<int, 3> order{0, 1, 2};
  for (int i = 2; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<std::uint64_t>(i) + 1)]);
  auto draw = [&rng](double amount) {
    return amount > 0.0 ? static_cast<float>(rng.uniform(std::max(0.0, 1.0 - amount), 1.0 + amount)) : 1.0F;
  };
  const std::array<float, 3> factor{draw(params.brightness), draw(params.contrast), draw(params.saturation)};
  const std::array<double, 3> amount{params.brightness, params.contrast, params.saturation};
  for (int op : order) {
    if (amount[op] <= 0.0) continue;
    switch (op) {
      case 0: adjust_brightness(image, factor[0]); break;
      case 1: adjust_contrast(image, factor[1]); break;
      default: adjust_saturation(image, factor[2]); break;
    }
  }
}

void flip_horizontal(ImageView image) {
  const int w = image.shape.width;
  for (int c = 0; c < image.shape.channels; ++c) {
    for (int y = 0; y < image.shape.height; ++y) {
      float* row = image.plane(c) + static_cast<std::size_t>(y) * w;
      std::reverse(row, row + w);
    }
  }
}

CropBox random_resized_crop_box(const ImageShape& shape, double min_scale, double max_scale, double min_ratio,
                                double max_ratio, SampleRng& rng) {
  if (!(min_scale > 0.0 && min_scale <= max_scale))
    throw std::invalid_argument("random_resized_crop_box: need 0 < min_scale <= max_scale, got " +
                                std::to_string(min_scale) + ", " + std::to_string(max_scale));
  if (!(min_ratio > 0.0 && min_ratio <= max_ratio))
    throw std::invalid_argument("random_resized_crop_box: need 0 < min_ratio <= max_ratio, got " +
                                std::to_string(min_ratio) + ", " + std::to_string(max_ratio));
  const int height = shape.height;
  const int width = shape.width;
  const double area = static_cast<double>(height) * width;
  const double log_min = std::log(min_ratio);
  const double log_max = std::log(max_ratio);
  constexpr int kAttempts = 10;  // torchvision's
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const double target_area = area * rng.uniform(min_scale, max_scale);
    const double ratio = std::exp(rng.uniform(log_min, log_max));
    const int w = round_half_even(std::sqrt(target_area * ratio));
    const int h = round_half_even(std::sqrt(target_area / ratio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const auto top = rng.below(static_cast<std::uint64_t>(height - h) + 1);
      const auto left = rng.below(static_cast<std::uint64_t>(width - w) + 1);
      return {static_cast<float>(top), static_cast<float>(left), static_cast<float>(h), static_cast<float>(w)};
    }
  }
  // Fallback: the largest centred box whose ratio is inside the range.
  const double in_ratio = static_cast<double>(width) / height;
  int w = width;
  int h = height;
  if (in_ratio < min_ratio) {
    h = round_half_even(w / min_ratio);
  } else if (in_ratio > max_ratio) {
    w = round_half_even(h * max_ratio);
  }
  return {static_cast<float>((height - h) / 2), static_cast<float>((width - w) / 2), static_cast<float>(h),
          static_cast<float>(w)};
}

void resized_crop(ConstImageView src, CropBox box, ImageView dst) {
  const ImageShape& in = src.shape;
  if (dst.shape.channels != in.channels)
    throw std::invalid_argument("resized_crop: source has " + std::to_string(in.channels) + " channels, destination " +
                                std::to_string(dst.shape.channels));
  if (!(box.height > 0.0F && box.width > 0.0F && box.top >= 0.0F && box.left >= 0.0F &&
        box.top + box.height <= static_cast<float>(in.height) && box.left + box.width <= static_cast<float>(in.width)))
    throw std::invalid_argument("resized_crop: box (top " + std::to_string(box.top) + ", left " +
                                std::to_string(box.left) + ", " + std::to_string(box.height) + "x" +
                                std::to_string(box.width) + ") is empty or outside the " + std::to_string(in.height) +
                                "x" + std::to_string(in.width) + " image");
  const auto rows = bilinear_taps(box.top, box.height, dst.shape.height, in.height);
  const auto cols = bilinear_taps(box.left, box.width, dst.shape.width, in.width);
  const auto in_width = static_cast<std::size_t>(in.width);
  for (int c = 0; c < in.channels; ++c) {
    const float* plane = src.plane(c);
    float* out = dst.plane(c);
    for (const Tap& row : rows) {
      const float* upper = plane + row.first * in_width;
      const float* lower = plane + row.second * in_width;
      for (const Tap& col : cols) {
        const float top = (1.0F - col.weight) * upper[col.first] + col.weight * upper[col.second];
        const float bottom = (1.0F - col.weight) * lower[col.first] + col.weight * lower[col.second];
        *out++ = (1.0F - row.weight) * top + row.weight * bottom;
      }
    }
  }
}

}  // namespace pretext::ops
