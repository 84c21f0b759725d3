#include "stages/rand_augment.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "pretext/image_ops.hpp"

namespace pretext::stages {
namespace augment {
namespace {

// FixMatch's ranges at full magnitude (kekmodel/FixMatch-pytorch).
constexpr double kMaxTranslate = 0.3;  // of the image's width or height
constexpr double kMaxShear = 0.3;
constexpr double kMaxDegrees = 30.0;
constexpr double kMaxPosterizeBitsDropped = 4.0;
constexpr double kMaxEnhance = 0.9;    // sharpness, brightness, contrast: factor 1 ± 0.9 f
constexpr double kCutoutOfSide = 0.5;  // cutout op at f = 1: half the shorter side
constexpr double kPi = 3.14159265358979323846;

float clamp01(float v) { return std::min(1.0F, std::max(0.0F, v)); }

// Python's round(): half to even.
int round_half_even(double v) { return static_cast<int>(std::nearbyint(v)); }

// +1 or -1, one draw; negative below one half as FixMatch's random.random() < 0.5.
double random_sign(SampleRng& rng) { return rng.uniform() < 0.5 ? -1.0 : 1.0; }

// The 8-bit level a float value stands for (to_float's k / 255 gives k
// back). Clamped as an integer: a float clamp before the conversion keeps
// GCC from vectorising the loops that call this. Truncating v * 255 + 1/2
// rounds every v >= 0; a negative one ends at 0 either way.
int to_level(float v) {
  return std::clamp(static_cast<int>(v * 255.0F + 0.5F), 0, 255);  // NOLINT(bugprone-incorrect-roundings)
}

// A copy of `n` floats (a plane, or a whole image) in a per-thread buffer,
// reused: the ops are called concurrently and must not share it, nor
// allocate per image once warm.
float* scratch_copy(const float* plane, std::size_t n) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < n) scratch.resize(n);
  std::memcpy(scratch.data(), plane, n * sizeof(float));
  return scratch.data();
}

// One output pixel's bilinear sample: four source offsets within a plane and
// the weights of the right and lower pair; `inside` false means kFill.
struct Tap {
  std::uint32_t top_left = 0;
  std::uint32_t top_right = 0;
  std::uint32_t bottom_left = 0;
  std::uint32_t bottom_right = 0;
  float dx = 0.0F;
  float dy = 0.0F;
  bool inside = false;
};

// PIL's Image.transform(AFFINE, m) with bilinear sampling: the output pixel
// centre (X, Y) = (x + 1/2, y + 1/2) reads the source at (m0 X + m1 Y + m2,
// m3 X + m4 Y + m5). A source point outside [0, w) x [0, h) gives kFill;
// inside, the four nearest pixel centres are blended, edge pixels repeated
// (PIL's BILINEAR_HEAD/BODY). A row's taps are worked out once and then
// serve every channel (half the time of doing both per pixel).
void affine(ImageView image, const std::array<double, 6>& m) {
  const int w = image.shape.width;
  const int h = image.shape.height;
  const std::size_t plane = image.shape.plane_size();
  if (plane == 0) return;
  const float* in = scratch_copy(image.data, image.shape.numel());
  thread_local std::vector<Tap> taps;
  if (taps.size() < static_cast<std::size_t>(w)) taps.resize(static_cast<std::size_t>(w));
  const auto uw = static_cast<std::uint32_t>(w);
  for (int y = 0; y < h; ++y) {
    const double yc = y + 0.5;
    const double row_x = m[1] * yc + m[2];
    const double row_y = m[4] * yc + m[5];
    for (int x = 0; x < w; ++x) {
      Tap& tap = taps[static_cast<std::size_t>(x)];
      const double xc = x + 0.5;
      const double px = m[0] * xc + row_x;
      const double py = m[3] * xc + row_y;
      tap.inside = px >= 0.0 && px < w && py >= 0.0 && py < h;
      if (!tap.inside) continue;
      // Inside, px + 1/2 > 0: truncation is floor, and cheaper than std::floor.
      const double ux = px + 0.5;  // source x + 1 in pixel-centre units
      const double uy = py + 0.5;
      const int xb = static_cast<int>(ux);  // the right neighbour, 0..w
      const int yb = static_cast<int>(uy);
      tap.dx = static_cast<float>(ux - xb);
      tap.dy = static_cast<float>(uy - yb);
      const auto left = static_cast<std::uint32_t>(xb > 0 ? xb - 1 : 0);
      const auto right = static_cast<std::uint32_t>(xb < w ? xb : w - 1);
      const auto top = static_cast<std::uint32_t>(yb > 0 ? yb - 1 : 0) * uw;
      const auto bottom = static_cast<std::uint32_t>(yb < h ? yb : h - 1) * uw;
      tap.top_left = top + left;
      tap.top_right = top + right;
      tap.bottom_left = bottom + left;
      tap.bottom_right = bottom + right;
    }
    for (int c = 0; c < image.shape.channels; ++c) {
      const float* src = in + static_cast<std::size_t>(c) * plane;
      float* dst = image.plane(c) + static_cast<std::size_t>(y) * uw;
      for (int x = 0; x < w; ++x) {
        const Tap& tap = taps[static_cast<std::size_t>(x)];
        if (!tap.inside) {
          dst[x] = kFill;
          continue;
        }
        const float upper = src[tap.top_left] + (src[tap.top_right] - src[tap.top_left]) * tap.dx;
        const float lower = src[tap.bottom_left] + (src[tap.bottom_right] - src[tap.bottom_left]) * tap.dx;
        dst[x] = upper + (lower - upper) * tap.dy;
      }
    }
  }
}

}  // namespace

