#include "pretext/image_ops.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pretext::ops {
namespace {

// ITU-R 601-2 luma, as torchvision's rgb_to_grayscale.
constexpr float kLumaR = 0.2989F;
constexpr float kLumaG = 0.587F;
constexpr float kLumaB = 0.114F;

float clamp01(float v) { return std::min(1.0F, std::max(0.0F, v)); }

// out = clamp(factor * img + (1 - factor) * other), the torchvision _blend.
void blend_with_scalar(ImageView image, float factor, float other) {
  const float offset = (1.0F - factor) * other;
  float* p = image.data;
  const std::size_t n = image.shape.numel();
  for (std::size_t i = 0; i < n; ++i) p[i] = clamp01(factor * p[i] + offset);
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

void to_float(const std::uint8_t* src, ImageView dst) {
  constexpr float kScale = 1.0F / 255.0F;
  const std::size_t n = dst.shape.numel();
  for (std::size_t i = 0; i < n; ++i) dst.data[i] = static_cast<float>(src[i]) * kScale;
}

void rotate90(ConstImageView src, ImageView dst, int quarter_turns) {
  const int n = src.shape.height;
  if (src.shape.width != n) throw std::invalid_argument("rotate90: image must be square");
  const int k = ((quarter_turns % 4) + 4) % 4;
  for (int c = 0; c < src.shape.channels; ++c) {
    const float* in = src.plane(c);
    float* out = dst.plane(c);
    for (int y = 0; y < n; ++y) {
      float* row = out + static_cast<std::size_t>(y) * n;
      for (int x = 0; x < n; ++x) {
        int sy = y;
        int sx = x;
        switch (k) {  // source pixel of out[y][x] for a counter-clockwise turn
          case 1: sy = x; sx = n - 1 - y; break;
          case 2: sy = n - 1 - y; sx = n - 1 - x; break;
          case 3: sy = n - 1 - x; sx = y; break;
          default: break;
        }
        row[x] = in[static_cast<std::size_t>(sy) * n + sx];
      }
    }
  }
}

void adjust_brightness(ImageView image, float factor) { blend_with_scalar(image, factor, 0.0F); }

void adjust_contrast(ImageView image, float factor) {
  const std::size_t plane = image.shape.plane_size();
  double sum = 0.0;
  if (image.shape.channels == 3) {
    const float* r = image.plane(0);
    const float* g = image.plane(1);
    const float* b = image.plane(2);
    for (std::size_t i = 0; i < plane; ++i) sum += kLumaR * r[i] + kLumaG * g[i] + kLumaB * b[i];
  } else {
    const float* p = image.plane(0);
    for (std::size_t i = 0; i < plane; ++i) sum += p[i];
  }
  blend_with_scalar(image, factor, static_cast<float>(sum / static_cast<double>(plane)));
}

void adjust_saturation(ImageView image, float factor) {
  if (image.shape.channels != 3) return;  // greyscale has no saturation
  float* r = image.plane(0);
  float* g = image.plane(1);
  float* b = image.plane(2);
  const std::size_t plane = image.shape.plane_size();
  const float keep = 1.0F - factor;
  for (std::size_t i = 0; i < plane; ++i) {
    const float grey = keep * (kLumaR * r[i] + kLumaG * g[i] + kLumaB * b[i]);
    r[i] = clamp01(factor * r[i] + grey);
    g[i] = clamp01(factor * g[i] + grey);
    b[i] = clamp01(factor * b[i] + grey);
  }
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
