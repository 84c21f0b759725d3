#include "pretext/image_ops.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>

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

}  // namespace pretext::ops