const char* op_name(Op op) {
  static constexpr std::array<const char*, kOpCount> kNames{"translate_x", "translate_y",  "shear_x",    "shear_y",
                                                            "rotate",      "autocontrast", "equalize",   "posterize",
                                                            "solarize",    "sharpness",    "brightness", "contrast"};
  return kNames[static_cast<std::size_t>(op)];
}

void apply(ImageView image, Op op, double f, SampleRng& rng) {
  switch (op) {
    case Op::translate_x:
      translate_x(image, f, rng);
      break;
    case Op::translate_y:
      translate_y(image, f, rng);
      break;
    case Op::shear_x:
      shear_x(image, f, rng);
      break;
    case Op::shear_y:
      shear_y(image, f, rng);
      break;
    case Op::rotate:
      rotate(image, f, rng);
      break;
    case Op::autocontrast:
      autocontrast(image);
      break;
    case Op::equalize:
      equalize(image);
      break;
    case Op::posterize:
      posterize(image, f);
      break;
    case Op::solarize:
      solarize(image, f);
      break;
    case Op::sharpness:
      sharpness(image, f, rng);
      break;
    case Op::brightness:
      brightness(image, f, rng);
      break;
    case Op::contrast:
      contrast(image, f, rng);
      break;
  }
}

void translate_x(ImageView image, double f, SampleRng& rng) {
  const double sign = random_sign(rng);
  translate_x_by(image, static_cast<int>(sign) * round_half_even(f * kMaxTranslate * image.shape.width));
}

void translate_y(ImageView image, double f, SampleRng& rng) {
  const double sign = random_sign(rng);
  translate_y_by(image, static_cast<int>(sign) * round_half_even(f * kMaxTranslate * image.shape.height));
}

void shear_x(ImageView image, double f, SampleRng& rng) { shear_x_by(image, random_sign(rng) * f * kMaxShear); }
void shear_y(ImageView image, double f, SampleRng& rng) { shear_y_by(image, random_sign(rng) * f * kMaxShear); }
void rotate(ImageView image, double f, SampleRng& rng) { rotate_by(image, random_sign(rng) * f * kMaxDegrees); }

void sharpness(ImageView image, double f, SampleRng& rng) {
  adjust_sharpness(image, static_cast<float>(1.0 + random_sign(rng) * f * kMaxEnhance));
}
void brightness(ImageView image, double f, SampleRng& rng) {
  ops::adjust_brightness(image, static_cast<float>(1.0 + random_sign(rng) * f * kMaxEnhance));
}
void contrast(ImageView image, double f, SampleRng& rng) {
  ops::adjust_contrast(image, static_cast<float>(1.0 + random_sign(rng) * f * kMaxEnhance));
}

void cutout(ImageView image, double f, SampleRng& rng) {
  const int shorter = std::min(image.shape.height, image.shape.width);
  cutout_side(image, round_half_even(f * kCutoutOfSide * shorter), rng);
}

void translate_x_by(ImageView image, int pixels) {
  if (pixels == 0) return;
  const int w = image.shape.width;
  const int moved = std::max(0, w - std::abs(pixels));  // columns that keep content
  const auto keep = static_cast<std::size_t>(moved);
  const auto gap = static_cast<std::size_t>(w - moved);
  for (int c = 0; c < image.shape.channels; ++c) {
    for (int y = 0; y < image.shape.height; ++y) {
      float* row = image.plane(c) + static_cast<std::size_t>(y) * static_cast<std::size_t>(w);
      if (pixels > 0) {
        std::memmove(row + gap, row, keep * sizeof(float));
        std::fill(row, row + gap, kFill);
      } else {
        std::memmove(row, row + gap, keep * sizeof(float));
        std::fill(row + keep, row + w, kFill);
      }
    }
  }
}

