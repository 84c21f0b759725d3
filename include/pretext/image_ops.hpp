// Pixel-level operations on planar CHW float images in [0, 1], for stages and
// pretext tasks. Torch-free; implemented in the SDK's shared library
// (libpretext_sdk.so), which the host and every plugin link against, so a
// task written out of tree augments images exactly as the built-in ones do.
#pragma once

#include <cstdint>

#include <boost/config.hpp>

#include "pretext/image.hpp"

/// Marks the SDK library's exported functions (the library is built with
/// hidden visibility; only these are its ABI).
#define PRETEXT_SDK_API BOOST_SYMBOL_VISIBLE

namespace pretext::ops {

/// uint8 CHW -> float CHW in [0, 1].
PRETEXT_SDK_API void to_float(const std::uint8_t* src, ImageView dst);

/// Rotates by `quarter_turns` x 90 degrees counter-clockwise, exactly like
/// torch.rot90(image, quarter_turns, dims=[1, 2]). Square images only.
/// `dst` must not alias `src`.
PRETEXT_SDK_API void rotate90(ConstImageView src, ImageView dst, int quarter_turns);

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
PRETEXT_SDK_API void color_jitter(ImageView image, const ColorJitterParams& params, SampleRng& rng);

/// The individual adjustments (torchvision.transforms.functional semantics).
PRETEXT_SDK_API void adjust_brightness(ImageView image, float factor);
PRETEXT_SDK_API void adjust_contrast(ImageView image, float factor);
PRETEXT_SDK_API void adjust_saturation(ImageView image, float factor);

/// Mirrors left-right in place.
PRETEXT_SDK_API void flip_horizontal(ImageView image);

/// A crop rectangle in pixels of the source image: rows [top, top + height),
/// columns [left, left + width). Floats so a caller may describe sub-pixel
/// boxes; random_resized_crop_box only makes whole-pixel ones.
struct CropBox {
  float top = 0.0F;
  float left = 0.0F;
  float height = 0.0F;
  float width = 0.0F;
};

/// torchvision RandomResizedCrop.get_params: up to 10 draws of an area
/// fraction in [min_scale, max_scale] and an aspect ratio (width / height)
/// log-uniform in [min_ratio, max_ratio], rounded to whole pixels; the first
/// box that fits is placed uniformly at random. If none fits, a centre crop
/// of the whole image clamped to the ratio range. Throws std::invalid_argument
/// unless 0 < min_scale <= max_scale and 0 < min_ratio <= max_ratio.
PRETEXT_SDK_API CropBox random_resized_crop_box(const ImageShape& shape, double min_scale, double max_scale,
                                                double min_ratio, double max_ratio, SampleRng& rng);

/// Crops `box` out of `src` and resizes it to `dst`'s height and width with
/// bilinear interpolation, align_corners=False and no antialiasing: exactly
/// torchvision's resized_crop on a tensor (F.interpolate of the crop), with
/// the crop's edge pixels repeated beyond its border. The identity box gives
/// `src` back bit for bit. Channels must match; `dst` must not alias `src`.
PRETEXT_SDK_API void resized_crop(ConstImageView src, CropBox box, ImageView dst);

}  // namespace pretext::ops
