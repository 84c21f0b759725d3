// Pixel-level operations on planar CHW float images in [0, 1].
#pragma once

#include <cstdint>

#include "pretext/image.hpp"

namespace pretext::stages {

/// uint8 CHW -> float CHW in [0, 1].
void to_float(const std::uint8_t* src, ImageView dst);

/// Rotates by `quarter_turns` x 90 degrees counter-clockwise, exactly like
/// torch.rot90(image, quarter_turns, dims=[1, 2]). Square images only.
/// `dst` must not alias `src`.
void rotate90(ConstImageView src, ImageView dst, int quarter_turns);

/// torchvision ColorJitter(brightness, contrast, saturation) semantics:
/// each factor is drawn uniformly from [max(0, 1 - x), 1 + x] (skipped when
/// x is 0), then the three adjustments run in a random order, each clamped
/// to [0, 1]. Contrast blends with the mean of the greyscale image; saturation
/// blends with the greyscale image and is a no-op on one-channel images.
struct ColorJitterParams {
  double brightness = 0.0;
  double contrast = 0.0;
  double saturation = 0.0;
};
void color_jitter(ImageView image, const ColorJitterParams& params, SampleRng& rng);

/// The individual adjustments (torchvision.transforms.functional semantics).
void adjust_brightness(ImageView image, float factor);
void adjust_contrast(ImageView image, float factor);
void adjust_saturation(ImageView image, float factor);

/// Mirrors left-right in place.
void flip_horizontal(ImageView image);

}  // namespace pretext::stages