void translate_y_by(ImageView image, int pixels) {
  if (pixels == 0) return;
  const auto w = static_cast<std::size_t>(image.shape.width);
  const int moved = std::max(0, image.shape.height - std::abs(pixels));  // rows that keep content
  const std::size_t keep = static_cast<std::size_t>(moved) * w;
  const std::size_t gap = static_cast<std::size_t>(image.shape.height - moved) * w;
  for (int c = 0; c < image.shape.channels; ++c) {
    float* plane = image.plane(c);
    if (pixels > 0) {
      std::memmove(plane + gap, plane, keep * sizeof(float));
      std::fill(plane, plane + gap, kFill);
    } else {
      std::memmove(plane, plane + gap, keep * sizeof(float));
      std::fill(plane + keep, plane + keep + gap, kFill);
    }
  }
}

void shear_x_by(ImageView image, double s) {
  if (s == 0.0) return;
  affine(image, {1.0, s, 0.0, 0.0, 1.0, 0.0});
}

void shear_y_by(ImageView image, double s) {
  if (s == 0.0) return;
  affine(image, {1.0, 0.0, 0.0, s, 1.0, 0.0});
}

void rotate_by(ImageView image, double degrees) {
  if (degrees == 0.0) return;
  // PIL's Image.rotate: the inverse map turns the output by -degrees about
  // the centre; with y pointing down that is counter-clockwise on screen.
  const double radians = degrees * (kPi / 180.0);
  const double cos_a = std::cos(radians);
  const double sin_a = std::sin(radians);
  const double cx = image.shape.width / 2.0;
  const double cy = image.shape.height / 2.0;
  affine(image, {cos_a, -sin_a, cx - cos_a * cx + sin_a * cy, sin_a, cos_a, cy - sin_a * cx - cos_a * cy});
}

void autocontrast(ImageView image) {
  const std::size_t n = image.shape.plane_size();
  if (n == 0) return;
  for (int c = 0; c < image.shape.channels; ++c) {
    float* plane = image.plane(c);
    const auto [lo_it, hi_it] = std::minmax_element(plane, plane + n);
    const float lo = *lo_it;
    const float range = *hi_it - lo;
    if (!(range > 0.0F)) continue;  // a flat channel stays as it is (PIL too)
    for (std::size_t i = 0; i < n; ++i) plane[i] = clamp01((plane[i] - lo) / range);
  }
}

void equalize(ImageView image) {
  const std::size_t n = image.shape.plane_size();
  thread_local std::vector<std::uint8_t> level;
  if (level.size() < n) level.resize(n);
  std::uint8_t* __restrict q = level.data();
  for (int c = 0; c < image.shape.channels; ++c) {
    float* __restrict plane = image.plane(c);
    for (std::size_t i = 0; i < n; ++i) q[i] = static_cast<std::uint8_t>(to_level(plane[i]));
    std::array<std::size_t, 256> histogram{};
    for (std::size_t i = 0; i < n; ++i) ++histogram[q[i]];
    // PIL's ImageOps.equalize: step = (pixels not in the highest level
    // present) // 256; when it is 0 (one level, or fewer than 256 pixels
    // below the top) the channel is left as it is. Otherwise level i maps to
    // (step // 2 + pixels below level i) // step, at most 255.
    std::size_t top = 255;
    while (top > 0 && histogram[top] == 0) --top;
    const std::size_t step = (n - histogram[top]) / 256;
    if (step == 0) continue;
    std::array<float, 256> lut{};
    std::size_t below = step / 2;
    for (std::size_t i = 0; i < 256; ++i) {
      lut[i] = static_cast<float>(std::min<std::size_t>(255, below / step)) / 255.0F;
      below += histogram[i];
    }
    for (std::size_t i = 0; i < n; ++i) plane[i] = lut[q[i]];
  }
}

void posterize(ImageView image, double f) { posterize_bits(image, 8 - round_half_even(f * kMaxPosterizeBitsDropped)); }

void posterize_bits(ImageView image, int bits) {
  bits = std::clamp(bits, 1, 8);
  if (bits == 8) return;  // every 8-bit value kept: leave the floats alone
  const int mask = (0xFF << (8 - bits)) & 0xFF;
  float* __restrict p = image.data;
  const std::size_t n = image.shape.numel();
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<float>(to_level(p[i]) & mask) / 255.0F;
}

void solarize(ImageView image, double f) {
  // PIL's ImageOps.solarize(image, threshold = 256 - 256 f) inverts the 8-bit
  // levels >= threshold: nothing at f = 0 (threshold 256), everything at f = 1.
  const int threshold = static_cast<int>(std::ceil(256.0 * (1.0 - f)));
  if (threshold > 255) return;
  float* __restrict p = image.data;
  const std::size_t n = image.shape.numel();
  for (std::size_t i = 0; i < n; ++i) {
    // hit = level >= threshold as 1 or 0, then a blend that is exactly 1 - v
    // or v: arithmetic rather than a branch, so the loop vectorises.
    const float v = p[i];
    const auto hit = static_cast<float>(1 + ((to_level(v) - threshold) >> 31));
    p[i] = hit * (1.0F - v) + (1.0F - hit) * v;
  }
}

void adjust_sharpness(ImageView image, float factor) {
  const int w = image.shape.width;
  const int h = image.shape.height;
  if (factor == 1.0F || w < 3 || h < 3) return;  // no interior: PIL keeps the border
  const auto uw = static_cast<std::size_t>(w);
  const float keep = 1.0F - factor;
  constexpr float kInvKernelSum = 1.0F / 13.0F;
  for (int c = 0; c < image.shape.channels; ++c) {
    float* plane = image.plane(c);
    const float* in = scratch_copy(plane, image.shape.plane_size());
    for (int y = 1; y < h - 1; ++y) {
      const float* up = in + static_cast<std::size_t>(y - 1) * uw;
      const float* mid = up + uw;
      const float* down = mid + uw;
      float* out = plane + static_cast<std::size_t>(y) * uw;
      for (std::size_t x = 1; x + 1 < uw; ++x) {
        // PIL's SMOOTH: [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13.
        const float ring =
            up[x - 1] + up[x] + up[x + 1] + mid[x - 1] + mid[x + 1] + down[x - 1] + down[x] + down[x + 1];
        const float smooth = (ring + 5.0F * mid[x]) * kInvKernelSum;
        out[x] = clamp01(factor * mid[x] + keep * smooth);
      }
    }
  }
}

void cutout_side(ImageView image, int side, SampleRng& rng) {
  if (side <= 0 || image.shape.height <= 0 || image.shape.width <= 0) return;
  const auto cy = static_cast<int>(rng.below(static_cast<std::uint64_t>(image.shape.height)));
  const auto cx = static_cast<int>(rng.below(static_cast<std::uint64_t>(image.shape.width)));
  cutout_at(image, side, cy, cx);
}

void cutout_at(ImageView image, int side, int centre_y, int centre_x) {
  if (side <= 0) return;
  const int top = std::max(0, centre_y - side / 2);
  const int bottom = std::min(image.shape.height, centre_y - side / 2 + side);
  const int left = std::max(0, centre_x - side / 2);
  const int right = std::min(image.shape.width, centre_x - side / 2 + side);
  if (top >= bottom || left >= right) return;
  for (int c = 0; c < image.shape.channels; ++c)
    for (int y = top; y < bottom; ++y) {
      float* row = image.plane(c) + static_cast<std::size_t>(y) * static_cast<std::size_t>(image.shape.width);
      std::fill(row + left, row + right, kFill);
    }
}

}  // namespace augment

RandAugmentOptions RandAugmentOptions::read(Options& options) {
  RandAugmentOptions o;
  o.ops = static_cast<int>(options.integer("ops", o.ops, 1, 12, "operations per image, drawn with replacement"));
  o.magnitude = options.number("magnitude", o.magnitude, 0.0, 10.0, "strength of every operation, 0..10");
  o.random_magnitude = options.boolean("random_magnitude", o.random_magnitude,
                                       "draw each operation's magnitude uniformly in [0, magnitude] (RandAugmentMC)");
  o.cutout = options.number("cutout", o.cutout, 0.0, 1.0,
                            "side of the final cutout square as a fraction of the shorter side; 0: none");
  return o;
}

void RandAugmentStage::apply(ImageView image, SampleRng& rng) const {
  // Draws in a fixed order per op: the op, its magnitude (when random), then
  // whatever the op draws itself; the cutout's centre last.
  for (int i = 0; i < options_.ops; ++i) {
    const auto op = static_cast<augment::Op>(rng.below(augment::kOpCount));
    const double m = options_.random_magnitude ? rng.uniform(0.0, options_.magnitude) : options_.magnitude;
    augment::apply(image, op, m / 10.0, rng);
  }
  if (options_.cutout > 0.0) {
    const int shorter = std::min(image.shape.height, image.shape.width);
    augment::cutout_side(image, static_cast<int>(std::nearbyint(options_.cutout * shorter)), rng);
  }
}

}  // namespace pretext::stages
